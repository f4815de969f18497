"""An Elasticsearch stand-in for tests: the REST subset rag uses, on a real loopback socket.

It is a test double, never storage. It speaks like a cluster of ``version`` (default 9.1.0):
- every response carries ``X-Elastic-Product: Elasticsearch``; bodies are JSON with the
  content type the request's ``Accept`` asked for (``application/vnd.elasticsearch+json;
  compatible-with=N`` or ``application/json``); a ``compatible-with`` outside
  {major, major - 1}, or one on ``Accept`` but not on a ``Content-Type`` that was sent, is
  refused with 400 ``media_type_header_exception``, as real clusters do; ``filter_path`` works
  on every response; unknown URL parameters are refused like ES refuses them;
- errors are ``{"error": {"root_cause": [...], "type", "reason"}, "status"}``;
- indices: create (mapping validation: field types and parameters, ``dense_vector`` dims
  1..4096, similarity, ``element_type`` float, ``index_options`` as ES validates them for the
  dims; ``semantic_text``), exists, get, get/put mapping, delete, ``_refresh``, ``_flush`` and
  ``_forcemerge`` (no-ops here), dynamic mapping (``dynamic``, ``dynamic_templates``);
  documents: ``_doc``/``_create`` (with ``?pipeline=``, ``?refresh=``), ``_bulk`` (per-item
  results), ``_mget``, ``_search`` and ``_count`` on one index, a list or a wildcard (see
  ``es_search``), ``_delete_by_query``. Search sees what was refreshed, GET sees everything,
  like ES. Documents are checked against the mappings (ids, vector dims, zero vectors under
  cosine, unit vectors under dot_product, nested objects);
- ingest pipelines: put (each processor's configuration checked, unknown processors refused
  with ES's ``parse_exception``), get, delete (wildcards); the processors ``split``, ``trim``,
  ``set``, ``foreach``, ``remove``, ``uppercase``, ``lowercase`` and ``inference``
  (``input_output``; writes ``model_id`` next to each result like ES's InferenceProcessor),
  ``on_failure`` and ``ignore_failure``;
- ``_inference``: put/get/delete (``force``) and perform; service ``hugging_face`` POSTs
  ``{"inputs": [...]}`` to its ``url`` with ``Authorization: Bearer``, ``openai`` POSTs
  ``{"input", "model", "encoding_format"}`` (base64 from 9.0 on, float before). Like ES's
  inference services they retry what each service retries (``RETRIED``; timeouts too), 3
  attempts with ES's random, doubling delays within its total timeout (:class:`InferenceRetry`),
  halve the batch on 413, and then answer ES's error (429 stays 429, 5xx becomes 400, with
  ES's messages); ``rate_limit`` queues each endpoint's calls like ES's per-node limiter
  (:class:`RateLimiter`), on a :class:`Clock` that tests replace by a logical one; creating an
  endpoint embeds ``["how big"]`` to learn the dimensions;
- ``semantic_text``: indexing chunks the values (``chunking_settings`` of the field or the
  endpoint: ``sentence`` (ES's default: 250 words, overlap 1 sentence), ``word``, ``none``)
  and embeds all chunks of a request in batches of the service's size (hugging_face 20,
  openai 2048); ``_source`` keeps the text, the chunks live in ``_inference_fields`` (shown in
  search hits when ``fields`` asks for it), searched by the ``semantic`` query and returned by
  the ``semantic`` highlighter;
- ``retriever.rrf`` from 8.14 on; ``rrf_licensed=False`` answers 403 like a basic license.

Vectors are scored exactly: ``index_options`` are validated and kept, but nothing is
quantized, so int8/int4/bbq fields rank like ES after full-precision rescoring.

Fault injection (``faults``): fail whole requests (status, or a delay past the client's
timeout), hold requests until the test releases them (to kill a client while its request
is in flight), fail chosen bulk items with a status (429 ``es_rejected_execution_exception``
by default) for the next few bulk requests, or refuse chosen ids in every bulk request.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import fnmatch
import hashlib
import json
import math
import random
import re
import struct
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote_plus

import httpx
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.rag.es_search import (
    Mappings,
    Searcher,
    SearchError,
    filter_source,
    source_filter,
    source_spec,
)
from tests.rag.es_search import render as render_hits

FIELD_TYPES = {
    "text",
    "keyword",
    "integer",
    "long",
    "short",
    "float",
    "double",
    "boolean",
    "date",
    "object",
    "nested",
    "dense_vector",
    "semantic_text",
}
SIMILARITIES = {"cosine", "dot_product", "l2_norm", "max_inner_product"}
# index_options type -> its parameters (ES 9.1, float vectors).
INDEX_OPTIONS = {
    "hnsw": {"m", "ef_construction"},
    "int8_hnsw": {"m", "ef_construction", "confidence_interval", "rescore_vector"},
    "int4_hnsw": {"m", "ef_construction", "confidence_interval", "rescore_vector"},
    "bbq_hnsw": {"m", "ef_construction", "rescore_vector"},
    "flat": set(),
    "int8_flat": {"confidence_interval", "rescore_vector"},
    "int4_flat": {"confidence_interval", "rescore_vector"},
    "bbq_flat": {"rescore_vector"},
}
BBQ_MIN_DIMS = 64
FIELD_PARAMS = {
    "dense_vector": {"type", "dims", "index", "similarity", "index_options", "element_type", "meta"},
    "semantic_text": {
        "type",
        "inference_id",
        "search_inference_id",
        "chunking_settings",
        "index_options",
        "model_settings",
        "meta",
    },
}
# Inference: what each service accepts and how many texts one chunked-inference request holds.
SERVICE_SETTINGS = {
    "hugging_face": {"url", "api_key", "rate_limit", "similarity", "dimensions", "max_input_tokens"},
    "openai": {
        "url",
        "api_key",
        "model_id",
        "organization_id",
        "rate_limit",
        "similarity",
        "dimensions",
        "max_input_tokens",
    },
}
REQUIRED_SETTINGS = {"hugging_face": ("api_key", "url"), "openai": ("api_key", "model_id")}
TASK_SETTINGS = {"hugging_face": set(), "openai": {"user"}}
DEFAULT_SIMILARITY = {"hugging_face": "cosine", "openai": "dot_product"}
CHUNKED_BATCH = {"hugging_face": 20, "openai": 2048}
# Service statuses ES retries (HuggingFaceResponseHandler, OpenAiResponseHandler); timeouts too.
RETRIED = {"hugging_face": {429, 502, 503}, "openai": {429, 500, 503}}
RATE_LIMIT_HEADERS = (
    "x-ratelimit-limit-tokens",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-limit-requests",
    "x-ratelimit-remaining-requests",
)
DEFAULT_RATE_LIMIT = 3000
INFERENCE_BATCH = 20
DEFAULT_CHUNKING = {"strategy": "sentence", "max_chunk_size": 250, "sentence_overlap": 1}
MAX_ID_BYTES = 512
COMPAT = re.compile(r"compatible-with=(\d+)")
COMMON_PARAMS = {"pretty", "human", "error_trace", "filter_path"}
# Named cluster features this stand-in declares (``gte_vX`` ones follow from ``version``).
FEATURES: frozenset[str] = frozenset()
# Capabilities (GET _capabilities) by path: only what the stand-in implements.
CAPABILITIES = {"/_search": {"knn_quantized_vector_rescore_oversample"}}


class EsError(Exception):
    def __init__(
        self, status: int, kind: str, reason: str, caused_by: Mapping[str, Any] | None = None, **extra: Any
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
            error["caused_by"] = dict(self.caused_by)
        return {"error": error, "status": self.status}

    def item_error(self) -> dict[str, Any]:
        error: dict[str, Any] = {"type": self.kind, "reason": self.reason, **self.extra}
        if self.caused_by:
            error["caused_by"] = dict(self.caused_by)
        return error


def refused(what: str) -> EsError:
    """A 400 for something ES has that the stand-in deliberately does not implement."""
    return EsError(400, "illegal_argument_exception", f"{what} is not implemented by the ES stand-in")


def mapping_error(reason: str) -> EsError:
    return EsError(400, "mapper_parsing_exception", f"Failed to parse mapping: {reason}")


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
    # semantic_text chunks and embeddings per document: {doc id: {field: entry}} (ES's
    # _inference_fields metadata); what search sees is snapshotted with the documents.
    inference: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    searchable_inference: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    seq_no: int = 0

    def refresh(self) -> None:
        self.searchable = dict(self.docs)
        self.searchable_inference = dict(self.inference)

    def flat_settings(self) -> dict[str, Any]:
        """Settings as ``index.x.y`` keys, however they were nested."""
        out: dict[str, Any] = {}

        def walk(node: dict[str, Any], prefix: str) -> None:
            for key, value in node.items():
                if isinstance(value, dict):
                    walk(value, f"{prefix}{key}.")
                else:
                    out[f"{prefix}{key}"] = value

        walk(self.settings, "")
        return {(k if k.startswith("index.") else f"index.{k}"): v for k, v in out.items()}


def validate_properties(
    properties: Any, prefix: str = "", dims_of: Callable[[str], int | None] | None = None
) -> None:
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
        unknown = sorted(set(spec) - FIELD_PARAMS.get(kind, set(spec)))
        if unknown:
            raise mapping_error(f"unknown parameter [{unknown[0]}] on mapper [{path}] of type [{kind}]")
        if kind == "dense_vector":
            validate_vector(path, spec)
        if kind == "semantic_text":
            validate_semantic(path, spec, dims_of)
        if kind in ("object", "nested") and "properties" in spec:
            validate_properties(spec["properties"], path + ".", dims_of)


def validate_vector(path: str, spec: dict[str, Any]) -> None:
    dims = spec.get("dims")
    if dims is not None and (not isinstance(dims, int) or not 1 <= dims <= 4096):
        raise mapping_error(f"The number of dimensions should be in the range [1, 4096] but was [{dims}]")
    element = spec.get("element_type", "float")
    if element != "float":
        if element in ("byte", "bit", "bfloat16"):
            raise refused(f"[element_type: {element}] (the stand-in stores float vectors only)")
        raise mapping_error(f"invalid element_type [{element}]; available types are [float, byte, bit]")
    indexed = spec.get("index", True)
    similarity = spec.get("similarity", "cosine")
    if similarity not in SIMILARITIES:
        raise mapping_error(f"Unknown value [{similarity}] for field [similarity]")
    if not indexed and "similarity" in spec:
        raise mapping_error(
            f"Field [similarity] can only be specified for a field of type [dense_vector] when it is "
            f"indexed [index: true] (field [{path}])"
        )
    if "index_options" in spec:
        if not indexed:
            raise mapping_error(
                f"Field [index_options] can only be specified for a field of type [dense_vector] when it "
                f"is indexed [index: true] (field [{path}])"
            )
        validate_index_options(path, spec["index_options"], dims)


def validate_index_options(path: str, options: Any, dims: int | None) -> None:
    if not isinstance(options, dict) or "type" not in options:
        raise mapping_error("[index_options] requires field [type] to be configured")
    kind = options["type"]
    if kind not in INDEX_OPTIONS:
        raise mapping_error(f"Unknown vector index options type [{kind}] for field [{path}]")
    extra = {k: v for k, v in options.items() if k != "type" and k not in INDEX_OPTIONS[kind]}
    if extra:
        listed = ", ".join(f"{k} : {v}" for k, v in extra.items())
        raise mapping_error(f"Mapping definition for [{path}] has unsupported parameters:  [{listed}]")
    for name, low, high in (("m", 2, 512), ("ef_construction", 1, 3200)):
        if name in options and (not isinstance(options[name], int) or not low <= options[name] <= high):
            raise mapping_error(f"[{name}] must be between {low} and {high}, got [{options[name]}]")
    interval = options.get("confidence_interval")
    if interval is not None and not (interval == 0 or 0.9 <= float(interval) <= 1.0):
        raise mapping_error(f"confidenceInterval must be between 0.90 and 1.0 or 0, got [{interval}]")
    rescore = options.get("rescore_vector")
    if rescore is not None:
        oversample = rescore.get("oversample") if isinstance(rescore, dict) else None
        if not isinstance(oversample, int | float) or not (oversample == 0 or 1 <= oversample <= 10):
            raise mapping_error("[rescore_vector.oversample] must be 0 or between 1.0 and 10.0")
    if dims is not None:
        if kind.startswith("bbq") and dims < BBQ_MIN_DIMS:
            raise mapping_error(
                f"{kind} does not support dimensions fewer than {BBQ_MIN_DIMS}; provided={dims}"
            )
        if kind.startswith("int4") and dims % 2:
            raise mapping_error(f"{kind} only supports even dimensions; provided={dims}")


def validate_chunking(settings: Any) -> dict[str, Any]:
    """ES's chunking_settings checks; the settings with defaults filled in."""
    if not isinstance(settings, dict):
        raise EsError(
            400, "validation_exception", "Validation Failed: 1: [chunking_settings] must be an object;"
        )
    strategy = settings.get("strategy", "sentence")
    allowed = {
        "sentence": {"strategy", "max_chunk_size", "sentence_overlap"},
        "word": {"strategy", "max_chunk_size", "overlap"},
        "none": {"strategy"},
    }
    if strategy not in allowed:
        raise EsError(
            400, "validation_exception", f"Validation Failed: 1: Invalid chunkingStrategy [{strategy}];"
        )
    extra = sorted(set(settings) - allowed[strategy])
    if extra:
        raise EsError(
            400,
            "validation_exception",
            f"Validation Failed: 1: {'Sentence based' if strategy == 'sentence' else 'Word based'} chunking "
            f"settings can not have the following settings: {extra};",
        )
    out = {"strategy": strategy}
    if strategy == "none":
        return out
    size = settings.get("max_chunk_size")
    low, high = (20, 300) if strategy == "sentence" else (10, 300)
    if not isinstance(size, int) or not low <= size <= high:
        raise EsError(
            400,
            "validation_exception",
            f"Validation Failed: 1: [chunking_settings] Invalid value [{size}]. [max_chunk_size] must be a "
            f"greater than or equal to [{low}] and less than or equal to [{high}];",
        )
    out["max_chunk_size"] = size
    if strategy == "sentence":
        overlap = settings.get("sentence_overlap", 1)
        if overlap not in (0, 1):
            raise EsError(
                400,
                "validation_exception",
                f"Validation Failed: 1: [chunking_settings] Invalid value [{overlap}]. [sentence_overlap] "
                "must be a greater than or equal to [0] and less than or equal to [1];",
            )
        out["sentence_overlap"] = overlap
    else:
        overlap = settings.get("overlap")
        if not isinstance(overlap, int) or not 0 <= overlap <= size // 2:
            raise EsError(
                400,
                "validation_exception",
                f"Validation Failed: 1: [chunking_settings] Invalid value [{overlap}]. [overlap] must be "
                f"a greater than or equal to [0] and less than or equal to [{size // 2}];",
            )
        out["overlap"] = overlap
    return out


def validate_semantic(path: str, spec: dict[str, Any], dims_of: Callable[[str], int | None] | None) -> None:
    inference_id = spec.get("inference_id")
    if not isinstance(inference_id, str) or not inference_id:
        raise refused(
            f"[semantic_text] field [{path}] without an [inference_id] (the default ELSER endpoint)"
        )
    if "chunking_settings" in spec:
        validate_chunking(spec["chunking_settings"])
    options = spec.get("index_options")
    if options is not None:
        if not isinstance(options, dict) or set(options) != {"dense_vector"}:
            raise mapping_error(f'[index_options] of [{path}] must be {{"dense_vector": {{...}}}}')
        validate_index_options(path, options["dense_vector"], dims_of(inference_id) if dims_of else None)


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
            check_vector(spec, value, path, doc_id)
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
        elif kind in ("integer", "long", "short"):
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


def check_vector(spec: dict[str, Any], value: Any, path: str, doc_id: str) -> None:
    if not isinstance(value, list) or not all(
        isinstance(x, int | float) and not isinstance(x, bool) for x in value
    ):
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
    similarity = spec.get("similarity", "cosine")
    squared = math.fsum(x * x for x in value)
    if similarity == "cosine" and squared == 0:
        raise EsError(
            400,
            "document_parsing_exception",
            "[1:1] failed to parse: The [cosine] similarity does not support vectors with zero magnitude.",
        )
    if similarity == "dot_product" and abs(squared - 1.0) > 1e-3:
        preview = ", ".join(str(x) for x in value[:10])
        raise EsError(
            400,
            "document_parsing_exception",
            "[1:1] failed to parse: The [dot_product] similarity can only be used with unit-length "
            f"vectors. Preview of invalid vector: [{preview}{', ...' if len(value) > 10 else ''}]",
        )


# -- dynamic mapping -------------------------------------------------------------------------

DATE = re.compile(r"\d{4}[-/]\d{2}[-/]\d{2}([T ][\d:.]+(Z|[+-]\d{2}:?\d{2})?)?")


def dynamic_type(value: Any) -> str | None:
    """ES's match_mapping_type for a JSON value (None: nothing to map)."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "long"
    if isinstance(value, float):
        return "double"
    if isinstance(value, str):
        return "date" if DATE.fullmatch(value) else "string"
    if isinstance(value, dict):
        return "object"
    return None


def map_dynamically(mappings: dict[str, Any], source: dict[str, Any], doc_id: str) -> None:
    """Add mappings for the new fields of ``source``, as ES's dynamic mapping does."""
    templates = mappings.get("dynamic_templates", [])

    def walk(props: dict[str, Any], node: dict[str, Any], prefix: str, dynamic: Any) -> None:
        for key, value in node.items():
            path = f"{prefix}{key}"
            spec = props.get(key)
            if spec is not None:
                if isinstance(value, dict | list) and spec.get("type", "object") in ("object", "nested"):
                    inner = spec.setdefault("properties", {})
                    for item in value if isinstance(value, list) else [value]:
                        if isinstance(item, dict):
                            walk(inner, item, path + ".", spec.get("dynamic", dynamic))
                elif (
                    spec.get("type") == "dense_vector"
                    and spec.get("dims") is None
                    and isinstance(value, list)
                ):
                    spec["dims"] = len(value)
                continue
            sample = next((v for v in value if v is not None), None) if isinstance(value, list) else value
            if sample is None:
                continue
            if str(dynamic) == "strict":
                raise EsError(
                    400,
                    "strict_dynamic_mapping_exception",
                    f"[1:2] mapping set to strict, dynamic introduction of [{key}] within "
                    f"[{prefix.rstrip('.') or '_doc'}] is not allowed",
                )
            if str(dynamic) in ("false", "runtime"):
                continue
            kind = dynamic_type(sample)
            if kind is None:
                continue
            mapped = _template(templates, path, key, kind)
            if mapped is None:
                mapped = _default_mapping(kind, value)
            if mapped is None:
                continue
            props[key] = mapped
            if mapped.get("type", "object") in ("object", "nested"):
                for item in value if isinstance(value, list) else [value]:
                    if isinstance(item, dict):
                        walk(mapped.setdefault("properties", {}), item, path + ".", dynamic)

    walk(mappings.setdefault("properties", {}), source, "", mappings.get("dynamic", True))


def _template(templates: list[Any], path: str, name: str, kind: str) -> dict[str, Any] | None:
    for entry in templates:
        (_, spec), *_ = entry.items()
        want = spec.get("match_mapping_type", "*")
        wanted = want if isinstance(want, list) else [want]
        if "*" not in wanted and kind not in wanted:
            continue
        if "path_match" in spec and not any(
            fnmatch.fnmatchcase(path, p) for p in _listed(spec["path_match"])
        ):
            continue
        if "path_unmatch" in spec and any(
            fnmatch.fnmatchcase(path, p) for p in _listed(spec["path_unmatch"])
        ):
            continue
        if "match" in spec and not any(fnmatch.fnmatchcase(name, p) for p in _listed(spec["match"])):
            continue
        if "unmatch" in spec and any(fnmatch.fnmatchcase(name, p) for p in _listed(spec["unmatch"])):
            continue
        mapping = copy.deepcopy(spec.get("mapping", {}))
        if "type" not in mapping or mapping["type"] == "{dynamic_type}":
            mapping["type"] = {"string": "text", "long": "long", "double": "float"}.get(kind, kind)
        return dict(mapping)
    return None


def _listed(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def _default_mapping(kind: str, value: Any) -> dict[str, Any] | None:
    if kind == "string":
        return {"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": 256}}}
    if kind == "double":
        if isinstance(value, list) and 128 <= len(value) <= 4096 and all(isinstance(v, float) for v in value):
            return {"type": "dense_vector", "dims": len(value), "index": True, "similarity": "cosine"}
        return {"type": "float"}
    if kind == "object":
        return {"properties": {}}
    return {"type": kind}


# -- chunking (semantic_text) ----------------------------------------------------------------

SENTENCE_END = re.compile(r"[.!?]+[\"'\u201d\u2019)\]]*\s+|\n\s*")
WORDS = re.compile(r"\w+(?:['\u2019]\w+)*")


def chunk_offsets(text: str, settings: dict[str, Any]) -> list[tuple[int, int]]:
    """(start, end) character offsets of ``text``'s chunks, as ES's chunkers cut them.

    ``sentence``: whole sentences packed up to ``max_chunk_size`` words, each chunk after the
    first repeating the previous chunk's last sentence when ``sentence_overlap`` is 1 (a
    sentence longer than the limit is cut by words); ``word``: windows of ``max_chunk_size``
    words moving by ``max_chunk_size - overlap``; ``none``: the whole text. Sentence ends are a
    regex approximation of ICU's sentence breaks (ends of sentences, line breaks).
    """
    strategy = settings.get("strategy", "sentence")
    words = [m.span() for m in WORDS.finditer(text)]
    if strategy == "none" or not words:
        return [(0, len(text))]
    size = int(settings["max_chunk_size"])
    if strategy == "word":
        return _word_windows(text, words, 0, len(words), size, int(settings.get("overlap", 0)))
    sentences = []
    start = 0
    for m in SENTENCE_END.finditer(text):
        if m.end() > start:
            sentences.append((start, m.end()))
            start = m.end()
    if start < len(text):
        sentences.append((start, len(text)))
    overlap = int(settings.get("sentence_overlap", 1))
    chunks: list[tuple[int, int]] = []
    current: tuple[int, int, int] | None = None  # start, end, words
    previous: tuple[int, int] | None = None  # start, words of the last sentence
    for s, e in sentences:
        count = sum(1 for ws, _ in words if s <= ws < e)
        if count > size:
            if current is not None:
                chunks.append(current[:2])
            first = next(i for i, (ws, _) in enumerate(words) if ws >= s)
            for cs, ce in _word_windows(text, words, first, first + count, size, 0):
                chunks.append((max(cs, s), min(ce, e)))
            current, previous = None, None
            continue
        if current is None:
            current = (s, e, count)
        elif current[2] + count <= size:
            current = (current[0], e, current[2] + count)
        else:
            chunks.append(current[:2])
            if overlap and previous is not None and previous[1] + count <= size:
                current = (previous[0], e, previous[1] + count)
            else:
                current = (s, e, count)
        previous = (s, count)
    if current is not None:
        chunks.append(current[:2])
    return chunks


def _word_windows(
    text: str, words: list[tuple[int, int]], first: int, last: int, size: int, overlap: int
) -> list[tuple[int, int]]:
    out = []
    step = max(size - overlap, 1)
    for i in range(first, last, step):
        start = 0 if i == 0 else words[i][0]
        j = i + size
        end = words[j][0] if j < last else (len(text) if last == len(words) else words[last][0])
        out.append((start, end))
        if j >= last:
            break
    return out


def semantic_texts(value: Any) -> list[str]:
    """A semantic_text field's values as the texts ES embeds (numbers and booleans as strings)."""
    out = []
    for v in value if isinstance(value, list) else [value]:
        if v is None:
            continue
        if isinstance(v, bool):
            out.append("true" if v else "false")
        elif isinstance(v, int | float | str):
            out.append(v if isinstance(v, str) else json.dumps(v))
        else:
            raise EsError(
                400,
                "document_parsing_exception",
                "[1:1] failed to parse: semantic_text fields take strings (or lists of them)",
            )
    return out


def semantic_fields(properties: dict[str, Any], prefix: str = "") -> list[tuple[str, dict[str, Any]]]:
    out = []
    for name, spec in properties.items():
        if spec.get("type") == "semantic_text":
            out.append((f"{prefix}{name}", spec))
        elif spec.get("type", "object") == "object":
            out.extend(semantic_fields(spec.get("properties", {}), f"{prefix}{name}."))
    return out


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

    def set_or_append(self, path: str, value: Any) -> None:
        """Set ``path``, or append to what is there (IngestDocument.appendFieldValue: a list's items)."""
        if not self.has(path):
            self.set(path, value)
            return
        have = self.get(path)
        items = have if isinstance(have, list) else [have]
        self.set(path, [*items, *(value if isinstance(value, list) else [value])])

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


COMMON_OPTIONS = {"tag", "description", "if", "ignore_failure", "on_failure"}
# processor -> (required options, optional options)
PROCESSORS: dict[str, tuple[set[str], set[str]]] = {
    "split": ({"field", "separator"}, {"target_field", "ignore_missing", "preserve_trailing"}),
    "trim": ({"field"}, {"target_field", "ignore_missing"}),
    "uppercase": ({"field"}, {"target_field", "ignore_missing"}),
    "lowercase": ({"field"}, {"target_field", "ignore_missing"}),
    "set": ({"field"}, {"value", "copy_from", "override", "ignore_empty_value", "media_type"}),
    "remove": (set(), {"field", "keep", "ignore_missing"}),
    "foreach": ({"field", "processor"}, {"ignore_missing"}),
    "inference": (
        {"model_id"},
        {"input_output", "ignore_missing", "target_field", "field_map", "inference_config"},
    ),
}


def config_error(kind: str, tag: Any, reason: str, prop: str | None = None) -> EsError:
    extra: dict[str, Any] = {"processor_type": kind}
    if tag is not None:
        extra["processor_tag"] = tag
    if prop is not None:
        extra["property_name"] = prop
    return EsError(400, "parse_exception", reason, header=dict(extra), **extra)


def validate_processor(definition: Any, endpoints: dict[str, Any]) -> None:
    """Raise the error ES gives when creating a pipeline with this processor."""
    if not isinstance(definition, dict) or len(definition) != 1:
        raise EsError(400, "parse_exception", "a processor must be an object with exactly one processor type")
    kind, spec = next(iter(definition.items()))
    if kind not in PROCESSORS:
        raise EsError(
            400,
            "parse_exception",
            f"No processor type exists with name [{kind}]",
            header={"processor_type": kind},
            processor_type=kind,
        )
    if not isinstance(spec, dict):
        raise config_error(kind, None, f"[{kind}] processor configuration must be an object")
    tag = spec.get("tag")
    required, optional = PROCESSORS[kind]
    for name in sorted(required):
        if name not in spec:
            raise config_error(kind, tag, f"[{name}] required property is missing", name)
    if kind == "set" and "value" not in spec and "copy_from" not in spec:
        raise config_error(kind, tag, "[value] required property is missing", "value")
    if kind == "set" and "value" in spec and "copy_from" in spec:
        raise config_error(
            kind,
            tag,
            "[copy_from] cannot set both `copy_from` and `value` in the same processor",
            "copy_from",
        )
    if kind == "remove" and ("field" in spec) == ("keep" in spec):
        raise config_error(kind, tag, "[keep] or [field] must be specified", "field")
    unknown = sorted(set(spec) - required - optional - COMMON_OPTIONS)
    if unknown:
        raise config_error(
            kind,
            tag,
            f"processor [{kind}] doesn't support one or more provided configuration parameters {unknown}",
        )
    if "if" in spec:
        raise refused("the [if] condition of a processor (a Painless script)")
    for handler in spec.get("on_failure", []) or []:
        validate_processor(handler, endpoints)
    if kind == "foreach":
        validate_processor(spec["processor"], endpoints)
    if kind == "inference":
        if "input_output" not in spec:
            raise refused("the inference processor without [input_output] (trained-model field maps)")
        for name in ("target_field", "field_map", "inference_config"):
            if name in spec:
                raise config_error(kind, tag, f"[{name}] cannot be combined with [input_output]", name)
        pairs = spec["input_output"] if isinstance(spec["input_output"], list) else [spec["input_output"]]
        for pair in pairs:
            if not isinstance(pair, dict) or "input_field" not in pair or "output_field" not in pair:
                raise config_error(
                    kind, tag, "[input_output] requires [input_field] and [output_field]", "input_output"
                )
        if spec["model_id"] not in endpoints:
            raise EsError(
                404, "resource_not_found_exception", f"Could not find trained model [{spec['model_id']}]"
            )


class Processors:
    """Runs processor definitions against an IngestDocument."""

    def __init__(self, standin: EsStandin) -> None:
        self.standin = standin

    def run(self, processors: list[dict[str, Any]], doc: IngestDocument, pipeline: str = "") -> None:
        for definition in processors:
            self.one(definition, doc, pipeline)

    def one(self, definition: dict[str, Any], doc: IngestDocument, pipeline: str = "") -> None:
        kind, spec = next(iter(definition.items()))
        try:
            getattr(self, f"_{kind}")(spec, doc)
        except EsError as exc:
            if spec.get("ignore_failure"):
                return
            handlers = spec.get("on_failure")
            if not handlers:
                raise
            saved = {k: doc.ingest.get(k) for k in ON_FAILURE_KEYS}
            doc.ingest.update(
                on_failure_message=exc.reason,
                on_failure_processor_type=kind,
                on_failure_processor_tag=spec.get("tag"),
                on_failure_pipeline=pipeline,
            )
            try:
                self.run(handlers, doc, pipeline)
            finally:
                for key, value in saved.items():
                    if value is None:
                        doc.ingest.pop(key, None)
                    else:
                        doc.ingest[key] = value

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

    def _strings(self, spec: dict[str, Any], doc: IngestDocument, change: Callable[[str], str]) -> None:
        if self._missing(spec, doc):
            return
        value = doc.get(spec["field"])
        if isinstance(value, list):
            if not all(isinstance(v, str) for v in value):
                raise EsError(
                    400, "illegal_argument_exception", f"field [{spec['field']}] holds a non-string value"
                )
            changed: Any = [change(v) for v in value]
        elif isinstance(value, str):
            changed = change(value)
        else:
            raise EsError(
                400,
                "illegal_argument_exception",
                f"field [{spec['field']}] of type [{type(value).__name__}] cannot be cast to "
                "[java.lang.String]",
            )
        doc.set(spec.get("target_field", spec["field"]), changed)

    def _trim(self, spec: dict[str, Any], doc: IngestDocument) -> None:
        self._strings(spec, doc, str.strip)

    def _uppercase(self, spec: dict[str, Any], doc: IngestDocument) -> None:
        self._strings(spec, doc, str.upper)

    def _lowercase(self, spec: dict[str, Any], doc: IngestDocument) -> None:
        self._strings(spec, doc, str.lower)

    def _set(self, spec: dict[str, Any], doc: IngestDocument) -> None:
        if not spec.get("override", True) and doc.has(spec["field"]) and doc.get(spec["field"]) is not None:
            return
        media_type = spec.get("media_type", "application/json")
        if media_type not in MEDIA_TYPES:
            raise EsError(
                400, "parse_exception", f"property [media_type] must be one of {', '.join(MEDIA_TYPES)}"
            )
        if "copy_from" in spec:
            if not doc.has(spec["copy_from"]):
                if spec.get("ignore_empty_value"):
                    return
                doc.get(spec["copy_from"])
            value = doc.get(spec["copy_from"])
        else:
            value = render(spec["value"], doc, media_type)
        if spec.get("ignore_empty_value") and value in (None, ""):
            return
        target = render(spec["field"], doc)
        if target in (
            "_index",
            "_id",
            "_routing",
            "_version",
            "_version_type",
            "_if_seq_no",
            "_if_primary_term",
        ):
            raise refused(f"setting the [{target}] metadata field in a pipeline")
        doc.set(target, copy.deepcopy(value))

    def _remove(self, spec: dict[str, Any], doc: IngestDocument) -> None:
        if "keep" in spec:
            raise refused("the remove processor's [keep] option")
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
        endpoint = self.standin.endpoints.get(spec["model_id"])
        if endpoint is None:
            raise EsError(
                404, "resource_not_found_exception", f"Could not find trained model [{spec['model_id']}]"
            )
        pairs = spec["input_output"] if isinstance(spec["input_output"], list) else [spec["input_output"]]
        for i, pair in enumerate(pairs):
            if not doc.has(pair["input_field"]) and spec.get("ignore_missing"):
                continue
            text = doc.get(pair["input_field"])
            if not isinstance(text, str):
                raise EsError(
                    400,
                    "illegal_argument_exception",
                    f"input field [{pair['input_field']}] cannot be processed because it is not a text field",
                )
            # InferenceResults.writeResultToField: the result at output_field, and (for the first
            # input only) model_id beside it, each appended to when the field already exists.
            output = str(pair["output_field"])
            base, _, _name = output.rpartition(".")
            doc.set_or_append(output, self.standin.infer(endpoint, [text])[0])
            if i == 0:
                doc.set_or_append(f"{base}.model_id" if base else "model_id", endpoint.inference_id)


ON_FAILURE_KEYS = (
    "on_failure_message",
    "on_failure_processor_type",
    "on_failure_processor_tag",
    "on_failure_pipeline",
)


# -- inference endpoints -------------------------------------------------------------------


class Clock:
    """Time as the stand-in's inference sender sees it: real by default.

    Tests share a :class:`tests.rag.embed_standin.LogicalClock` between this stand-in and the
    embedding double instead, so that retry delays, timeouts and ``rate_limit`` run in logical
    seconds: ES's own defaults, no real waiting, and the same outcome on any machine.
    """

    def now(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


@dataclass(frozen=True)
class InferenceRetry:
    """How ES's inference services retry a call (defaults: ES's, see docs/RELIABILITY.md).

    ``initial_delay``, ``max_delay_bound`` and ``timeout`` are the node settings
    ``xpack.inference.http.retry.*`` (1 s, 5 s, 30 s): each retry waits a random delay of up to
    the current bound, the bound doubling up to ``max_delay_bound``, and no retry starts once
    ``timeout`` has passed since the first attempt. ``max_attempts`` is RetryingHttpSender's
    cap (3 attempts in all). ``seed`` makes the random delays repeatable.
    """

    initial_delay: float = 1.0
    max_delay_bound: float = 5.0
    timeout: float = 30.0
    max_attempts: int = 3
    seed: int = 0


class RateLimiter:
    """An endpoint's ``rate_limit`` on one node: requests wait their turn, none is refused.

    ES's RequestExecutorService keeps one queue per rate limit group (endpoint URL and key) and
    a token bucket that holds at most one token, refilled at ``requests_per_minute``.
    """

    def __init__(self, per_minute: int, clock: Clock) -> None:
        self.per_minute = per_minute
        self.clock = clock
        self.interval = 60.0 / per_minute
        self.next_free: float | None = None
        self.lock = threading.Lock()

    def take(self) -> None:
        with self.lock:
            now = self.clock.now()
            start = now if self.next_free is None else max(now, self.next_free)
            self.next_free = start + self.interval
        if start > now:
            self.clock.sleep(start - now)


@dataclass
class Endpoint:
    inference_id: str
    task_type: str
    service: str
    service_settings: dict[str, Any]
    dims: int = 0
    task_settings: dict[str, Any] = field(default_factory=dict)
    chunking_settings: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_CHUNKING))

    @property
    def similarity(self) -> str:
        return str(self.service_settings.get("similarity") or DEFAULT_SIMILARITY[self.service]).lower()

    def public(self) -> dict[str, Any]:
        settings = {k: v for k, v in self.service_settings.items() if k != "api_key"}
        settings.update(
            {
                "similarity": self.similarity,
                "dimensions": self.dims,
                "rate_limit": settings.get("rate_limit") or {"requests_per_minute": DEFAULT_RATE_LIMIT},
            }
        )
        return {
            "inference_id": self.inference_id,
            "task_type": self.task_type,
            "service": self.service,
            "service_settings": settings,
            **({"task_settings": self.task_settings} if self.task_settings else {}),
            "chunking_settings": self.chunking_settings,
        }

    def model_settings(self) -> dict[str, Any]:
        return {
            "task_type": self.task_type,
            "dimensions": self.dims,
            "similarity": self.similarity,
            "element_type": "float",
        }


# -- the server ----------------------------------------------------------------------------


@dataclass
class Call:
    method: str
    path: str
    params: dict[str, str]
    headers: dict[str, str]


# URL parameters each endpoint recognizes (besides COMMON_PARAMS); anything else is refused
# like ES refuses it. ``refused`` ones exist in ES but are not implemented here.
PARAMS = {
    "doc": {"pipeline", "refresh", "op_type", "routing", "timeout", "wait_for_active_shards"},
    "bulk": {"pipeline", "refresh", "routing", "timeout", "wait_for_active_shards", "_source"},
    "search": {
        "size",
        "from",
        "rest_total_hits_as_int",
        "track_total_hits",
        "search_type",
        "ignore_unavailable",
        "allow_no_indices",
        "expand_wildcards",
        "_source",
        "_source_includes",
        "_source_excludes",
        "preference",
        "request_cache",
        "typed_keys",
        "allow_partial_search_results",
        "ccs_minimize_roundtrips",
        "batched_reduce_size",
        "max_concurrent_shard_requests",
        "pre_filter_shard_size",
    },
    "count": {"ignore_unavailable", "allow_no_indices", "expand_wildcards", "preference"},
}
REFUSED_PARAMS = {"require_alias", "if_seq_no", "if_primary_term", "version", "version_type", "q", "scroll"}


class EsStandin:
    """State and HTTP handlers; ``app()`` is the ASGI app to serve."""

    def __init__(
        self,
        version: str = "9.1.0",
        rrf_licensed: bool = True,
        inference_retry: InferenceRetry | None = None,
        inference_timeout: float = 10.0,
        clock: Clock | None = None,
    ) -> None:
        self.version = version
        self.major = int(version.split(".")[0])
        self.rrf_licensed = rrf_licensed
        self.retry = inference_retry or InferenceRetry()
        self.clock = clock or Clock()
        self.inference_timeout = inference_timeout
        self.indices: dict[str, Index] = {}
        self.pipelines: dict[str, dict[str, Any]] = {}
        self.endpoints: dict[str, Endpoint] = {}
        self.faults = Faults()
        self.calls: list[Call] = []
        self.inference_calls: list[tuple[str, list[str]]] = []
        self.inference_answers: list[int] = []
        self.lock = threading.RLock()
        self.processors = Processors(self)
        self.limiters: dict[tuple[str, str], RateLimiter] = {}
        self.jitter = random.Random(self.retry.seed)
        # One pooled client, like ES's own HTTP client for inference services.
        self.http = httpx.Client(timeout=inference_timeout)

    # -- inference service -----------------------------------------------------------------

    def infer(self, endpoint: Endpoint, texts: list[str], batch: int = INFERENCE_BATCH) -> list[list[float]]:
        """Call the endpoint's service like ES: batches of <= ``batch``, retries, 413 halves the batch."""
        out: list[list[float]] = []
        for start in range(0, len(texts), batch):
            out.extend(self._infer_batch(endpoint, texts[start : start + batch]))
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
            if settings.get("dimensions"):
                payload["dimensions"] = settings["dimensions"]
            if endpoint.task_settings.get("user"):
                payload["user"] = endpoint.task_settings["user"]
        url = settings.get("url") or "https://api.openai.com/v1/embeddings"
        limiter = self._limiter(endpoint, url)
        started = self.clock.now()
        bound = self.retry.initial_delay
        attempt = 0
        while True:
            attempt += 1
            limiter.take()
            self.inference_calls.append((url, list(batch)))
            try:
                response: httpx.Response | None = self.http.post(url, json=payload, headers=headers)
                status = response.status_code if response is not None else 0
            except httpx.TimeoutException:
                # RetryingHttpSender: every IOException (a socket timeout too) is retryable.
                status, response = 0, None
            except httpx.HTTPError as exc:
                raise EsError(
                    500,
                    "status_exception",
                    f"Failed to send request from inference entity id [{endpoint.inference_id}]: {exc}",
                ) from exc
            self.inference_answers.append(status)
            if status == 413 and len(batch) > 1:
                half = len(batch) // 2
                return self._infer_batch(endpoint, batch[:half]) + self._infer_batch(endpoint, batch[half:])
            if status == 200 and response is not None:
                return self._parse_embeddings(endpoint, response.json(), len(batch))
            retryable = status == 0 or status in RETRIED[endpoint.service]
            # RetryingHttpSender.shouldRetry (attempt cap), then RetryableAction (total timeout).
            if not retryable or attempt >= self.retry.max_attempts:
                raise service_error(endpoint, url, status, response)
            if self.clock.now() - started >= self.retry.timeout:
                raise service_error(endpoint, url, status, response)
            # RetryableAction: a delay drawn from [1 ms, bound], the bound doubling up to its cap.
            self.clock.sleep(self.jitter.uniform(0.001, bound))
            bound = min(bound * 2, self.retry.max_delay_bound)

    def _limiter(self, endpoint: Endpoint, url: str) -> RateLimiter:
        """The rate limit group of ``endpoint`` on this node (RequestExecutorService)."""
        per_minute = (endpoint.service_settings.get("rate_limit") or {}).get(
            "requests_per_minute", DEFAULT_RATE_LIMIT
        )
        key = (url, str(endpoint.service_settings.get("api_key")))
        with self.lock:
            limiter = self.limiters.get(key)
            if limiter is None or limiter.per_minute != per_minute:
                limiter = self.limiters[key] = RateLimiter(per_minute, self.clock)
            return limiter

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

    def embed_query(self, inference_id: str, text: str) -> list[float]:
        """One text embedded for a search (semantic query, query_vector_builder)."""
        endpoint = self.endpoints.get(inference_id)
        if endpoint is None:
            raise EsError(
                404, "resource_not_found_exception", f"Inference endpoint not found [{inference_id}]"
            )
        return self.infer(endpoint, [text])[0]

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

    def _respond(
        self, status: int, body: Any, content_type: str, head: bool = False, filter_path: str | None = None
    ) -> Response:
        headers = {"x-elastic-product": "Elasticsearch"}
        if head:
            return Response(status_code=status, headers=headers, media_type=content_type)
        if filter_path:
            body = filter_paths(body, [p.strip() for p in filter_path.split(",") if p.strip()])
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
            status, body = exc.status, search_error_body(exc)
        return self._respond(status, body, content_type, method == "HEAD", params.get("filter_path"))

    def _json(self, raw: bytes) -> Any:
        if not raw:
            return {}
        try:
            return json.loads(raw)
        except json.JSONDecodeError as exc:
            raise EsError(
                400, "x_content_parse_exception", f"[1:1] failed to parse the request body: {exc.msg}"
            ) from exc

    @staticmethod
    def _params(path: str, params: dict[str, str], endpoint: str) -> None:
        for name in params:
            if name in COMMON_PARAMS:
                continue
            if name in REFUSED_PARAMS:
                raise refused(f"the [{name}] parameter")
            if name not in PARAMS[endpoint]:
                raise EsError(
                    400,
                    "illegal_argument_exception",
                    f"request [{path}] contains unrecognized parameter: [{name}]",
                )

    def _dispatch(self, method: str, path: str, params: dict[str, str], raw: bytes) -> tuple[int, Any]:
        parts = [p for p in path.split("/") if p]
        with self.lock:
            if not parts:
                return 200, self._info()
            head = parts[0]
            if head == "_bulk":
                self._params(path, params, "bulk")
                return self._bulk(None, raw, params)
            if head == "_mget":
                return self._mget(None, self._json(raw), params)
            if head in ("_search", "_count"):
                return self._index_api(method, "*", parts, raw, params, path)
            if head in ("_refresh", "_flush", "_forcemerge"):
                for index in self.indices.values():
                    index.refresh()
                return 200, {
                    "_shards": {"total": len(self.indices), "successful": len(self.indices), "failed": 0}
                }
            if head == "_ingest" and len(parts) >= 2 and parts[1] == "pipeline":
                return self._pipeline(method, parts[2] if len(parts) > 2 else None, raw)
            if head == "_inference":
                return self._inference_api(method, parts[1:], raw, params)
            if head == "_cluster" and parts[1:2] == ["state"]:
                return 200, {
                    "cluster_name": "standin",
                    "nodes_features": [{"node_id": "standin-node", "features": sorted(FEATURES)}],
                }
            if head == "_capabilities":
                wanted = {c for c in params.get("capabilities", "").split(",") if c}
                have = CAPABILITIES.get(params.get("path", ""), set())
                return 200, {"supported": bool(wanted) and wanted <= have and not params.get("parameters")}
            if head == "_knn_search" or (len(parts) > 1 and parts[1] == "_knn_search"):
                raise refused("the _knn_search endpoint (deprecated in 8.4: use the search API's knn option)")
            if head.startswith("_"):
                raise EsError(
                    400,
                    "illegal_argument_exception",
                    f"no handler found for uri [{path}] and method [{method}] in the ES stand-in",
                )
            return self._index_api(method, head, parts[1:], raw, params, path)

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
            resource: dict[str, Any] = {"resource.type": "index_or_alias", "resource.id": name}
            raise EsError(404, "index_not_found_exception", f"no such index [{name}]", index=name, **resource)
        return index

    def _resolve(self, expression: str, params: dict[str, str]) -> list[Index]:
        """Indices named by a comma list with wildcards (``_all``/``*``: every index)."""
        lenient = params.get("ignore_unavailable") in ("true", "")
        found: list[Index] = []
        for name in expression.split(","):
            if name in ("_all", "*"):
                found.extend(self.indices.values())
            elif "*" in name:
                found.extend(i for n, i in self.indices.items() if fnmatch.fnmatchcase(n, name))
            elif name in self.indices:
                found.append(self.indices[name])
            elif not lenient:
                self._index(name)
        return list({i.name: i for i in found}.values())

    def _index_api(
        self, method: str, name: str, rest: list[str], raw: bytes, params: dict[str, str], path: str = ""
    ) -> tuple[int, Any]:
        if not rest:
            if method == "HEAD":
                return (200 if name in self.indices else 404), None
            if method == "PUT":
                return self._create_index(name, self._json(raw))
            if method == "GET":
                found = self._resolve(name, params)
                return 200, {
                    i.name: {"aliases": {}, "mappings": i.mappings, "settings": {"index": i.settings}}
                    for i in found
                }
            if method == "DELETE":
                for index in self._resolve(name, {}):
                    del self.indices[index.name]
                return 200, {"acknowledged": True}
        op = rest[0]
        if op == "_mapping":
            return self._mapping(method, name, raw)
        if op in ("_doc", "_create"):
            self._params(path, params, "doc")
            if op == "_create":
                params = {**params, "op_type": "create"}
            return self._doc(method, name, rest[1] if len(rest) > 1 else None, raw, params)
        if op == "_bulk":
            self._params(path, params, "bulk")
            return self._bulk(name, raw, params)
        if op == "_mget":
            return self._mget(name, self._json(raw), params)
        if op in ("_refresh", "_flush", "_forcemerge"):
            found = self._resolve(name, params)
            for index in found:
                index.refresh()
            return 200, {"_shards": {"total": len(found), "successful": len(found), "failed": 0}}
        if op == "_search":
            self._params(path, params, "search")
            return 200, self._search(name, self._json(raw), params)
        if op == "_count":
            self._params(path, params, "count")
            body = self._json(raw)
            total = 0
            for index in self._resolve(name, params):
                ranked, _ = self._searcher(index).rank({"query": body.get("query", {"match_all": {}})})
                total += len(ranked)
            return 200, {"count": total, "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0}}
        if op == "_delete_by_query":
            return self._delete_by_query(name, self._json(raw), params)
        if op in ("_alias", "_aliases"):
            raise refused("index aliases")
        raise EsError(
            400,
            "illegal_argument_exception",
            f"no handler found for uri [/{name}/{'/'.join(rest)}] and method [{method}] in the ES stand-in",
        )

    def _mapping(self, method: str, name: str, raw: bytes) -> tuple[int, Any]:
        if method == "GET":
            return 200, {i.name: {"mappings": i.mappings} for i in self._resolve(name, {})}
        index = self._index(name)
        body = self._json(raw)
        props = body.get("properties", {})
        validate_properties(props, dims_of=self._dims_of)
        have = index.mappings.setdefault("properties", {})
        for field_name, spec in props.items():
            if field_name in have and have[field_name].get("type", "object") != spec.get("type", "object"):
                raise EsError(
                    400,
                    "illegal_argument_exception",
                    f"mapper [{field_name}] cannot be changed from type "
                    f"[{have[field_name].get('type', 'object')}] to [{spec.get('type', 'object')}]",
                )
            have[field_name] = spec
        for key in ("dynamic", "dynamic_templates"):
            if key in body:
                index.mappings[key] = body[key]
        return 200, {"acknowledged": True}

    def _dims_of(self, inference_id: str) -> int | None:
        endpoint = self.endpoints.get(inference_id)
        return endpoint.dims if endpoint is not None else None

    def _create_index(self, name: str, body: dict[str, Any]) -> tuple[int, Any]:
        if name in self.indices:
            raise EsError(
                400, "resource_already_exists_exception", f"index [{name}/standin] already exists", index=name
            )
        if name != name.lower() or name.startswith(("_", "-", "+")) or any(c in name for c in ' "*\\<|,>/?#'):
            raise EsError(
                400,
                "invalid_index_name_exception",
                f"Invalid index name [{name}], must be lowercase",
                index=name,
            )
        unknown = set(body) - {"mappings", "settings", "aliases"}
        if unknown:
            raise EsError(400, "parse_exception", f"unknown key [{sorted(unknown)[0]}] for create index")
        if body.get("aliases"):
            raise refused("index aliases")
        mappings = copy.deepcopy(body.get("mappings", {}))
        validate_properties(mappings.get("properties", {}), dims_of=self._dims_of)
        self.indices[name] = Index(name, mappings, copy.deepcopy(body.get("settings", {})))
        return 200, {"acknowledged": True, "shards_acknowledged": True, "index": name}

    def _prepare(self, index: Index, doc_id: str, source: Any, pipeline: str | None) -> dict[str, Any]:
        if not isinstance(source, dict):
            raise EsError(
                400, "document_parsing_exception", "[1:1] failed to parse: the document must be an object"
            )
        doc = copy.deepcopy(source)
        pipeline = pipeline or index.flat_settings().get("index.default_pipeline")
        if pipeline and pipeline != "_none":
            definition = self.pipelines.get(pipeline)
            if definition is None:
                raise EsError(
                    400, "illegal_argument_exception", f"pipeline with id [{pipeline}] does not exist"
                )
            ingest = IngestDocument(doc)
            self.processors.run(definition.get("processors", []), ingest, pipeline)
            doc = ingest.source
        return doc

    def _check(self, index: Index, doc_id: str, source: dict[str, Any]) -> None:
        """Map new fields and check the document against the mappings (mappings change only if it passes)."""
        mappings = copy.deepcopy(index.mappings)
        map_dynamically(mappings, source, doc_id)
        check_document(mappings.get("properties", {}), source, doc_id)
        index.mappings.clear()
        index.mappings.update(mappings)

    def _embed_semantic(
        self, index: Index, sources: dict[int, dict[str, Any]]
    ) -> tuple[dict[int, dict[str, dict[str, Any]]], dict[int, EsError]]:
        """Chunk and embed the semantic_text fields of several documents, batching like ES.

        Returns the inference entries per position, and the error of each position that failed.
        """
        entries: dict[int, dict[str, dict[str, Any]]] = {}
        errors: dict[int, EsError] = {}
        # (position, field, text offset) for every chunk, grouped by endpoint.
        pending: dict[str, list[tuple[int, str, int, int, str]]] = {}
        for position, source in sources.items():
            for path, spec in semantic_fields(index.mappings.get("properties", {})):
                found = _values_at(source, path)
                if not found:
                    continue
                inference_id = str(spec["inference_id"])
                endpoint = self.endpoints.get(inference_id)
                if endpoint is None:
                    errors[position] = EsError(
                        404,
                        "resource_not_found_exception",
                        f"Inference id [{inference_id}] not found for field [{path}]",
                    )
                    continue
                try:
                    texts = semantic_texts(found[0])
                except EsError as exc:
                    errors[position] = exc
                    continue
                settings = (
                    validate_chunking(spec["chunking_settings"])
                    if "chunking_settings" in spec
                    else endpoint.chunking_settings
                )
                # Offsets run over the values as one text, one separator character between values.
                cursor = 0
                for text in texts:
                    if text.strip():
                        for s, e in chunk_offsets(text, settings):
                            pending.setdefault(inference_id, []).append(
                                (position, path, cursor + s, cursor + e, text[s:e])
                            )
                    cursor += len(text) + 1
                joined = "\n".join(texts)
                entries.setdefault(position, {})[path] = {
                    "inference_id": inference_id,
                    "model_settings": endpoint.model_settings(),
                    "similarity": endpoint.similarity,
                    "text": joined,
                    "chunks": [],
                }
        for inference_id, chunks in pending.items():
            endpoint = self.endpoints[inference_id]
            batch = CHUNKED_BATCH[endpoint.service]
            for start in range(0, len(chunks), batch):
                group = [c for c in chunks[start : start + batch] if c[0] not in errors]
                if not group:
                    continue
                try:
                    vectors = self.infer(endpoint, [c[4] for c in group], batch=batch)
                except EsError as exc:
                    for position, path, *_ in group:
                        errors[position] = EsError(
                            exc.status,
                            "inference_exception",
                            f"Exception when running inference id [{inference_id}] on field [{path}]",
                            caused_by=exc.item_error(),
                        )
                    continue
                for (position, path, s, e, _), vector in zip(group, vectors, strict=True):
                    entries[position][path]["chunks"].append((s, e, vector))
        return entries, errors

    def _write(
        self,
        index: Index,
        doc_id: str,
        source: dict[str, Any],
        create_only: bool,
        inference: dict[str, dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
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
        if inference:
            index.inference[doc_id] = inference
            # Like ES, the first embedded document records the model's settings in the mapping.
            for path, entry in inference.items():
                spec = Mappings(index.mappings.get("properties", {})).field(path)
                if spec is not None and "model_settings" not in spec:
                    _mapping_at(index.mappings, path)["model_settings"] = dict(entry["model_settings"])
        else:
            index.inference.pop(doc_id, None)
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

    @staticmethod
    def _check_id(doc_id: Any) -> str | None:
        if doc_id is None:
            return None
        text = str(doc_id)
        if text == "":
            raise EsError(400, "illegal_argument_exception", "if _id is specified it must not be empty")
        size = len(text.encode())
        if size > MAX_ID_BYTES:
            raise EsError(
                400,
                "action_request_validation_exception",
                f"Validation Failed: 1: id [{text}] is too long, must be no longer than {MAX_ID_BYTES} bytes "
                f"but was: {size};",
            )
        return text

    def _refresh_param(self, index: Index, params: dict[str, str]) -> bool:
        """Apply ``?refresh=``; True when it forced a refresh (``forced_refresh`` in the answer)."""
        value = params.get("refresh")
        if value in ("", "true", "wait_for"):
            index.refresh()
            return value != "wait_for"
        if value not in (None, "false"):
            raise EsError(400, "illegal_argument_exception", f"Unknown value for refresh: [{value}].")
        return False

    def _doc(
        self, method: str, name: str, doc_id: str | None, raw: bytes, params: dict[str, str]
    ) -> tuple[int, Any]:
        if method in ("PUT", "POST"):
            index = self._auto_index(name)
            op_type = params.get("op_type", "index")
            if op_type not in ("index", "create"):
                raise EsError(
                    400,
                    "illegal_argument_exception",
                    f"opType must be 'create' or 'index', found: [{op_type}]",
                )
            doc_id = self._check_id(doc_id) or auto_id(index)
            source = self._prepare(index, doc_id, self._json(raw), params.get("pipeline"))
            self._check(index, doc_id, source)
            entries, errors = self._embed_semantic(index, {0: source})
            if errors:
                raise errors[0]
            result = self._write(index, doc_id, source, op_type == "create", entries.get(0))
            if self._refresh_param(index, params):
                result["forced_refresh"] = True
            return result.pop("status"), result
        index = self._index(name)
        if doc_id is None:
            raise EsError(400, "illegal_argument_exception", "a document id is required")
        if method in ("GET", "HEAD"):
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
            index.inference.pop(doc_id, None)
            self._refresh_param(index, params)
            return (200 if found else 404), {
                "_index": name,
                "_id": doc_id,
                "result": "deleted" if found else "not_found",
            }
        raise EsError(405, "illegal_argument_exception", f"method [{method}] is not allowed on _doc")

    def _bulk(self, default_index: str | None, raw: bytes, params: dict[str, str]) -> tuple[int, Any]:
        started = time.monotonic()
        lines = raw.decode().split("\n")
        fault = self.faults.take_items()
        # Parse everything first: a malformed line fails the whole request, like ES.
        actions: list[tuple[str, dict[str, Any], Any]] = []
        i = 0
        while i < len(lines):
            line = lines[i]
            i += 1
            if not line.strip():
                continue
            try:
                action_line = json.loads(line)
            except json.JSONDecodeError as exc:
                raise EsError(
                    400, "x_content_parse_exception", f"[1:1] malformed action line: {exc.msg}"
                ) from exc
            if not isinstance(action_line, dict) or not action_line:
                raise EsError(
                    400,
                    "illegal_argument_exception",
                    f"Malformed action/metadata line [{i}], expected FIELD_NAME but found [END_OBJECT]",
                )
            action, meta = next(iter(action_line.items()))
            if action not in ("index", "create", "delete", "update"):
                raise EsError(
                    400,
                    "illegal_argument_exception",
                    f"Malformed action/metadata line [{i}], expected field [create], [delete], [index] or "
                    f"[update] but found [{action}]",
                )
            if action == "update":
                raise refused("the bulk [update] action")
            source = None
            if action != "delete":
                while i < len(lines) and not lines[i].strip():
                    i += 1
                if i >= len(lines):
                    raise EsError(
                        400, "action_request_validation_exception", "Validation Failed: 1: no requests added;"
                    )
                try:
                    source = json.loads(lines[i])
                except json.JSONDecodeError as exc:
                    raise EsError(
                        400, "x_content_parse_exception", f"[1:1] failed to parse: {exc.msg}"
                    ) from exc
                i += 1
            if action == "index" and meta.get("op_type") == "create":
                action = "create"
            actions.append((action, dict(meta), source))
        items: list[dict[str, Any] | None] = [None] * len(actions)
        touched: set[str] = set()
        prepared: dict[int, tuple[Index, str, dict[str, Any]]] = {}
        for position, (action, meta, source) in enumerate(actions):
            name = meta.get("_index", default_index)
            doc_id: Any = meta.get("_id")
            try:
                if name is None:
                    raise EsError(
                        400, "action_request_validation_exception", "Validation Failed: 1: index is missing;"
                    )
                if meta.get("require_alias") or params.get("require_alias"):
                    raise refused("[require_alias]")
                doc_id = self._check_id(doc_id)
                injected = self.faults.refused.get(str(doc_id))
                if fault is not None and (
                    (fault.ids is not None and doc_id in fault.ids)
                    or (fault.count is not None and position < fault.count)
                ):
                    injected = injected or fault.status
                if injected is not None:
                    kind = "es_rejected_execution_exception" if injected == 429 else "status_exception"
                    raise EsError(injected, kind, f"injected item fault {injected}")
                if action == "delete":
                    if doc_id is None:
                        raise EsError(
                            400, "action_request_validation_exception", "Validation Failed: 1: id is missing;"
                        )
                    index = self._index(name)
                    found = index.docs.pop(doc_id, None) is not None
                    index.inference.pop(doc_id, None)
                    items[position] = {
                        "delete": {
                            "_index": name,
                            "_id": doc_id,
                            "result": "deleted" if found else "not_found",
                            "status": 200 if found else 404,
                        }
                    }
                    touched.add(name)
                    continue
                index = self._auto_index(name)
                doc_id = doc_id or auto_id(index, position)
                source = self._prepare(index, doc_id, source, meta.get("pipeline", params.get("pipeline")))
                self._check(index, doc_id, source)
                prepared[position] = (index, doc_id, source)
            except EsError as exc:
                items[position] = {
                    action: {"_index": name, "_id": doc_id, "status": exc.status, "error": exc.item_error()}
                }
        # semantic_text: the chunks of all documents of one index go to the service together.
        by_index: dict[str, dict[int, dict[str, Any]]] = {}
        for position, (index, _, source) in prepared.items():
            by_index.setdefault(index.name, {})[position] = source
        embedded: dict[int, dict[str, dict[str, Any]]] = {}
        failed: dict[int, EsError] = {}
        for name, sources in by_index.items():
            entries, errors = self._embed_semantic(self.indices[name], sources)
            embedded.update(entries)
            failed.update(errors)
        for position, (index, doc_id, source) in prepared.items():
            action = actions[position][0]
            try:
                if position in failed:
                    raise failed[position]
                item = self._write(index, doc_id, source, action == "create", embedded.get(position))
                items[position] = {action: item}
                touched.add(index.name)
            except EsError as exc:
                items[position] = {
                    action: {
                        "_index": index.name,
                        "_id": doc_id,
                        "status": exc.status,
                        "error": exc.item_error(),
                    }
                }
        forced = False
        for name in touched:
            forced = self._refresh_param(self.indices[name], params) or forced
        took = int((time.monotonic() - started) * 1000)
        return 200, {
            "errors": any("error" in next(iter(it.values())) for it in items if it),
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
        includes, excludes = source_filter(source_spec({}, params))
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

    def _searcher(self, index: Index) -> Searcher:
        return Searcher(
            index.searchable,
            Mappings(index.mappings.get("properties", {})),
            index.name,
            index.flat_settings(),
            index.searchable_inference,
            self.embed_query,
        )

    def _search(self, name: str, body: dict[str, Any], params: dict[str, str]) -> dict[str, Any]:
        if "retriever" in body:
            major, minor = (int(x) for x in self.version.split(".")[:2])
            if (major, minor) < (8, 14):
                raise EsError(
                    400, "x_content_parse_exception", "[1:14] Unknown key for a START_OBJECT in [retriever]."
                )
            if "rrf" in json.dumps(body["retriever"]) and not self.rrf_licensed:
                feature: dict[str, Any] = {"license.expired.feature": "Reciprocal Rank Fusion (RRF)"}
                raise EsError(
                    403,
                    "security_exception",
                    "current license is non-compliant for [Reciprocal Rank Fusion (RRF)]",
                    **feature,
                )
        found = self._resolve(name, params)
        if len(found) == 1:
            return self._searcher(found[0]).search(body, params)
        self._same_inference(found, body)
        size, offset = Searcher.window(body, params)
        scored: list[tuple[float, int, Searcher, str, Any]] = []
        total = 0
        for number, index in enumerate(found):
            searcher = self._searcher(index)
            ranked, count = searcher.rank(body, params)
            total += count
            scored.extend((m.score, number, searcher, doc_id, m) for doc_id, m in ranked[: offset + size])
        scored.sort(key=lambda x: (-x[0], x[1]))
        hits = [s.hit(doc_id, m, body, params) for _, _, s, doc_id, m in scored[offset : offset + size]]
        return render_hits(hits, total, body, params)

    def _same_inference(self, indices: list[Index], body: dict[str, Any]) -> None:
        """ES refuses a semantic query over indices whose field uses different endpoints."""
        fields = set(re.findall(r'"semantic": \{[^{}]*?"field": "([^"]+)"', json.dumps(body)))
        for path in fields:
            ids = {
                str((Mappings(i.mappings.get("properties", {})).field(path) or {}).get("inference_id"))
                for i in indices
                if Mappings(i.mappings.get("properties", {})).kind(path) == "semantic_text"
            }
            if len(ids) > 1:
                raise EsError(
                    400,
                    "illegal_argument_exception",
                    f"Field [{path}] has multiple inference IDs associated with it",
                )

    def _delete_by_query(self, name: str, body: dict[str, Any], params: dict[str, str]) -> tuple[int, Any]:
        deleted = 0
        total = 0
        for index in self._resolve(name, params):
            ranked, _ = self._searcher(index).rank({"query": body.get("query", {"match_all": {}})})
            total += len(ranked)
            for doc_id, _ in ranked:
                if index.docs.pop(doc_id, None) is not None:
                    index.inference.pop(doc_id, None)
                    deleted += 1
            self._refresh_param(index, params)
        return 200, {
            "took": 1,
            "timed_out": False,
            "total": total,
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
            found = {
                p: copy.deepcopy(d)
                for p, d in self.pipelines.items()
                if any(fnmatch.fnmatchcase(p, pattern) for pattern in pipeline_id.split(","))
            }
            return (200 if found else 404), found
        if pipeline_id is None:
            raise EsError(400, "illegal_argument_exception", "a pipeline id is required")
        if method == "PUT":
            body = self._json(raw)
            unknown = sorted(
                set(body) - {"description", "processors", "on_failure", "version", "_meta", "deprecated"}
            )
            if unknown:
                raise EsError(
                    400,
                    "parse_exception",
                    f"pipeline [{pipeline_id}] doesn't support one or more provided configuration "
                    f"parameters {unknown}",
                )
            if "processors" not in body:
                raise EsError(
                    400,
                    "parse_exception",
                    "[processors] required property is missing",
                    property_name="processors",
                )
            for definition in [*body.get("processors", []), *body.get("on_failure", [])]:
                validate_processor(definition, self.endpoints)
            self.pipelines[pipeline_id] = body
            return 200, {"acknowledged": True}
        if method == "DELETE":
            doomed = [
                p for p in self.pipelines if any(fnmatch.fnmatchcase(p, x) for x in pipeline_id.split(","))
            ]
            if not doomed:
                raise EsError(404, "resource_not_found_exception", f"pipeline [{pipeline_id}] is missing")
            for name in doomed:
                del self.pipelines[name]
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
            indices = [
                i.name
                for i in self.indices.values()
                if any(
                    s.get("inference_id") == inference_id
                    for _, s in semantic_fields(i.mappings.get("properties", {}))
                )
            ]
            if (users or indices) and params.get("force") != "true":
                where = "pipelines" if users else "indices"
                raise EsError(
                    400,
                    "status_exception",
                    f"Inference endpoint {inference_id} is referenced by {where} and cannot be deleted. "
                    f"Use `force` to delete it anyway, or use `dry_run` to list the {where}.",
                )
            del self.endpoints[inference_id]
            return 200, {"acknowledged": True, "pipelines": users, "indexes": indices}
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
            raise refused(f"task type [{task_type}] (the stand-in serves text_embedding)")
        service = body.get("service")
        if service not in SERVICE_SETTINGS:
            raise EsError(400, "status_exception", f"Unknown service [{service}] for model [{inference_id}]")
        extra = {
            k: v
            for k, v in body.items()
            if k not in ("service", "service_settings", "task_settings", "chunking_settings")
        }
        settings = dict(body.get("service_settings", {}))
        task_settings = dict(body.get("task_settings", {}))
        for unknown in (
            extra,
            {k: v for k, v in settings.items() if k not in SERVICE_SETTINGS[service]},
            {k: v for k, v in task_settings.items() if k not in TASK_SETTINGS[service]},
        ):
            if unknown:
                listed = ", ".join(f"{k}={v}" for k, v in unknown.items())
                raise EsError(
                    400,
                    "status_exception",
                    f"Configuration contains settings [{{{listed}}}] unknown to the [{service}] service",
                )
        missing = [name for name in REQUIRED_SETTINGS[service] if not settings.get(name)]
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
        similarity = settings.get("similarity")
        if similarity is not None and str(similarity).lower() not in ("cosine", "dot_product", "l2_norm"):
            raise EsError(
                400,
                "validation_exception",
                f"Validation Failed: 1: [service_settings] Invalid value [{similarity}] received. "
                "[similarity] "
                "must be one of [cosine, dot_product, l2_norm];",
            )
        rate = settings.get("rate_limit")
        if rate is not None and (
            not isinstance(rate, dict)
            or set(rate) != {"requests_per_minute"}
            or not isinstance(rate["requests_per_minute"], int)
            or rate["requests_per_minute"] < 1
        ):
            raise EsError(
                400,
                "validation_exception",
                'Validation Failed: 1: [rate_limit] must be {"requests_per_minute": a positive integer};',
            )
        chunking = (
            validate_chunking(body["chunking_settings"])
            if "chunking_settings" in body
            else dict(DEFAULT_CHUNKING)
        )
        endpoint = Endpoint(inference_id, task_type, service, settings, 0, task_settings, chunking)
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
        if settings.get("dimensions") and settings["dimensions"] != endpoint.dims:
            raise EsError(
                400,
                "status_exception",
                f"The retrieved embeddings size [{endpoint.dims}] does not match the size specified in the "
                f"settings [{settings['dimensions']}]. Please recreate the [{inference_id}] configuration "
                "with the correct dimensions",
            )
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


def service_error(endpoint: Endpoint, url: str, status: int, response: httpx.Response | None) -> EsError:
    """What ES's inference services answer once retries are spent (the services' response
    handlers: HuggingFaceResponseHandler, OpenAiResponseHandler; BaseResponseHandler.toRestStatus)."""
    if response is None:
        return EsError(
            408,
            "status_exception",
            f"Failed to send request from inference entity id [{endpoint.inference_id}]: "
            "the request timed out",
        )
    openai = endpoint.service == "openai"
    if status == 429:
        message = "Received a rate limit status code"
        if openai:
            limits = [response.headers.get(h, "unknown") for h in RATE_LIMIT_HEADERS]
            message += (
                f". Token limit [{limits[0]}], remaining tokens [{limits[1]}]. Request limit [{limits[2]}], "
                f"remaining requests [{limits[3]}]"
            )
    elif status in (502, 503) and not openai:
        message = "Received a rate limit status code"
    elif status == 503:
        message = "Received a server busy error status code"
    elif status >= 500:
        message = "Received a server error status code"
    elif status == 413:
        message = "Received a content too large status code"
    elif status == 401:
        message = "Received an authentication error status code"
    elif 300 <= status < 400:
        message = "Unhandled redirection"
    elif openai and status == 400:
        message = "Received a bad request status code"
    elif openai and status == 404:
        message = f"Resource not found at [{url}]"
    else:
        message = "Received an unsuccessful status code"
    text = f"{message} for request from inference entity id [{endpoint.inference_id}] status [{status}]"
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        error = None
    if isinstance(error, dict):
        error = error.get("message")
    if isinstance(error, str):
        text += f". Error message: [{error}]"
    return EsError(status if status < 500 else 400, "status_exception", text)


def auto_id(index: Index, position: int = 0) -> str:
    """A fresh id for a document indexed without one (ES makes 20-character base64 ids)."""
    raw = f"{index.name}:{index.seq_no}:{position}:{time.monotonic_ns()}".encode()
    return base64.urlsafe_b64encode(hashlib.blake2b(raw, digest_size=15).digest()).decode()


def _mapping_at(mappings: dict[str, Any], path: str) -> dict[str, Any]:
    """The mapping object of the field at dotted ``path`` (it exists), to change in place."""
    node: dict[str, Any] = mappings
    for part in path.split("."):
        node = node["properties"][part]
    return node


def _values_at(source: Any, path: str) -> list[Any]:
    node = source
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return []
        node = node[part]
    return [] if node is None else [node]


def search_error_body(exc: SearchError) -> dict[str, Any]:
    """A search error as ES renders it (shard failures wrapped in search_phase_execution_exception)."""
    extra = dict(exc.extra)
    wrap = extra.pop("wrap", None)
    cause = {"type": exc.kind, "reason": exc.reason, **extra}
    if wrap is None:
        return {"error": {"root_cause": [cause], **cause}, "status": exc.status}
    return {
        "error": {
            "root_cause": [cause],
            "type": wrap,
            "reason": "all shards failed",
            "phase": "query",
            "grouped": True,
            "failed_shards": [{"shard": 0, "index": "standin", "reason": cause}],
            "caused_by": cause,
        },
        "status": exc.status,
    }


def filter_paths(body: Any, patterns: list[str]) -> Any:
    """ES's ``filter_path``: keep the dotted paths matching ``patterns`` (``*``, ``**``, ``-`` to drop)."""
    keep = [p.split(".") for p in patterns if not p.startswith("-")]
    drop = [p[1:].split(".") for p in patterns if p.startswith("-")]

    def matches(path: list[str], pattern: list[str]) -> str:
        """'full' (path is matched), 'prefix' (pattern may match below), or ''."""
        if not pattern:
            return "full"
        if not path:
            return "prefix"
        if pattern[0] == "**":
            return (
                "full"
                if len(pattern) == 1
                else (matches(path, pattern[1:]) or matches(path[1:], pattern) or "prefix")
            )
        if fnmatch.fnmatchcase(path[0], pattern[0]):
            return matches(path[1:], pattern[1:])
        return ""

    def walk(node: Any, path: list[str]) -> Any:
        if isinstance(node, list):
            items = [walk(v, path) for v in node]
            return [v for v in items if v is not _DROP]
        if not isinstance(node, dict):
            full = (not keep or any(matches(path, p) == "full" for p in keep)) and not any(
                matches(path, p) == "full" for p in drop
            )
            return node if full else _DROP
        if any(matches(path, p) == "full" for p in drop):
            return _DROP
        if keep and path and any(matches(path, p) == "full" for p in keep) and not drop:
            return node
        out = {}
        for key, value in node.items():
            sub = [*path, key]
            if keep and not any(matches(sub, p) for p in keep):
                continue
            kept = walk(value, sub)
            if kept is not _DROP and kept != {}:
                out[key] = kept
        return out

    result = walk(body, [])
    return {} if result is _DROP else result


_DROP = object()
