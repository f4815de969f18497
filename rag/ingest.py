"""``python -m rag ingest``: put a corpus into the index, through rag or through the ES pipeline.

``via="client"`` (default): chunk locally (:mod:`rag.chunking`), embed the chunks in
batches through our server, and ``_bulk`` one document per chunk with ``_id`` =
``<doc id>#<chunk index>``. ``via="pipeline"``: ``_bulk`` one document per source document
(``_id`` = doc id) with ``?pipeline=<pipeline>``, so that Elasticsearch splits it and calls
our server through its ``_inference`` endpoint.

Re-runs are idempotent and resume where a run stopped: every document stores a hash of its
text and of what shaped its vectors (model, chunk budget, pipeline); documents and chunks
already stored with the same hash are skipped, changed ones are re-indexed under the same
ids, and chunks left over from a longer former version of a document are deleted.

Nothing is silently dropped: bulk items refused with 429/502/503/504 are retried with
exponential backoff (``max_retries``); any other item failure, or one still failing after
the retries, is reported by id in :class:`IngestSummary` ``failed``.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TextIO

from rag import corpus
from rag.chunking import Chunker, normalize, paragraphs
from rag.corpus import Document
from rag.embedder import Embedder
from rag.errors import InputError, NotSetUpError, SetupConflictError, es_reason
from rag.progress import Progress
from rag.resources import index_dims
from rag.settings import Settings
from rag.store import RETRY_STATUSES, Store

Via = Literal["client", "pipeline"]
# Documents chunked and embedded together: bounds memory, keeps progress moving.
DOC_BATCH = 64


@dataclass
class IngestSummary:
    """Counts of one ingest run; ``failed`` maps each failed ``_id`` to its last error."""

    via: Via
    docs: int = 0
    docs_skipped: int = 0
    chunks: int = 0
    chunks_skipped: int = 0
    stale_deleted: int = 0
    retried: int = 0
    empty: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    def render(self) -> str:
        lines = [
            f"ingested via {self.via} in {self.seconds:.1f} s: {self.docs} documents "
            f"({self.docs_skipped} unchanged, skipped), {self.chunks} chunks "
            f"({self.chunks_skipped} unchanged, skipped), {len(self.failed)} failed",
        ]
        if self.retried:
            lines.append(f"{self.retried} bulk items were retried after 429/5xx")
        if self.empty:
            lines.append(
                f"{len(self.empty)} documents have no text and gave no chunks: {', '.join(self.empty[:10])}"
            )
        if self.stale_deleted:
            lines.append(f"{self.stale_deleted} chunks of shortened documents were deleted")
        for item_id, reason in sorted(self.failed.items()):
            lines.append(f"failed: {item_id}: {reason}")
        return "\n".join(lines)


def chunk_id(doc_id: str, index: int) -> str:
    return f"{doc_id}#{index}"


def _hash(*parts: object) -> str:
    return hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()


def load_documents(paths: Sequence[str | Path]) -> list[Document]:
    """Every document under ``paths``; two documents with one id is an InputError."""
    seen: dict[str, str] = {}
    docs: list[Document] = []
    for path in corpus.files(paths):
        for doc in corpus.read(path):
            where = f"{doc.metadata.get('source')}" + (
                f":{doc.metadata['line']}" if "line" in doc.metadata else ""
            )
            if doc.doc_id in seen:
                raise InputError(f"document id {doc.doc_id!r} appears twice: {seen[doc.doc_id]} and {where}")
            seen[doc.doc_id] = where
            docs.append(doc)
    return docs


class _Bulk:
    """Sends index operations, retrying refused items; records what finally failed."""

    def __init__(self, store: Store, index: str, summary: IngestSummary, pipeline: str | None) -> None:
        self.store = store
        self.index = index
        self.summary = summary
        self.pipeline = pipeline

    def send(self, docs: Mapping[str, dict[str, Any]]) -> set[str]:
        """Index ``{_id: source}``; returns the ids that were stored."""
        pending = dict(docs)
        stored: set[str] = set()
        attempt = 0
        while pending:
            operations: list[dict[str, Any]] = []
            for item_id, source in pending.items():
                operations.append({"index": {"_index": self.index, "_id": item_id}})
                operations.append(source)
            items = self.store.bulk(operations, pipeline=self.pipeline)
            retry: dict[str, dict[str, Any]] = {}
            for (item_id, source), item in zip(pending.items(), items, strict=True):
                status = int(item.get("status", 500))
                if 200 <= status < 300:
                    stored.add(item_id)
                    self.summary.failed.pop(item_id, None)
                    continue
                kind, reason = es_reason({"error": item.get("error", {})})
                self.summary.failed[item_id] = f"{status} {kind or ''} {reason}".replace("  ", " ")
                if status in RETRY_STATUSES and attempt < self.store.settings.max_retries:
                    retry[item_id] = source
            if not retry:
                break
            self.summary.retried += len(retry)
            self.store.backoff(attempt)
            attempt += 1
            pending = retry
        return stored


def _check_index(settings: Settings, store: Store, dims: int | None) -> None:
    mappings = store.get_index_mappings(settings.index)
    if mappings is None:
        raise NotSetUpError(
            f"index {settings.index!r} does not exist at ES_URL={settings.es_url}: run `python -m rag setup`"
        )
    have = index_dims(mappings)
    if dims is not None and have is not None and have != dims:
        raise SetupConflictError(
            f"index {settings.index!r} stores {have}-dim vectors but the model at "
            f"EMBED_URL={settings.embed_url} makes {dims}-dim ones: use another --index or re-create it"
        )


def _ingest_client(
    docs: list[Document],
    settings: Settings,
    store: Store,
    embedder: Embedder,
    summary: IngestSummary,
    progress: Progress,
) -> None:
    model = embedder.info()
    _check_index(settings, store, model.dims)
    chunker = Chunker(embedder, settings.chunk_tokens, settings.chunk_overlap, model.max_input_length)
    bulk = _Bulk(store, settings.index, summary, pipeline=None)
    for start in range(0, len(docs), DOC_BATCH):
        batch = docs[start : start + DOC_BATCH]
        per_doc = chunker.split([d.content for d in batch])
        hashes = [
            _hash(model.model_id, model.dims, chunker.budget, chunker.overlap, normalize(d.content))
            for d in batch
        ]
        ids = [
            chunk_id(d.doc_id, i)
            for d, chunks in zip(batch, per_doc, strict=True)
            for i in range(len(chunks))
        ]
        stored = store.sources(settings.index, ids, ["content_hash"]) if ids else {}
        todo: list[tuple[str, dict[str, Any]]] = []
        changed_docs: list[tuple[str, int]] = []
        for doc, chunks, digest in zip(batch, per_doc, hashes, strict=True):
            unchanged = 0
            replaced = False
            for i, text in enumerate(chunks):
                cid = chunk_id(doc.doc_id, i)
                previous = stored.get(cid)
                if previous is not None and previous.get("content_hash") == digest:
                    unchanged += 1
                    continue
                replaced = replaced or previous is not None
                source = {
                    "doc_id": doc.doc_id,
                    "chunk_index": i,
                    "chunk": text,
                    "metadata": doc.metadata,
                    "content_hash": digest,
                }
                todo.append((cid, source))
            summary.chunks_skipped += unchanged
            if chunks and unchanged == len(chunks):
                summary.docs_skipped += 1
            if not chunks:
                summary.empty.append(doc.doc_id)
            # A changed (or emptied) document may have had more chunks before.
            if replaced or not chunks:
                changed_docs.append((doc.doc_id, len(chunks)))
        vectors = embedder.embed([source["chunk"] for _, source in todo]) if todo else []
        for (_, source), vector in zip(todo, vectors, strict=True):
            source["dense_vector"] = vector
        for lo in range(0, len(todo), settings.bulk_size):
            part = dict(todo[lo : lo + settings.bulk_size])
            stored_ids = bulk.send(part)
            summary.chunks += len(stored_ids)
        if changed_docs:
            summary.stale_deleted += store.delete_where(settings.index, _stale_query(changed_docs))
        summary.docs += len(batch)
        progress.advance(len(batch))


def _stale_query(docs: list[tuple[str, int]]) -> dict[str, Any]:
    """Chunks of ``doc_id`` at or past ``count``: left over from a longer former version."""
    return {
        "bool": {
            "should": [
                {
                    "bool": {
                        "filter": [{"term": {"doc_id": doc_id}}, {"range": {"chunk_index": {"gte": count}}}]
                    }
                }
                for doc_id, count in docs
            ],
            "minimum_should_match": 1,
        }
    }


def _ingest_pipeline(
    docs: list[Document], settings: Settings, store: Store, summary: IngestSummary, progress: Progress
) -> None:
    _check_index(settings, store, None)
    if store.get_pipeline(settings.pipeline) is None:
        raise NotSetUpError(
            f"ingest pipeline {settings.pipeline!r} does not exist at ES_URL={settings.es_url}: "
            "run `python -m rag setup`"
        )
    bulk = _Bulk(store, settings.index, summary, pipeline=settings.pipeline)
    for start in range(0, len(docs), settings.bulk_size):
        batch = docs[start : start + settings.bulk_size]
        stored = store.sources(settings.index, [d.doc_id for d in batch], ["content_hash"])
        todo: dict[str, dict[str, Any]] = {}
        chunk_counts: dict[str, int] = {}
        for doc in batch:
            content = normalize(doc.content)
            digest = _hash(settings.pipeline, settings.inference_id, content)
            chunk_counts[doc.doc_id] = len(paragraphs(content))
            if not chunk_counts[doc.doc_id]:
                # The pipeline would send an empty text to the model, which refuses it.
                summary.empty.append(doc.doc_id)
                continue
            previous = stored.get(doc.doc_id)
            if previous is not None and previous.get("content_hash") == digest:
                summary.docs_skipped += 1
                summary.chunks_skipped += chunk_counts[doc.doc_id]
                continue
            todo[doc.doc_id] = {
                "doc_id": doc.doc_id,
                "content": content,
                "metadata": doc.metadata,
                "content_hash": digest,
            }
        for doc_id in bulk.send(todo) if todo else set():
            summary.chunks += chunk_counts[doc_id]
        summary.docs += len(batch)
        progress.advance(len(batch))


def ingest(
    settings: Settings,
    store: Store,
    embedder: Embedder,
    docs: Sequence[Document],
    via: Via = "client",
    stream: TextIO | None = None,
) -> IngestSummary:
    """Ingest ``docs`` (see :func:`load_documents`); returns the summary, failures included.

    Raises NotSetUpError when ``setup`` has not run, and rag errors for unreachable services;
    progress goes to ``stream`` (stderr by default).
    """
    started = time.monotonic()
    docs = list(docs)
    summary = IngestSummary(via=via)
    progress = Progress(f"ingest ({via})", len(docs), stream)
    try:
        if via == "client":
            _ingest_client(docs, settings, store, embedder, summary, progress)
        else:
            _ingest_pipeline(docs, settings, store, summary, progress)
        store.refresh(settings.index)
    finally:
        progress.close()
        summary.seconds = time.monotonic() - started
    return summary
