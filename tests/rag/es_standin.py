"""An Elasticsearch stand-in for tests: the REST subset rag uses, on a real loopback socket.

It is a test double, never storage. It speaks like a cluster of ``version`` (default 9.1.0):
- every response carries ``X-Elastic-Product: Elasticsearch``; bodies are JSON with the
  content type the request's ``Accept`` asked for (``application/vnd.elasticsearch+json;
  compatible-with=N`` or ``application/json``); a ``compatible-with`` outside
  {major, major - 1}, or one on ``Accept`` but not on a ``Content-Type`` that was sent, is
  refused with 400 ``media_type_header_exception``, as real clusters do;
- errors are ``{"error": {"root_cause": [...], "type", "reason"}, "status"}``;
- indices: create (mapping validation: field types, ``dense_vector`` dims 1..4096 and
  similarity), exists, get, get/put mapping, delete; documents: ``_doc`` (with
  ``?pipeline=``), ``_bulk`` (per-item results, ``?pipeline=``), ``_mget``, ``_search`` and
  ``_count`` (see ``es_search``), ``_delete_by_query``, ``_refresh``. Search sees what was
  refreshed (``_refresh`` or ``?refresh=``), GET sees everything, like ES. Documents are
  checked against the mappings (vector dims, zero vectors under cosine, nested objects);
- ingest pipelines: put/get/delete, and the processors ``split`` (Java semantics: trailing
  empty strings dropped), ``trim``, ``set`` (mustache ``{{x}}``/``{{{x}}}``, object
  values), ``foreach`` (``_ingest._value``), ``remove``, ``inference`` (``input_output``);
- ``_inference``: put/get/delete (``force``) and perform; service ``hugging_face`` POSTs
  ``{"inputs": [...]}`` to its ``url`` with ``Authorization: Bearer``, ``openai`` POSTs
  ``{"input", "model", "encoding_format"}`` (base64 from 9.0 on, float before), both in
  batches of at most 20, retrying 429/502/503 and timeouts with backoff and halving the
  batch on 413; creating an endpoint embeds ``["how big"]`` to learn the dimensions;
- ``retriever.rrf`` from 8.14 on; ``rrf_licensed=False`` answers 403 like a basic license.

Fault injection (``faults``): fail whole requests (status, or a delay past the client's
timeout), hold requests until the test releases them (to kill a client while its request
is in flight), fail chosen bulk items with a status (429 ``es_rejected_execution_exception``
by default) for the next few bulk requests, or refuse chosen ids in every bulk request.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import math
import re
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote_plus

import httpx
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.rag.es_search import Mappings, Searcher, SearchError, filter_source, source_filter

FIELD_TYPES = {
    "text",
    "keyword",
    "integer",
    "long",
    "float",
    "double",
    "boolean",
    "date",
    "object",
    "nested",
    "dense_vector",
}
SIMILARITIES = {"cosine", "dot_product", "l2_norm", "max_inner_product"}
INFERENCE_BATCH = 20
COMPAT = re.compile(r"compatible-with=(\d+)")


class EsError(Exception):
    def __init__(
        self, status: int, kind: str, reason: str, caused_by: dict[str, Any] | None = None, **extra: Any
    ) -> None:
        super().__init__(reason)
        self.status = status
        self.kind = kind
        self.reason = reason
        self.caused_by = caused_by
        self.extra = extra

    def body(self) -> dict[str, Any]:
        cause = {"type": self.kind, "reason": self.reason, **self.extra}
        error: dict[str, Any] = {"root_cause": [cause], **cause}
        if self.caused_by:
            error["caused_by"] = self.caused_by
        return {"error": error, "status": self.status}

    def item_error(self) -> dict[str, Any]:
        error: dict[str, Any] = {"type": self.kind, "reason": self.reason, **self.extra}
        if self.caused_by:
            error["caused_by"] = self.caused_by
        return error


# -- fault injection -----------------------------------------------------------------------


@dataclass
class Hold:
    """Held requests: ``arrived`` is set when one waits, ``release()`` lets them go on, and
    ``finished`` is set once a released one has been carried out."""

    arrived: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)
    finished: threading.Event = field(default_factory=threading.Event)

    def release(self) -> None:
        self.released.set()


@dataclass
class RequestFault:
    method: str | None
    path: re.Pattern[str]
    status: int
    times: int
    delay: float = 0.0
    hold: Hold | None = None
    skip: int = 0


@dataclass
class ItemFault:
    status: int
    times: int
    ids: set[str] | None
    count: int | None


@dataclass
class Faults:
    requests: list[RequestFault] = field(default_factory=list)
    items: list[ItemFault] = field(default_factory=list)
    refused: dict[str, int] = field(default_factory=dict)
    holds: list[Hold] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fail_requests(self, path: str, status: int = 429, times: int = 1, method: str | None = None) -> None:
        """The next ``times`` requests whose path matches the regex ``path`` get ``status``."""
        self.requests.append(RequestFault(method, re.compile(path), status, times))

    def delay_requests(self, path: str, seconds: float, times: int = 1, method: str | None = None) -> None:
        """The next ``times`` matching requests are answered only after ``seconds``."""
        self.requests.append(RequestFault(method, re.compile(path), 0, times, seconds))

    def hold_requests(self, path: str, after: int = 0, times: int = 1, method: str | None = None) -> Hold:
        """Let ``after`` matching requests through, then hold the next ``times`` until released.

        A held request is processed normally once released (even if its client has gone,
        as Elasticsearch does); ``EsStandin.close`` releases every hold.
        """
        hold = Hold()
        self.holds.append(hold)
        self.requests.append(RequestFault(method, re.compile(path), 0, times, hold=hold, skip=after))
        return hold

    def fail_bulk_items(
        self, status: int = 429, times: int = 1, ids: set[str] | None = None, count: int | None = None
    ) -> None:
        """In the next ``times`` bulk requests, items with ``ids`` (or the first ``count``) fail."""
        self.items.append(ItemFault(status, times, ids, count))

    def refuse_bulk_items(self, ids: set[str], status: int = 400) -> None:
        """Items with ``ids`` fail with ``status`` in every bulk request until ``refused`` is cleared.

        A permanent fault, on top of the queued ``fail_bulk_items`` ones.
        """
        self.refused.update(dict.fromkeys(ids, status))

    def release_all(self) -> None:
        for hold in self.holds:
            hold.release()

    def take_request(self, method: str, path: str) -> RequestFault | None:
        with self.lock:
            for fault in self.requests:
                if (fault.method is None or fault.method == method) and fault.path.search(path):
                    if fault.skip > 0:
                        fault.skip -= 1
                        continue
                    fault.times -= 1
                    if fault.times <= 0:
                        self.requests.remove(fault)
                    return fault
        return None

    def take_items(self) -> ItemFault | None:
        with self.lock:
            if not self.items:
                return None
            fault = self.items[0]
            fault.times -= 1
            if fault.times <= 0:
                self.items.pop(0)
            return fault


# -- indices -------------------------------------------------------------------------------


@dataclass
class Index:
    name: str
    mappings: dict[str, Any]
    settings: dict[str, Any]
    docs: dict[str, dict[str, Any]] = field(default_factory=dict)
    versions: dict[str, int] = field(default_factory=dict)
    searchable: dict[str, dict[str, Any]] = field(default_factory=dict)
    seq_no: int = 0

    def refresh(self) -> None:
        self.searchable = dict(self.docs)


def validate_properties(properties: Any, prefix: str = "") -> None:
    if not isinstance(properties, dict):
        raise EsError(
            400, "mapper_parsing_exception", f"Expected map for property [properties] on field [{prefix}]"
        )
    for name, spec in properties.items():
        path = f"{prefix}{name}"
        if not isinstance(spec, dict):
            raise EsError(
                400, "mapper_parsing_exception", f"Expected map for property [fields] on field [{path}]"
            )
        kind = spec.get("type", "object")
        if kind not in FIELD_TYPES:
            raise EsError(
                400, "mapper_parsing_exception", f"No handler for type [{kind}] declared on field [{path}]"
            )
        if kind == "dense_vector":
            dims = spec.get("dims")
            if dims is not None and (not isinstance(dims, int) or not 1 <= dims <= 4096):
                raise EsError(
                    400,
                    "mapper_parsing_exception",
                    f"Failed to parse mapping: The number of dimensions should be in the range [1, 4096] "
                    f"but was [{dims}]",
                )
            similarity = spec.get("similarity", "cosine")
            if similarity not in SIMILARITIES:
                raise EsError(
                    400,
                    "mapper_parsing_exception",
                    f"Failed to parse mapping: Unknown value [{similarity}] for field [similarity]",
                )
        if kind in ("object", "nested") and "properties" in spec:
            validate_properties(spec["properties"], path + ".")


def check_document(properties: dict[str, Any], source: Any, doc_id: str, prefix: str = "") -> None:
    """Raise the document_parsing_exception ES would for vectors and nested fields."""
    if not isinstance(source, dict):
        return
    for key, value in source.items():
        spec = properties.get(key)
        path = f"{prefix}{key}"
        if spec is None or value is None:
            continue
        kind = spec.get("type", "object")
        if kind == "dense_vector":
            if not isinstance(value, list) or not all(isinstance(x, int | float) for x in value):
                raise EsError(
                    400,
                    "document_parsing_exception",
                    f"[1:1] failed to parse: [dense_vector] field [{path}] must be an array of numbers",
                )
            dims = spec.get("dims")
            if dims is not None and len(value) != dims:
                raise EsError(
                    400,
                    "document_parsing_exception",
                    f"[1:1] failed to parse: The [dense_vector] field [{path}] in doc [document with id "
                    f"'{doc_id}'] has a different number of dimensions [{len(value)}] than defined in the "
                    f"mapping [{dims}]",
                )
            if spec.get("similarity", "cosine") == "cosine" and math.fsum(x * x for x in value) == 0:
                raise EsError(
                    400,
                    "document_parsing_exception",
                    "[1:1] failed to parse: The [cosine] similarity does not support vectors with zero "
                    "magnitude.",
                )
        elif kind in ("object", "nested"):
            items = value if isinstance(value, list) else [value]
            for item in items:
                if not isinstance(item, dict):
                    raise EsError(
                        400,
                        "document_parsing_exception",
                        f"[1:1] object mapping for [{path}] tried to parse field [{path}] as object, but "
                        "found a concrete value",
                    )
                check_document(spec.get("properties", {}), item, doc_id, path + ".")
        elif kind in ("integer", "long"):
            for v in value if isinstance(value, list) else [value]:
                if (
                    isinstance(v, bool)
                    or not isinstance(v, int | float | str)
                    or not re.fullmatch(r"-?\d+(\.0+)?", str(v))
                ):
                    raise EsError(
                        400,
                        "document_parsing_exception",
                        f"[1:1] failed to parse field [{path}] of type [{kind}] in document with id "
                        f"'{doc_id}'. Preview of field's value: '{v}'",
                    )


# -- ingest pipelines ------------------------------------------------------------------------


class IngestDocument:
    """A document going through a pipeline: its source and the ``_ingest`` metadata."""

    def __init__(self, source: dict[str, Any]) -> None:
        self.source = source
        self.ingest: dict[str, Any] = {"timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())}

    def _root(self, path: str) -> tuple[dict[str, Any], list[str]]:
        parts = path.split(".")
        if parts[0] == "_ingest":
            return self.ingest, parts[1:]
        if parts[0] == "_source":
            return self.source, parts[1:]
        return self.source, parts

    def has(self, path: str) -> bool:
        try:
            self.get(path)
        except EsError:
            return False
        return True

    def get(self, path: str) -> Any:
        node: Any
        node, parts = self._root(path)
        for part in parts:
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                raise EsError(
                    400, "illegal_argument_exception", f"field [{part}] not present as part of path [{path}]"
                )
        return node

    def set(self, path: str, value: Any) -> None:
        node: Any
        node, parts = self._root(path)
        for part in parts[:-1]:
            if isinstance(node, dict):
                if not isinstance(node.get(part), dict | list):
                    if part in node and node[part] is not None:
                        raise EsError(
                            400,
                            "illegal_argument_exception",
                            f"cannot set [{parts[-1]}] with parent object of type "
                            f"[{type(node[part]).__name__}] as part of path [{path}]",
                        )
                    node[part] = {}
                node = node[part]
            elif isinstance(node, list) and part.isdigit():
                node = node[int(part)]
        if not isinstance(node, dict):
            raise EsError(
                400,
                "illegal_argument_exception",
                f"cannot set [{parts[-1]}] with parent object of type [{type(node).__name__}] as part of "
                f"path [{path}]",
            )
        node[parts[-1]] = value

    def remove(self, path: str) -> None:
        node: Any
        node, parts = self._root(path)
        for part in parts[:-1]:
            node = node[part]
        del node[parts[-1]]


MUSTACHE = re.compile(r"\{\{\{\s*([^}]+?)\s*\}\}\}|\{\{\s*([^}#/^!>&][^}]*?)\s*\}\}")
MEDIA_TYPES = ("application/json", "text/plain", "application/x-www-form-urlencoded")


def render(template: Any, doc: IngestDocument, media_type: str = "application/json") -> Any:
    """Mustache variables in strings (recursively in objects and lists); no sections.

    ``{{x}}`` is escaped for ``media_type`` (JSON string escaping by default, as ES's set
    processor does); ``{{{x}}}`` is inserted unescaped.
    """
    if isinstance(template, str):
        if re.search(r"\{\{[#/^]", template):
            raise EsError(
                400, "illegal_argument_exception", "the ES stand-in renders mustache variables only"
            )

        def value(match: re.Match[str]) -> str:
            path = match.group(1) or match.group(2)
            try:
                found = doc.get(path)
            except EsError:
                return ""
            text = found if isinstance(found, str) else json.dumps(found)
            if match.group(2) is not None and media_type == "application/json":
                return json.dumps(text)[1:-1]
            if match.group(2) is not None and media_type == "application/x-www-form-urlencoded":
                return quote_plus(text)
            return text

        return MUSTACHE.sub(value, template)
    if isinstance(template, dict):
        return {render(k, doc, media_type): render(v, doc, media_type) for k, v in template.items()}
    if isinstance(template, list):
        return [render(v, doc, media_type) for v in template]
    return template


class Processors:
    """Runs processor definitions against an IngestDocument."""

    def __init__(self, standin: EsStandin) -> None:
        self.standin = standin

    def run(self, processors: list[dict[str, Any]], doc: IngestDocument) -> None:
        for definition in processors:
            self.one(definition, doc)

    def one(self, definition: dict[str, Any], doc: IngestDocument) -> None:
        if len(definition) != 1:
            raise EsError(400, "parse_exception", "a processor must have exactly one type")
        kind, spec = next(iter(definition.items()))
        if "if" in spec or "on_failure" in spec:
            raise EsError(400, "parse_exception", "the ES stand-in does not run `if` or `on_failure`")
        try:
            getattr(self, f"_{kind}")(spec, doc)
        except EsError:
            if not spec.get("ignore_failure"):
                raise

    def _missing(self, spec: dict[str, Any], doc: IngestDocument, name: str = "field") -> bool:
        if doc.has(spec[name]):
            return False
        if spec.get("ignore_missing"):
            return True
        raise EsError(
            400,
            "illegal_argument_exception",
            f"field [{spec[name].split('.')[-1]}] not present as part of path [{spec[name]}]",
        )

    def _split(self, spec: dict[str, Any], doc: IngestDocument) -> None:
        if self._missing(spec, doc):
            return
        value = doc.get(spec["field"])
        if not isinstance(value, str):
            raise EsError(
                400,
                "illegal_argument_exception",
                f"field [{spec['field']}] of type [{type(value).__name__}] cannot be cast to "
                "[java.lang.String]",
            )
        parts = re.split(spec["separator"], value)
        if not spec.get("preserve_trailing"):
            while parts and parts[-1] == "":
                parts.pop()
        doc.set(spec.get("target_field", spec["field"]), parts)

    def _trim(self, spec: dict[str, Any], doc: IngestDocument) -> None:
        if self._missing(spec, doc):
            return
        value = doc.get(spec["field"])
        if isinstance(value, list):
            if not all(isinstance(v, str) for v in value):
                raise EsError(
                    400, "illegal_argument_exception", f"field [{spec['field']}] holds a non-string value"
                )
            trimmed: Any = [v.strip() for v in value]
        elif isinstance(value, str):
            trimmed = value.strip()
        else:
            raise EsError(
                400, "illegal_argument_exception", f"field [{spec['field']}] cannot be cast to a string"
            )
        doc.set(spec.get("target_field", spec["field"]), trimmed)

    def _set(self, spec: dict[str, Any], doc: IngestDocument) -> None:
        if not spec.get("override", True) and doc.has(spec["field"]) and doc.get(spec["field"]) is not None:
            return
        media_type = spec.get("media_type", "application/json")
        if media_type not in MEDIA_TYPES:
            raise EsError(
                400, "parse_exception", f"property [media_type] must be one of {', '.join(MEDIA_TYPES)}"
            )
        value = doc.get(spec["copy_from"]) if "copy_from" in spec else render(spec["value"], doc, media_type)
        if spec.get("ignore_empty_value") and value in (None, ""):
            return
        doc.set(render(spec["field"], doc), copy.deepcopy(value))

    def _remove(self, spec: dict[str, Any], doc: IngestDocument) -> None:
        fields = spec["field"] if isinstance(spec["field"], list) else [spec["field"]]
        for name in fields:
            if doc.has(name):
                doc.remove(name)
            elif not spec.get("ignore_missing"):
                raise EsError(
                    400, "illegal_argument_exception", f"field [{name}] not present as part of path [{name}]"
                )

    def _foreach(self, spec: dict[str, Any], doc: IngestDocument) -> None:
        if self._missing(spec, doc):
            return
        items = doc.get(spec["field"])
        if not isinstance(items, list):
            raise EsError(
                400,
                "illegal_argument_exception",
                f"field [{spec['field']}] of type [{type(items).__name__}] "
                "cannot be cast to [java.util.List]",
            )
        previous = doc.ingest.get("_value")
        results = []
        for item in items:
            doc.ingest["_value"] = item
            self.one(spec["processor"], doc)
            results.append(doc.ingest["_value"])
        doc.ingest["_value"] = previous
        doc.set(spec["field"], results)

    def _inference(self, spec: dict[str, Any], doc: IngestDocument) -> None:
        if "input_output" not in spec:
            raise EsError(
                400,
                "parse_exception",
                "the ES stand-in implements the inference processor's input_output only",
            )
        endpoint = self.standin.endpoints.get(spec["model_id"])
        if endpoint is None:
            raise EsError(
                404, "resource_not_found_exception", f"Could not find trained model [{spec['model_id']}]"
            )
        pairs = spec["input_output"] if isinstance(spec["input_output"], list) else [spec["input_output"]]
        for pair in pairs:
            text = doc.get(pair["input_field"])
            if not isinstance(text, str):
                raise EsError(
                    400,
                    "illegal_argument_exception",
                    f"input field [{pair['input_field']}] cannot be processed because it is not a text field",
                )
            doc.set(pair["output_field"], self.standin.infer(endpoint, [text])[0])


# -- inference endpoints -------------------------------------------------------------------


@dataclass
class Endpoint:
    inference_id: str
    task_type: str
    service: str
    service_settings: dict[str, Any]
    dims: int = 0

    def public(self) -> dict[str, Any]:
        settings = {k: v for k, v in self.service_settings.items() if k != "api_key"}
        settings.update(
            {"similarity": "cosine", "dimensions": self.dims, "rate_limit": {"requests_per_minute": 3000}}
        )
        return {
            "inference_id": self.inference_id,
            "task_type": self.task_type,
            "service": self.service,
            "service_settings": settings,
            "chunking_settings": {"strategy": "sentence", "max_chunk_size": 250, "sentence_overlap": 1},
        }


# -- the server ----------------------------------------------------------------------------


@dataclass
class Call:
    method: str
    path: str
    params: dict[str, str]
    headers: dict[str, str]


class EsStandin:
    """State and HTTP handlers; ``app()`` is the ASGI app to serve."""

    def __init__(
        self,
        version: str = "9.1.0",
        rrf_licensed: bool = True,
        inference_backoff: float = 0.02,
        inference_retries: int = 3,
        inference_timeout: float = 10.0,
    ) -> None:
        self.version = version
        self.major = int(version.split(".")[0])
        self.rrf_licensed = rrf_licensed
        self.inference_backoff = inference_backoff
        self.inference_retries = inference_retries
        self.inference_timeout = inference_timeout
        self.indices: dict[str, Index] = {}
        self.pipelines: dict[str, dict[str, Any]] = {}
        self.endpoints: dict[str, Endpoint] = {}
        self.faults = Faults()
        self.calls: list[Call] = []
        self.inference_calls: list[tuple[str, list[str]]] = []
        self.lock = threading.RLock()
        self.processors = Processors(self)
        # One pooled client, like ES's own HTTP client for inference services.
        self.http = httpx.Client(timeout=inference_timeout)

    # -- inference service -----------------------------------------------------------------

    def infer(self, endpoint: Endpoint, texts: list[str]) -> list[list[float]]:
        """Call the endpoint's service like ES: batches of <= 20, retries, 413 halves the batch."""
        out: list[list[float]] = []
        for start in range(0, len(texts), INFERENCE_BATCH):
            out.extend(self._infer_batch(endpoint, texts[start : start + INFERENCE_BATCH]))
        return out

    def _infer_batch(self, endpoint: Endpoint, batch: list[str]) -> list[list[float]]:
        settings = endpoint.service_settings
        headers = {"authorization": f"Bearer {settings['api_key']}", "content-type": "application/json"}
        if endpoint.service == "hugging_face":
            payload: dict[str, Any] = {"inputs": batch}
        else:
            payload = {
                "input": batch,
                "model": settings["model_id"],
                "encoding_format": "base64" if self.major >= 9 else "float",
            }
        attempt = 0
        while True:
            self.inference_calls.append((settings["url"], list(batch)))
            try:
                response = self.http.post(settings["url"], json=payload, headers=headers)
                status = response.status_code
            except httpx.TimeoutException:
                status, response = 408, None
            except httpx.HTTPError as exc:
                raise EsError(
                    500,
                    "status_exception",
                    f"Failed to send request to inference entity id [{endpoint.inference_id}]: {exc}",
                ) from exc
            if status == 413 and len(batch) > 1:
                half = len(batch) // 2
                return self._infer_batch(endpoint, batch[:half]) + self._infer_batch(endpoint, batch[half:])
            if status in (408, 429, 502, 503) and attempt < self.inference_retries:
                time.sleep(self.inference_backoff * (2**attempt))
                attempt += 1
                continue
            if status != 200 or response is None:
                kind = (
                    "rate limit"
                    if status == 429
                    else "authentication error"
                    if status == 401
                    else "unsuccessful"
                )
                raise EsError(
                    status if status in (401, 408, 429, 503) else 400,
                    "status_exception",
                    f"Received an {kind} status code for request from inference entity id "
                    f"[{endpoint.inference_id}] status [{status}]. Error message: "
                    f"[{response.text[:200] if response is not None else 'timed out'}]",
                )
            return self._parse_embeddings(endpoint, response.json(), len(batch))

    def _parse_embeddings(self, endpoint: Endpoint, body: Any, expected: int) -> list[list[float]]:
        if endpoint.service == "hugging_face":
            vectors = body.get("embeddings") if isinstance(body, dict) else body
        else:
            data = sorted(body["data"], key=lambda d: d["index"])
            vectors = []
            for item in data:
                value = item["embedding"]
                if isinstance(value, str):
                    raw = base64.b64decode(value)
                    value = list(struct.unpack(f"<{len(raw) // 4}f", raw))
                vectors.append(value)
        if not isinstance(vectors, list) or len(vectors) != expected:
            raise EsError(
                400, "status_exception", f"Failed to parse the response of [{endpoint.inference_id}]"
            )
        if endpoint.dims and any(len(v) != endpoint.dims for v in vectors):
            raise EsError(
                400,
                "status_exception",
                f"inference entity [{endpoint.inference_id}] returned vectors of another dimension than "
                f"[{endpoint.dims}]",
            )
        return [[float(x) for x in v] for v in vectors]

    # -- HTTP ----------------------------------------------------------------------------

    def _content_type(self, request: Request) -> tuple[str, EsError | None]:
        accept = request.headers.get("accept", "")
        ctype = request.headers.get("content-type", "")
        accept_v = COMPAT.search(accept)
        ctype_v = COMPAT.search(ctype)
        allowed = (self.major, self.major - 1)
        for header, found in (("Accept", accept_v), ("Content-Type", ctype_v)):
            if found and int(found.group(1)) not in allowed:
                return "application/json", EsError(
                    400,
                    "media_type_header_exception",
                    "Invalid media-type value on headers [Accept, Content-Type]",
                    caused_by={
                        "type": "status_exception",
                        "reason": f"{header} version must be either version {allowed[0]} or "
                        f"{allowed[1]}, but found {found.group(1)}. "
                        f"{header}={accept if header == 'Accept' else ctype}",
                    },
                )
        if ctype and (
            bool(accept_v) != bool(ctype_v)
            or (accept_v and ctype_v and accept_v.group(1) != ctype_v.group(1))
        ):
            if accept_v or ctype_v:
                return "application/json", EsError(
                    400,
                    "media_type_header_exception",
                    "Invalid media-type value on headers [Accept, Content-Type]",
                    caused_by={
                        "type": "status_exception",
                        "reason": "A compatible version is required on both Content-Type and Accept "
                        "headers if either one has requested a compatible version and the compatible "
                        f"versions must match. Accept={accept}, Content-Type={ctype}",
                    },
                )
        if accept_v:
            return f"application/vnd.elasticsearch+json;compatible-with={accept_v.group(1)}", None
        return "application/json", None

    def _respond(self, status: int, body: Any, content_type: str, head: bool = False) -> Response:
        headers = {"x-elastic-product": "Elasticsearch"}
        if head:
            return Response(status_code=status, headers=headers, media_type=content_type)
        return Response(json.dumps(body), status_code=status, headers=headers, media_type=content_type)

    async def handle(self, request: Request) -> Response:
        path = request.url.path
        method = request.method
        params = dict(parse_qsl(request.url.query, keep_blank_values=True))
        self.calls.append(Call(method, path, params, dict(request.headers)))
        content_type, header_error = self._content_type(request)
        if header_error is not None:
            return self._respond(header_error.status, header_error.body(), content_type)
        # Read first, like ES: a delayed or held request is still carried out if its client has gone.
        raw = await request.body()
        fault = self.faults.take_request(method, path)
        if fault is not None and fault.hold is not None:
            fault.hold.arrived.set()
            await run_in_threadpool(fault.hold.released.wait)
            try:
                return await self._carry_out(method, path, params, raw, content_type)
            finally:
                fault.hold.finished.set()
        if fault is not None and fault.delay:
            await asyncio.sleep(fault.delay)
        elif fault is not None:
            error = EsError(
                fault.status,
                "es_rejected_execution_exception" if fault.status == 429 else "status_exception",
                f"injected fault {fault.status}",
            )
            return self._respond(fault.status, error.body(), content_type)
        return await self._carry_out(method, path, params, raw, content_type)

    async def _carry_out(
        self, method: str, path: str, params: dict[str, str], raw: bytes, content_type: str
    ) -> Response:
        try:
            status, body = await run_in_threadpool(self._dispatch, method, path, params, raw)
        except EsError as exc:
            status, body = exc.status, exc.body()
        except SearchError as exc:
            status, body = exc.status, EsError(exc.status, exc.kind, exc.reason).body()
        return self._respond(status, body, content_type, head=method == "HEAD")

    def _json(self, raw: bytes) -> Any:
        if not raw:
            return {}
        try:
            return json.loads(raw)
        except json.JSONDecodeError as exc:
            raise EsError(
                400, "x_content_parse_exception", f"[1:1] failed to parse the request body: {exc.msg}"
            ) from exc

    def _dispatch(self, method: str, path: str, params: dict[str, str], raw: bytes) -> tuple[int, Any]:
        parts = [p for p in path.split("/") if p]
        with self.lock:
            if not parts:
                return 200, self._info()
            head = parts[0]
            if head == "_bulk":
                return self._bulk(None, raw, params)
            if head == "_mget":
                return self._mget(None, self._json(raw), params)
            if head == "_ingest" and len(parts) >= 2 and parts[1] == "pipeline":
                return self._pipeline(method, parts[2] if len(parts) > 2 else None, raw)
            if head == "_inference":
                return self._inference_api(method, parts[1:], raw, params)
            if head.startswith("_"):
                raise EsError(
                    400,
                    "illegal_argument_exception",
                    f"no handler found for uri [{path}] and method [{method}] in the ES stand-in",
                )
            return self._index_api(method, head, parts[1:], raw, params)

    def _info(self) -> dict[str, Any]:
        return {
            "name": "standin-node",
            "cluster_name": "standin",
            "cluster_uuid": "standin-uuid",
            "version": {
                "number": self.version,
                "build_flavor": "default",
                "build_type": "docker",
                "lucene_version": "10.0.0",
                "minimum_wire_compatibility_version": "8.18.0",
                "minimum_index_compatibility_version": "8.0.0",
            },
            "tagline": "You Know, for Search",
        }

    # -- index APIs ----------------------------------------------------------------------

    def _index(self, name: str) -> Index:
        index = self.indices.get(name)
        if index is None:
            raise EsError(
                404,
                "index_not_found_exception",
                f"no such index [{name}]",
                index=name,
                **{"resource.type": "index_or_alias", "resource.id": name},
            )
        return index

    def _index_api(
        self, method: str, name: str, rest: list[str], raw: bytes, params: dict[str, str]
    ) -> tuple[int, Any]:
        if not rest:
            if method == "HEAD":
                return (200 if name in self.indices else 404), None
            if method == "PUT":
                return self._create_index(name, self._json(raw))
            if method == "GET":
                index = self._index(name)
                return 200, {
                    name: {"aliases": {}, "mappings": index.mappings, "settings": {"index": index.settings}}
                }
            if method == "DELETE":
                self._index(name)
                del self.indices[name]
                return 200, {"acknowledged": True}
        op = rest[0]
        if op == "_mapping":
            index = self._index(name)
            if method == "GET":
                return 200, {name: {"mappings": index.mappings}}
            body = self._json(raw)
            props = body.get("properties", {})
            validate_properties(props)
            have = index.mappings.setdefault("properties", {})
            for field_name, spec in props.items():
                if field_name in have and have[field_name].get("type", "object") != spec.get(
                    "type", "object"
                ):
                    raise EsError(
                        400,
                        "illegal_argument_exception",
                        f"mapper [{field_name}] cannot be changed from type "
                        f"[{have[field_name].get('type', 'object')}] to [{spec.get('type', 'object')}]",
                    )
                have[field_name] = spec
            return 200, {"acknowledged": True}
        if op == "_doc":
            return self._doc(method, name, rest[1] if len(rest) > 1 else None, raw, params)
        if op == "_bulk":
            return self._bulk(name, raw, params)
        if op == "_mget":
            return self._mget(name, self._json(raw), params)
        if op == "_refresh":
            self._index(name).refresh()
            return 200, {"_shards": {"total": 1, "successful": 1, "failed": 0}}
        if op == "_search":
            return 200, self._search(name, self._json(raw))
        if op == "_count":
            body = self._json(raw)
            index = self._index(name)
            searcher = Searcher(index.searchable, Mappings(index.mappings.get("properties", {})), name)
            found = searcher.search({"query": body.get("query", {"match_all": {}}), "size": 0})
            return 200, {
                "count": found["hits"]["total"]["value"],
                "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
            }
        if op == "_delete_by_query":
            return self._delete_by_query(name, self._json(raw), params)
        raise EsError(
            400,
            "illegal_argument_exception",
            f"no handler found for uri [/{name}/{'/'.join(rest)}] and method [{method}] in the ES stand-in",
        )

    def _create_index(self, name: str, body: dict[str, Any]) -> tuple[int, Any]:
        if name in self.indices:
            raise EsError(
                400, "resource_already_exists_exception", f"index [{name}/standin] already exists", index=name
            )
        if name != name.lower() or name.startswith(("_", "-", "+")):
            raise EsError(
                400,
                "invalid_index_name_exception",
                f"Invalid index name [{name}], must be lowercase",
                index=name,
            )
        unknown = set(body) - {"mappings", "settings", "aliases"}
        if unknown:
            raise EsError(400, "parse_exception", f"unknown key [{sorted(unknown)[0]}] for create index")
        mappings = copy.deepcopy(body.get("mappings", {}))
        validate_properties(mappings.get("properties", {}))
        self.indices[name] = Index(name, mappings, copy.deepcopy(body.get("settings", {})))
        return 200, {"acknowledged": True, "shards_acknowledged": True, "index": name}

    def _prepare(self, index: Index, doc_id: str, source: Any, pipeline: str | None) -> dict[str, Any]:
        if not isinstance(source, dict):
            raise EsError(
                400, "document_parsing_exception", "[1:1] failed to parse: the document must be an object"
            )
        doc = copy.deepcopy(source)
        if pipeline and pipeline != "_none":
            definition = self.pipelines.get(pipeline)
            if definition is None:
                raise EsError(
                    400, "illegal_argument_exception", f"pipeline with id [{pipeline}] does not exist"
                )
            ingest = IngestDocument(doc)
            self.processors.run(definition.get("processors", []), ingest)
            doc = ingest.source
        check_document(index.mappings.get("properties", {}), doc, doc_id)
        return doc

    def _write(self, index: Index, doc_id: str, source: dict[str, Any], create_only: bool) -> dict[str, Any]:
        exists = doc_id in index.docs
        if create_only and exists:
            raise EsError(
                409,
                "version_conflict_engine_exception",
                f"[{doc_id}]: version conflict, document already exists (current version "
                f"[{index.versions[doc_id]}])",
                index=index.name,
                shard="0",
            )
        index.docs[doc_id] = source
        index.versions[doc_id] = index.versions.get(doc_id, 0) + 1
        index.seq_no += 1
        return {
            "_index": index.name,
            "_id": doc_id,
            "_version": index.versions[doc_id],
            "result": "updated" if exists else "created",
            "_shards": {"total": 1, "successful": 1, "failed": 0},
            "_seq_no": index.seq_no,
            "_primary_term": 1,
            "status": 200 if exists else 201,
        }

    def _auto_index(self, name: str) -> Index:
        if name not in self.indices:
            self._create_index(name, {})
        return self.indices[name]

    def _refresh_param(self, index: Index, params: dict[str, str]) -> None:
        if params.get("refresh") in ("", "true", "wait_for"):
            index.refresh()

    def _doc(
        self, method: str, name: str, doc_id: str | None, raw: bytes, params: dict[str, str]
    ) -> tuple[int, Any]:
        if method in ("PUT", "POST"):
            index = self._auto_index(name)
            doc_id = doc_id or f"auto-{index.seq_no + 1}"
            source = self._prepare(index, doc_id, self._json(raw), params.get("pipeline"))
            result = self._write(index, doc_id, source, params.get("op_type") == "create")
            self._refresh_param(index, params)
            return result.pop("status"), result
        index = self._index(name)
        if doc_id is None:
            raise EsError(400, "illegal_argument_exception", "a document id is required")
        if method == "GET":
            if doc_id not in index.docs:
                return 404, {"_index": name, "_id": doc_id, "found": False}
            return 200, {
                "_index": name,
                "_id": doc_id,
                "_version": index.versions[doc_id],
                "_seq_no": 0,
                "_primary_term": 1,
                "found": True,
                "_source": index.docs[doc_id],
            }
        if method == "DELETE":
            found = index.docs.pop(doc_id, None) is not None
            self._refresh_param(index, params)
            return (200 if found else 404), {
                "_index": name,
                "_id": doc_id,
                "result": "deleted" if found else "not_found",
            }
        raise EsError(405, "illegal_argument_exception", f"method [{method}] is not allowed on _doc")

    def _bulk(self, default_index: str | None, raw: bytes, params: dict[str, str]) -> tuple[int, Any]:
        started = time.monotonic()
        lines = [line for line in raw.decode().split("\n") if line.strip()]
        fault = self.faults.take_items()
        items = []
        touched: set[str] = set()
        position = 0
        i = 0
        while i < len(lines):
            try:
                action_line = json.loads(lines[i])
            except json.JSONDecodeError as exc:
                raise EsError(
                    400, "x_content_parse_exception", f"[1:1] malformed action line: {exc.msg}"
                ) from exc
            action, meta = next(iter(action_line.items()))
            if action not in ("index", "create", "delete"):
                raise EsError(
                    400,
                    "illegal_argument_exception",
                    f"Malformed action/metadata line [{i + 1}], the ES stand-in knows index/create/delete",
                )
            source = None
            if action != "delete":
                i += 1
                source = json.loads(lines[i])
            i += 1
            name = meta.get("_index", default_index)
            doc_id = meta.get("_id")
            item: dict[str, Any]
            try:
                if name is None:
                    raise EsError(
                        400, "action_request_validation_exception", "Validation Failed: 1: index is missing;"
                    )
                injected = self.faults.refused.get(str(doc_id))
                if fault is not None and (
                    (fault.ids is not None and doc_id in fault.ids)
                    or (fault.count is not None and position < fault.count)
                ):
                    injected = injected or fault.status
                position += 1
                if injected is not None:
                    kind = "es_rejected_execution_exception" if injected == 429 else "status_exception"
                    raise EsError(injected, kind, f"injected item fault {injected}")
                if action == "delete":
                    index = self._index(name)
                    found = index.docs.pop(str(doc_id), None) is not None
                    item = {
                        "_index": name,
                        "_id": doc_id,
                        "result": "deleted" if found else "not_found",
                        "status": 200 if found else 404,
                    }
                else:
                    index = self._auto_index(name)
                    doc_id = doc_id or f"auto-{index.seq_no + 1}"
                    prepared = self._prepare(
                        index, doc_id, source, meta.get("pipeline", params.get("pipeline"))
                    )
                    item = self._write(index, doc_id, prepared, action == "create")
                touched.add(name)
            except EsError as exc:
                item = {"_index": name, "_id": doc_id, "status": exc.status, "error": exc.item_error()}
            items.append({action: item})
        for name in touched:
            self._refresh_param(self.indices[name], params)
        took = int((time.monotonic() - started) * 1000)
        return 200, {
            "errors": any("error" in next(iter(it.values())) for it in items),
            "took": took,
            "items": items,
        }

    def _mget(
        self, default_index: str | None, body: dict[str, Any], params: dict[str, str]
    ) -> tuple[int, Any]:
        if "ids" in body:
            requests = [{"_index": default_index, "_id": i} for i in body["ids"]]
        else:
            requests = [
                {"_index": d.get("_index", default_index), "_id": d["_id"]} for d in body.get("docs", [])
            ]
        spec: Any = params.get("_source", True)
        if spec in ("false", "true"):
            spec = spec == "true"
        if "_source_includes" in params or "_source_excludes" in params:
            spec = {
                "includes": [p for p in params.get("_source_includes", "").split(",") if p],
                "excludes": [p for p in params.get("_source_excludes", "").split(",") if p],
            }
        includes, excludes = source_filter(spec)
        docs = []
        for r in requests:
            index = self._index(str(r["_index"]))
            doc_id = str(r["_id"])
            if doc_id not in index.docs:
                docs.append({"_index": index.name, "_id": doc_id, "found": False})
                continue
            doc: dict[str, Any] = {
                "_index": index.name,
                "_id": doc_id,
                "_version": index.versions[doc_id],
                "_seq_no": 0,
                "_primary_term": 1,
                "found": True,
            }
            if includes is not None:
                doc["_source"] = filter_source(index.docs[doc_id], includes, excludes)
            docs.append(doc)
        return 200, {"docs": docs}

    def _search(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        index = self._index(name)
        if "retriever" in body:
            major, minor = (int(x) for x in self.version.split(".")[:2])
            if (major, minor) < (8, 14):
                raise EsError(
                    400, "x_content_parse_exception", "[1:14] Unknown key for a START_OBJECT in [retriever]."
                )
            if "rrf" in json.dumps(body["retriever"]) and not self.rrf_licensed:
                raise EsError(
                    403,
                    "security_exception",
                    "current license is non-compliant for [Reciprocal Rank Fusion (RRF)]",
                    **{"license.expired.feature": "Reciprocal Rank Fusion (RRF)"},
                )
        searcher = Searcher(index.searchable, Mappings(index.mappings.get("properties", {})), name)
        return searcher.search(body)

    def _delete_by_query(self, name: str, body: dict[str, Any], params: dict[str, str]) -> tuple[int, Any]:
        index = self._index(name)
        searcher = Searcher(index.searchable, Mappings(index.mappings.get("properties", {})), name)
        found = searcher.search(
            {"query": body.get("query", {"match_all": {}}), "size": 10_000, "_source": False}
        )
        deleted = 0
        for hit in found["hits"]["hits"]:
            if index.docs.pop(hit["_id"], None) is not None:
                deleted += 1
        self._refresh_param(index, params)
        return 200, {
            "took": 1,
            "timed_out": False,
            "total": len(found["hits"]["hits"]),
            "deleted": deleted,
            "batches": 1,
            "version_conflicts": 0,
            "noops": 0,
            "failures": [],
        }

    # -- ingest pipeline API ---------------------------------------------------------------

    def _pipeline(self, method: str, pipeline_id: str | None, raw: bytes) -> tuple[int, Any]:
        if method == "GET":
            if pipeline_id is None:
                return 200, copy.deepcopy(self.pipelines)
            if pipeline_id not in self.pipelines:
                return 404, {}
            return 200, {pipeline_id: copy.deepcopy(self.pipelines[pipeline_id])}
        if pipeline_id is None:
            raise EsError(400, "illegal_argument_exception", "a pipeline id is required")
        if method == "PUT":
            body = self._json(raw)
            for definition in body.get("processors", []):
                kind = next(iter(definition))
                if not hasattr(self.processors, f"_{kind}"):
                    raise EsError(
                        400,
                        "parse_exception",
                        f"No processor type exists with name [{kind}]",
                        processor_type=kind,
                    )
                if kind == "inference" and definition[kind].get("model_id") not in self.endpoints:
                    raise EsError(
                        404,
                        "resource_not_found_exception",
                        f"Could not find trained model [{definition[kind].get('model_id')}]",
                    )
            self.pipelines[pipeline_id] = body
            return 200, {"acknowledged": True}
        if method == "DELETE":
            if self.pipelines.pop(pipeline_id, None) is None:
                raise EsError(404, "resource_not_found_exception", f"pipeline [{pipeline_id}] is missing")
            return 200, {"acknowledged": True}
        raise EsError(405, "illegal_argument_exception", f"method [{method}] is not allowed on pipelines")

    # -- inference API -------------------------------------------------------------------

    def _inference_api(
        self, method: str, rest: list[str], raw: bytes, params: dict[str, str]
    ) -> tuple[int, Any]:
        if len(rest) == 2:
            task_type, inference_id = rest
        elif len(rest) == 1:
            task_type, inference_id = None, rest[0]
        else:
            task_type, inference_id = None, None
        if method == "GET":
            if inference_id in (None, "_all"):
                return 200, {"endpoints": [e.public() for e in self.endpoints.values()]}
            endpoint = self.endpoints.get(str(inference_id))
            if endpoint is None or (task_type is not None and task_type != endpoint.task_type):
                raise EsError(
                    404, "resource_not_found_exception", f"Inference endpoint not found [{inference_id}]"
                )
            return 200, {"endpoints": [endpoint.public()]}
        if inference_id is None:
            raise EsError(400, "illegal_argument_exception", "an inference id is required")
        if method == "PUT":
            return 200, self._create_endpoint(
                str(task_type or "text_embedding"), inference_id, self._json(raw)
            )
        if method == "DELETE":
            if inference_id not in self.endpoints:
                raise EsError(
                    404, "resource_not_found_exception", f"Inference endpoint not found [{inference_id}]"
                )
            users = [p for p, d in self.pipelines.items() if inference_id in json.dumps(d)]
            if users and params.get("force") != "true":
                raise EsError(
                    400,
                    "status_exception",
                    f"Inference endpoint {inference_id} is referenced by pipelines and cannot be deleted. "
                    "Use `force` to delete it anyway, or use `dry_run` to list the pipelines.",
                )
            del self.endpoints[inference_id]
            return 200, {"acknowledged": True, "pipelines": users}
        if method == "POST":
            endpoint = self.endpoints.get(inference_id)
            if endpoint is None:
                raise EsError(
                    404, "resource_not_found_exception", f"Inference endpoint not found [{inference_id}]"
                )
            body = self._json(raw)
            texts = body.get("input")
            texts = [texts] if isinstance(texts, str) else list(texts or [])
            return 200, {"text_embedding": [{"embedding": v} for v in self.infer(endpoint, texts)]}
        raise EsError(405, "illegal_argument_exception", f"method [{method}] is not allowed on _inference")

    def _create_endpoint(self, task_type: str, inference_id: str, body: dict[str, Any]) -> dict[str, Any]:
        if inference_id in self.endpoints:
            raise EsError(
                400,
                "resource_already_exists_exception",
                f"Inference endpoint [{inference_id}] already exists",
            )
        if task_type != "text_embedding":
            raise EsError(
                400,
                "status_exception",
                f"The ES stand-in supports task type [text_embedding], not [{task_type}]",
            )
        service = body.get("service")
        settings = dict(body.get("service_settings", {}))
        required = {"hugging_face": ("api_key", "url"), "openai": ("api_key", "model_id", "url")}
        if service not in required:
            raise EsError(400, "status_exception", f"Unknown service [{service}] for model [{inference_id}]")
        missing = [name for name in required[service] if not settings.get(name)]
        if missing:
            raise EsError(
                400,
                "validation_exception",
                "Validation Failed: "
                + " ".join(
                    f"{i}: [service_settings] does not contain the required setting [{name}];"
                    for i, name in enumerate(missing, start=1)
                ),
            )
        endpoint = Endpoint(inference_id, task_type, service, settings)
        try:
            endpoint.dims = len(self.infer(endpoint, ["how big"])[0])
        except EsError as exc:
            raise EsError(
                400,
                "status_exception",
                "Could not complete inference endpoint creation as validation call to service threw an "
                "exception.",
                caused_by={"type": exc.kind, "reason": exc.reason},
            ) from exc
        self.endpoints[inference_id] = endpoint
        return endpoint.public()

    def close(self) -> None:
        self.faults.release_all()
        self.http.close()

    def app(self) -> Starlette:
        methods = ["GET", "HEAD", "PUT", "POST", "DELETE"]
        return Starlette(
            routes=[
                Route("/", self.handle, methods=methods),
                Route("/{path:path}", self.handle, methods=methods),
            ]
        )
