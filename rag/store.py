"""The Elasticsearch side of ``rag``: one client, its REST compatibility, and the calls we make.

Client version policy. ``rag`` works with the official ``elasticsearch`` client 8.15+ and
9.x (``elasticsearch>=8.15,<10``) against 8.x and 9.x clusters. A client of major N asks
for ``compatible-with=N`` in ``Accept``/``Content-Type``; a cluster of major M accepts
M and M-1 only, so a 9.x client is refused by an 8.x cluster with
``media_type_header_exception``. ``ES_COMPAT=auto`` (default) asks the cluster its
version once (with ``compatible-with=8``, which 8.x and 9.x both accept) and then pins the
compatibility major to the cluster's when it is older than the client; ``ES_COMPAT=8``
pins it without asking. The pin is applied by a small ``Transport`` subclass, the hook the
client offers (``transport_class``), after the client has built its headers.

Every call goes through :func:`rag.errors.elasticsearch_errors`, so callers only see
``rag`` errors. Retries of 429/503 and connection errors with exponential backoff are done
here (``Store.call``), not by the transport, so that bulk items and whole requests follow
one policy.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import version as package_version
from typing import Any, TypeVar

import elastic_transport
from elastic_transport import HttpHeaders
from elasticsearch import Elasticsearch

from rag.errors import NotSetUpError, SearchBackendError, elasticsearch_errors
from rag.settings import Settings

CLIENT_MAJOR = int(package_version("elasticsearch").split(".")[0])
_COMPAT = re.compile(r"compatible-with=\d+")
RETRY_STATUSES = frozenset({429, 502, 503, 504})
T = TypeVar("T")


class PinnedCompatTransport(elastic_transport.Transport):
    """A Transport that rewrites ``compatible-with=N`` to ``pinned`` when it is set."""

    pinned: int | None = None

    def perform_request(
        self,
        method: str,
        target: str,
        *,
        headers: Any = elastic_transport.client_utils.DEFAULT,
        **kwargs: Any,
    ) -> elastic_transport.TransportApiResponse:
        if self.pinned is not None and isinstance(headers, Mapping):
            rewritten = HttpHeaders(headers)
            for name in ("accept", "content-type"):
                value = rewritten.get(name)
                if value:
                    rewritten[name] = _COMPAT.sub(f"compatible-with={self.pinned}", value)
            headers = rewritten
        return super().perform_request(method, target, headers=headers, **kwargs)


@dataclass(frozen=True)
class ClusterInfo:
    """What the cluster said about itself."""

    version: tuple[int, int, int]
    flavor: str
    compat: int

    @property
    def has_rrf_retriever(self) -> bool:
        """Retrievers (``retriever.rrf``) exist from 8.14 on; a license may still refuse them."""
        return self.version >= (8, 14, 0)


def _version(number: str) -> tuple[int, int, int]:
    parts = [int(p) for p in re.findall(r"\d+", number)[:3]]
    parts += [0] * (3 - len(parts))
    return parts[0], parts[1], parts[2]


class Store:
    """The calls ``rag`` makes to one cluster. Construct with :func:`connect`."""

    def __init__(self, client: Elasticsearch, settings: Settings, info: ClusterInfo) -> None:
        self.client = client
        self.settings = settings
        self.info = info

    # -- retries -----------------------------------------------------------------------

    def call(self, action: str, fn: Callable[[], T]) -> T:
        """Run ``fn`` with translated errors, retrying 429/5xx and connection errors with backoff."""
        attempt = 0
        while True:
            try:
                with elasticsearch_errors(self.settings.es_url, action):
                    return fn()
            except SearchBackendError as exc:
                retryable = exc.status in RETRY_STATUSES or exc.status is None
                if not retryable or attempt >= self.settings.max_retries:
                    raise
            self.backoff(attempt)
            attempt += 1

    def backoff(self, attempt: int) -> None:
        time.sleep(min(self.settings.retry_backoff * (2**attempt), 30.0))

    # -- resources ---------------------------------------------------------------------

    def get_index_mappings(self, index: str) -> dict[str, Any] | None:
        if not self.call(f"check index {index}", lambda: bool(self.client.indices.exists(index=index))):
            return None
        body = self.call(
            f"read the mappings of {index}", lambda: self.client.indices.get_mapping(index=index).body
        )
        return dict(next(iter(body.values()))["mappings"])

    def create_index(self, index: str, body: Mapping[str, Any]) -> None:
        self.call(f"create index {index}", lambda: self.client.indices.create(index=index, **body))

    def add_mappings(self, index: str, properties: Mapping[str, Any]) -> None:
        self.call(
            f"add fields to {index}",
            lambda: self.client.indices.put_mapping(index=index, properties=properties),
        )

    def get_pipeline(self, pipeline: str) -> dict[str, Any] | None:
        def get() -> dict[str, Any] | None:
            found = self.client.options(ignore_status=404).ingest.get_pipeline(id=pipeline)
            return dict(found.body[pipeline]) if found.meta.status == 200 and pipeline in found.body else None

        return self.call(f"read ingest pipeline {pipeline}", get)

    def put_pipeline(self, pipeline: str, body: Mapping[str, Any]) -> None:
        self.call(
            f"create ingest pipeline {pipeline}", lambda: self.client.ingest.put_pipeline(id=pipeline, **body)
        )

    def get_inference(self, inference_id: str) -> dict[str, Any] | None:
        def get() -> dict[str, Any] | None:
            found = self.client.options(ignore_status=404).inference.get(
                task_type="text_embedding", inference_id=inference_id
            )
            if found.meta.status != 200:
                return None
            # 8.12+ answers {"endpoints": [...]}; 8.11 answered {"models": [...]}.
            items = found.body.get("endpoints", found.body.get("models", []))
            return dict(items[0]) if items else None

        return self.call(f"read inference endpoint {inference_id}", get)

    def put_inference(self, inference_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        # Creating an endpoint makes the cluster call our server; that can take a while.
        return self.call(
            f"create inference endpoint {inference_id}",
            lambda: dict(
                self.client.options(request_timeout=max(self.settings.es_timeout, 120.0))
                .inference.put(task_type="text_embedding", inference_id=inference_id, inference_config=body)
                .body
            ),
        )

    def delete_inference(self, inference_id: str) -> None:
        # force: the pipeline that references the endpoint is replaced right after.
        self.call(
            f"delete inference endpoint {inference_id}",
            lambda: self.client.inference.delete(
                task_type="text_embedding", inference_id=inference_id, force=True
            ),
        )

    # -- documents ---------------------------------------------------------------------

    def bulk(
        self,
        operations: Sequence[Mapping[str, Any]],
        pipeline: str | None = None,
        embeds: bool = False,
    ) -> list[dict[str, Any]]:
        """One ``_bulk`` request; returns the per-item results in order (``index`` action bodies).

        Whole-request failures are retried by :meth:`call`; per-item failures are the caller's.
        The request waits ``es_timeout``, or at least 120 s with a ``pipeline`` or when the
        cluster ``embeds`` (a ``semantic_text`` field): it then embeds every chunk before it
        answers, and a retry after a timeout would send that work again while the cluster is
        still doing it.
        """
        slow = bool(pipeline) or embeds
        timeout = max(self.settings.es_timeout, 120.0) if slow else self.settings.es_timeout

        def send() -> list[dict[str, Any]]:
            kwargs: dict[str, Any] = {"operations": list(operations)}
            if pipeline:
                kwargs["pipeline"] = pipeline
            response = self.client.options(request_timeout=timeout).bulk(**kwargs)
            return [next(iter(item.values())) for item in response.body["items"]]

        return self.call("index documents with _bulk", send)

    def sources(
        self, index: str, ids: Sequence[str], fields: Sequence[str]
    ) -> dict[str, dict[str, Any] | None]:
        """``_mget``: the requested source ``fields`` of each id, None for ids not found."""
        if not ids:
            return {}
        body = self.call(
            f"read documents of {index}",
            lambda: self.client.mget(index=index, ids=list(ids), source_includes=list(fields)).body,
        )
        return {doc["_id"]: (doc.get("_source", {}) if doc.get("found") else None) for doc in body["docs"]}

    def delete_where(self, index: str, query: Mapping[str, Any]) -> int:
        body = self.call(
            f"delete stale chunks from {index}",
            lambda: (
                self.client.delete_by_query(index=index, query=query, refresh=True, conflicts="proceed").body
            ),
        )
        return int(body.get("deleted", 0))

    def refresh(self, index: str) -> None:
        self.call(f"refresh {index}", lambda: self.client.indices.refresh(index=index))

    def count(self, index: str, query: Mapping[str, Any] | None = None) -> int:
        def count() -> int:
            kwargs: dict[str, Any] = {"index": index}
            if query is not None:
                kwargs["query"] = query
            return int(self.client.count(**kwargs).body["count"])

        return self.call(f"count documents of {index}", count)

    def search(self, index: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """``_search``; a missing index is a :class:`NotSetUpError`."""
        try:
            return self.call(f"search {index}", lambda: dict(self.client.search(index=index, **body).body))
        except SearchBackendError as exc:
            if exc.error_type == "index_not_found_exception":
                raise NotSetUpError(
                    f"index {index!r} does not exist at ES_URL={self.settings.es_url}: "
                    f"run `python -m rag setup --index {index}` and `python -m rag ingest --index {index}`",
                    status=404,
                    error_type=exc.error_type,
                ) from exc
            raise

    def close(self) -> None:
        self.client.close()


def _client(settings: Settings) -> Elasticsearch:
    kwargs: dict[str, Any] = {
        "request_timeout": settings.es_timeout,
        "max_retries": 0,
        "retry_on_timeout": False,
        "transport_class": PinnedCompatTransport,
        "verify_certs": settings.es_verify_certs,
    }
    if settings.es_api_key:
        kwargs["api_key"] = settings.es_api_key
    if settings.es_ca_certs:
        kwargs["ca_certs"] = settings.es_ca_certs
    return Elasticsearch(settings.es_url, **kwargs)


def connect(settings: Settings) -> Store:
    """A client for ``settings.es_url`` with its compatibility major chosen (see module doc)."""
    client = _client(settings)
    try:
        return _negotiate(client, settings)
    except BaseException:
        client.close()
        raise


def _negotiate(client: Elasticsearch, settings: Settings) -> Store:
    transport = client.transport
    assert isinstance(transport, PinnedCompatTransport)
    # compatible-with=8 works on 8.x and 9.x clusters, whatever the client's major. The API
    # methods set their own Accept header, so the pin must be applied below them.
    transport.pinned = 8
    store = Store(client, settings, ClusterInfo((0, 0, 0), "", 8))
    body = store.call("read the cluster's version", lambda: dict(client.info().body))
    version = _version(str(body.get("version", {}).get("number", "0")))
    flavor = str(body.get("version", {}).get("build_flavor", "default"))
    if version < (8, 15, 0) and flavor != "serverless":
        raise SearchBackendError(
            f"Elasticsearch at ES_URL={settings.es_url} is {'.'.join(map(str, version))}; "
            "rag needs 8.15 or later (nested kNN with inner hits, the _inference API, input_output inference)"
        )
    if settings.es_compat == "auto":
        compat = CLIENT_MAJOR if flavor == "serverless" else min(CLIENT_MAJOR, version[0])
    else:
        compat = int(settings.es_compat)
    transport.pinned = compat if compat != CLIENT_MAJOR else None
    store.info = ClusterInfo(version, flavor, compat)
    return store
