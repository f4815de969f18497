"""``python -m rag search``: kNN retrieval of chunks, optionally fused with BM25 by RRF.

A search returns :class:`Passage` objects, one per chunk, whichever way the chunk was
ingested: a client-side chunk is its own document (top-level ``dense_vector``); a pipeline
chunk is a nested ``chunks`` entry of its document, found by a nested kNN clause whose
``inner_hits`` name the matching chunks (chunk index = nested offset; the ``model_id`` the
inference processor wrote next to it says which endpoint embedded it). Both clauses run in
one request (``knn`` as a list) and the chunks are ranked by their own score, ES's cosine
score ``(1 + cos) / 2``.

An index set up for ``semantic_text`` (it maps the ``semantic`` field) is searched with a
``knn`` query on that field (8.18+; the ``semantic`` query would fix ``k`` to the page size
and filter after the search), the same query vector and the same ``k``, ``num_candidates``
and pre-filter; the ``semantic`` highlighter names each document's best chunk (the chunk
index is its position among the field's values, rag's chunks). A document gives one passage,
scored by that chunk.

Hybrid search fuses the kNN ranking with a BM25 ranking (``match`` on the chunk text) by
reciprocal rank fusion, ``score = sum over rankings of 1 / (rank_constant + rank)``:
inside Elasticsearch with ``retriever.rrf`` when the cluster has it (8.14+, and a license
that covers it) and the index holds only client-side chunks, otherwise here, on the two
rankings fetched separately. ``rrf="server"`` forces the former, ``"client"`` the latter.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from rag.embedder import Embedder
from rag.errors import ConfigError, NotSetUpError, SearchBackendError
from rag.resources import MODEL_ID_FIELD, NESTED_FIELD, SEMANTIC_FIELD, VECTOR_FIELD, has_semantic_field
from rag.settings import Settings
from rag.store import Store

INNER = "chunks"
log = logging.getLogger("rag")
_SOURCE = {"excludes": [VECTOR_FIELD, NESTED_FIELD, SEMANTIC_FIELD, "content", "content_hash"]}
Fusion = Literal["none", "server", "client"]


@dataclass(frozen=True)
class Passage:
    """One retrieved chunk and its score (cosine score, or RRF score when fused).

    ``embedded_by`` is the inference endpoint Elasticsearch recorded for a pipeline chunk
    (the processor's ``model_id``), None for chunks embedded here or by ``semantic_text``.
    """

    doc_id: str
    chunk_index: int
    text: str
    score: float
    metadata: dict[str, Any] = field(default_factory=dict)
    embedded_by: str | None = None

    @property
    def source(self) -> str:
        return str(self.metadata.get("source", self.doc_id))

    @property
    def key(self) -> tuple[str, int]:
        return self.doc_id, self.chunk_index


@dataclass(frozen=True)
class SearchResult:
    passages: list[Passage]
    fusion: Fusion


def parse_filters(items: Sequence[str]) -> dict[str, list[str]]:
    """``["lang=en", "lang=de", "source=a.md"]`` -> ``{"lang": ["en", "de"], "source": ["a.md"]}``."""
    out: dict[str, list[str]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--filter {item!r} must look like KEY=VALUE (a metadata field and its value)")
        out.setdefault(key.strip(), []).append(value)
    return out


def filter_clauses(filters: Mapping[str, Sequence[str]]) -> list[dict[str, Any]]:
    """Exact-match filters on ``metadata.<key>`` (keyword fields)."""
    clauses: list[dict[str, Any]] = []
    for key, values in sorted(filters.items()):
        name = f"metadata.{key}"
        clauses.append({"term": {name: values[0]}} if len(values) == 1 else {"terms": {name: list(values)}})
    return clauses


def knn_body(
    vector: Sequence[float], k: int, num_candidates: int, filters: list[dict[str, Any]]
) -> dict[str, Any]:
    """One request for both chunk shapes: top-level vectors and nested ``chunks`` vectors."""
    top: dict[str, Any] = {
        "field": VECTOR_FIELD,
        "query_vector": list(vector),
        "k": k,
        "num_candidates": num_candidates,
    }
    nested: dict[str, Any] = {
        "field": f"{NESTED_FIELD}.{VECTOR_FIELD}",
        "query_vector": list(vector),
        "k": k,
        "num_candidates": num_candidates,
        "inner_hits": {
            "name": INNER,
            "size": k,
            "_source": False,
            "fields": [f"{NESTED_FIELD}.chunk", f"{NESTED_FIELD}.{MODEL_ID_FIELD}"],
        },
    }
    if filters:
        top["filter"] = filters
        nested["filter"] = filters
    return {"knn": [top, nested], "size": k, "_source": _SOURCE}


def semantic_body(
    vector: Sequence[float], k: int, num_candidates: int, filters: list[dict[str, Any]]
) -> dict[str, Any]:
    """A ``knn`` query on the ``semantic_text`` field, and each hit's best chunk by highlight."""
    knn: dict[str, Any] = {
        "field": SEMANTIC_FIELD,
        "query_vector": list(vector),
        "k": k,
        "num_candidates": num_candidates,
    }
    if filters:
        knn["filter"] = filters
    return {
        "query": {"knn": knn},
        "size": k,
        "_source": {"includes": ["doc_id", "metadata", SEMANTIC_FIELD]},
        "highlight": {
            "fields": {SEMANTIC_FIELD: {"type": "semantic", "number_of_fragments": 1, "order": "score"}}
        },
    }


def _value_index(fragment: str, values: Sequence[str]) -> int:
    """Which of a document's ``semantic`` values (rag's chunks) the highlighted ``fragment`` is,
    or is part of (when Elasticsearch re-chunked a long value)."""
    for i, value in enumerate(values):
        if value == fragment:
            return i
    for i, value in enumerate(values):
        if fragment.strip() and fragment.strip() in value:
            return i
    return 0


def semantic_passages(response: Mapping[str, Any]) -> list[Passage]:
    """One passage per hit of :func:`semantic_body`: its best chunk, scored by the hit."""
    out: list[Passage] = []
    for hit in response.get("hits", {}).get("hits", []):
        source = hit.get("_source", {})
        value = source.get(SEMANTIC_FIELD, [])
        if isinstance(value, dict):  # the legacy (8.x) format keeps the text under `text`
            value = value.get("text", [])
        values = [value] if isinstance(value, str) else [str(v) for v in value]
        fragments = hit.get("highlight", {}).get(SEMANTIC_FIELD, [])
        text = str(fragments[0]) if fragments else (values[0] if values else "")
        out.append(
            Passage(
                str(source.get("doc_id", hit["_id"])),
                _value_index(text, values),
                text,
                float(hit.get("_score") or 0.0),
                dict(source.get("metadata", {})),
            )
        )
    out.sort(key=lambda p: (-p.score, p.doc_id, p.chunk_index))
    return out


def bm25_body(query: str, size: int, filters: list[dict[str, Any]]) -> dict[str, Any]:
    should = [
        {"match": {"chunk": query}},
        {
            "nested": {
                "path": NESTED_FIELD,
                "score_mode": "max",
                "query": {"match": {f"{NESTED_FIELD}.chunk": query}},
                "inner_hits": {
                    "name": INNER,
                    "size": size,
                    "_source": False,
                    "fields": [f"{NESTED_FIELD}.chunk"],
                },
            }
        },
    ]
    bool_query: dict[str, Any] = {"should": should, "minimum_should_match": 1}
    if filters:
        bool_query["filter"] = filters
    return {"query": {"bool": bool_query}, "size": size, "_source": _SOURCE}


def rrf_body(
    query: str,
    vector: Sequence[float],
    k: int,
    window: int,
    num_candidates: int,
    rank_constant: int,
    filters: list[dict[str, Any]],
) -> dict[str, Any]:
    """``retriever.rrf`` over the top-level chunk documents (kNN and BM25)."""
    knn: dict[str, Any] = {
        "field": VECTOR_FIELD,
        "query_vector": list(vector),
        "k": window,
        "num_candidates": max(num_candidates, window),
    }
    match: dict[str, Any] = {"bool": {"must": [{"match": {"chunk": query}}]}}
    if filters:
        knn["filter"] = filters
        match["bool"]["filter"] = filters
    return {
        "retriever": {
            "rrf": {
                "retrievers": [{"knn": knn}, {"standard": {"query": match}}],
                "rank_window_size": window,
                "rank_constant": rank_constant,
            }
        },
        "size": k,
        "_source": _SOURCE,
    }


def passages(response: Mapping[str, Any]) -> list[Passage]:
    """The chunks of a search response, best first by their own score."""
    out: list[Passage] = []
    for hit in response.get("hits", {}).get("hits", []):
        source = hit.get("_source", {})
        metadata = dict(source.get("metadata", {}))
        doc_id = str(source.get("doc_id", hit["_id"]))
        inner = hit.get("inner_hits", {}).get(INNER, {}).get("hits", {}).get("hits", [])
        if inner:
            for nested in inner:
                values = nested.get("fields", {}).get(NESTED_FIELD, [{}])[0]
                model_id = values.get(MODEL_ID_FIELD)
                out.append(
                    Passage(
                        doc_id,
                        int(nested["_nested"]["offset"]),
                        str(values.get("chunk", [""])[0]),
                        float(nested.get("_score") or 0.0),
                        metadata,
                        str(model_id[0]) if model_id else None,
                    )
                )
        elif "chunk" in source:
            out.append(
                Passage(
                    doc_id,
                    int(source.get("chunk_index", 0)),
                    str(source["chunk"]),
                    float(hit.get("_score") or 0.0),
                    metadata,
                )
            )
    out.sort(key=lambda p: (-p.score, p.doc_id, p.chunk_index))
    return out


def fuse(rankings: Sequence[Sequence[Passage]], k: int, rank_constant: int) -> list[Passage]:
    """Reciprocal rank fusion of rankings of passages (1-based ranks); the top ``k``."""
    scores: dict[tuple[str, int], float] = {}
    first: dict[tuple[str, int], Passage] = {}
    for ranking in rankings:
        for rank, passage in enumerate(ranking, start=1):
            scores[passage.key] = scores.get(passage.key, 0.0) + 1.0 / (rank_constant + rank)
            first.setdefault(passage.key, passage)
    order = sorted(scores, key=lambda key: (-scores[key], key))
    return [replace(first[key], score=scores[key]) for key in order[:k]]


class Retriever:
    """Embeds a question and finds its chunks in the index."""

    def __init__(self, settings: Settings, store: Store, embedder: Embedder) -> None:
        self.settings = settings
        self.store = store
        self.embedder = embedder
        self._server_rrf: bool | None = None if settings.rrf == "auto" else settings.rrf == "server"
        self._semantic: bool | None = None

    def _is_semantic(self) -> bool:
        """Whether the index was set up for ``semantic_text``: ``RAG_INGEST_PATH`` says, when set;
        else its mapping, read once (a key without ``view_index_metadata`` is taken as "no")."""
        if self._semantic is None:
            if self.settings.ingest_path is not None:
                self._semantic = self.settings.ingest_path == "semantic_text"
                return self._semantic
            try:
                mappings = self.store.get_index_mappings(self.settings.index)
            except SearchBackendError as exc:
                if exc.status != 403:
                    raise
                log.warning(
                    "cannot read the mapping of %s (%s); set RAG_INGEST_PATH", self.settings.index, exc
                )
                self._semantic = False
                return False
            if mappings is None:
                raise NotSetUpError(
                    f"index {self.settings.index!r} does not exist at ES_URL={self.settings.es_url}: "
                    f"run `python -m rag setup --index {self.settings.index}` and "
                    f"`python -m rag ingest --index {self.settings.index}`",
                    status=404,
                    error_type="index_not_found_exception",
                )
            self._semantic = has_semantic_field(mappings)
        return self._semantic

    def _use_server_rrf(self) -> bool:
        if self._is_semantic():
            return False
        if self._server_rrf is None:
            nested = {
                "nested": {"path": NESTED_FIELD, "query": {"exists": {"field": f"{NESTED_FIELD}.chunk"}}}
            }
            self._server_rrf = (
                self.store.info.has_rrf_retriever and self.store.count(self.settings.index, nested) == 0
            )
        return self._server_rrf

    def search(
        self,
        query: str,
        k: int | None = None,
        filters: Mapping[str, Sequence[str]] | None = None,
        hybrid: bool | None = None,
    ) -> SearchResult:
        """The top ``k`` chunks for ``query`` (see module doc for the hybrid modes)."""
        if not query.strip():
            raise ConfigError("the question is empty")
        k = k or self.settings.k
        num_candidates = max(self.settings.num_candidates, k)
        clauses = filter_clauses(filters or {})
        vector = self.embedder.embed([query])[0]
        index = self.settings.index
        semantic = self._is_semantic()
        if not (self.settings.hybrid if hybrid is None else hybrid):
            return SearchResult(self._vector_search(vector, k, num_candidates, clauses, semantic)[:k], "none")
        window = max(2 * k, 10)
        if self._use_server_rrf():
            body = rrf_body(
                query, vector, k, window, num_candidates, self.settings.rrf_rank_constant, clauses
            )
            try:
                return SearchResult(passages(self.store.search(index, body))[:k], "server")
            except SearchBackendError as exc:
                # An unknown `retriever` (400) or a license without RRF (403): fuse here from now on.
                if self.settings.rrf == "server" or exc.status not in (400, 403):
                    raise
                # "once": the CLI shows this once per cluster, not on every command.
                log.warning(
                    "the cluster refused retriever.rrf (%s); fusing on the client", exc, extra={"once": "rrf"}
                )
                self._server_rrf = False
        by_vector = self._vector_search(vector, window, max(num_candidates, window), clauses, semantic)
        lexical = passages(self.store.search(index, bm25_body(query, window, clauses)))
        return SearchResult(
            fuse([by_vector[:window], lexical[:window]], k, self.settings.rrf_rank_constant), "client"
        )

    def _vector_search(
        self,
        vector: Sequence[float],
        k: int,
        num_candidates: int,
        clauses: list[dict[str, Any]],
        semantic: bool,
    ) -> list[Passage]:
        index = self.settings.index
        if semantic:
            return semantic_passages(
                self.store.search(index, semantic_body(vector, k, num_candidates, clauses))
            )
        return passages(self.store.search(index, knn_body(vector, k, num_candidates, clauses)))
