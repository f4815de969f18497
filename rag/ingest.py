"""``python -m rag ingest``: put a corpus into the index, through rag or through the ES pipeline.

Both paths cut documents with the one chunker (:mod:`rag.chunking`), counting tokens with the
served model's tokenizer. ``via="client"`` (default): embed the chunks in batches through our
server and ``_bulk`` one document per chunk with ``_id`` = ``<doc id>#<chunk index>``.
``via="pipeline"``: ``_bulk`` one document per source document (``_id`` = doc id) carrying
its ``chunks`` with ``?pipeline=<pipeline>``, so that Elasticsearch embeds each chunk through
its ``_inference`` endpoint (the pipeline splits ``content`` on blank lines only for clients
that send no ``chunks``). ``via="semantic_text"``: the same documents with the chunks as the
values of the index's ``semantic_text`` field (which does no chunking of its own), embedded by
Elasticsearch at index time; ``chunks`` then holds their text for BM25.

A run first chunks every document and asks the index which chunks it already holds, then
embeds and indexes what is new, reporting progress per embedded batch (or per pipeline
``_bulk``) with rate and ETA.

Re-runs are idempotent and resume where a run stopped: every document stores a hash of its
text and of what shaped its vectors (chunker version, model, chunk budget and overlap,
pipeline); documents and chunks already stored with the same hash are skipped, changed ones
are re-indexed under the same ids, and chunks left over from a longer former version of a
document are deleted. :func:`prune` and :func:`delete_sources` remove the documents of
sources that are gone.

Nothing is silently dropped: bulk items refused with 429/502/503/504 are retried with
exponential backoff (``max_retries``), and so are the documents Elasticsearch could not embed
because the embedding service kept refusing (``pipeline`` and ``semantic_text``: ES retries a
refused inference call 3 times within 30 s, then fails the item with 400 for a 5xx, see
:func:`inference_refused`); any other item failure, or one still failing after the retries,
is reported by id in :class:`IngestSummary` ``failed``. Ids are fixed, so a re-driven
document replaces itself and is never indexed twice.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TextIO

from rag import corpus, resources
from rag.chunking import CHUNKER_VERSION, Chunk, Chunker, Source, normalize
from rag.corpus import Document
from rag.embedder import Embedder, ModelInfo
from rag.errors import InputError, NotSetUpError, SetupConflictError, es_reason
from rag.progress import Progress
from rag.settings import Settings
from rag.store import RETRY_STATUSES, Store
from rag.tokens import EstimateTokenizer, ServerTokenizer

Via = Literal["client", "pipeline", "semantic_text"]
# Documents chunked together: bounds memory and the size of one _mget.
DOC_BATCH = 64
# Terms in one `terms` query (Elasticsearch's index.max_terms_count default).
MAX_TERMS = 65_536
# ES's inference services name the service's answer in their errors: "... status [503]".
UPSTREAM_STATUS = re.compile(r"for request from inference entity id \[[^\]]*\] status \[(\d{3})\]")


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
    redriven: int = 0
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
        if self.redriven:
            lines.append(
                f"{self.redriven} of them were documents Elasticsearch could not embed "
                "(the embedding service refused them past ES's retries)"
            )
        if self.empty:
            lines.append(
                f"{len(self.empty)} documents have no text and gave no chunks: {', '.join(self.empty[:10])}"
            )
        if self.stale_deleted:
            lines.append(f"{self.stale_deleted} chunks of shortened documents were deleted")
        for item_id, reason in sorted(self.failed.items()):
            lines.append(f"failed: {item_id}: {reason}")
        return "\n".join(lines)


def inference_refused(error: Mapping[str, Any]) -> bool:
    """Whether a bulk item ``error`` is an inference call the service refused for now.

    ES answers such an item with the service's 429 kept, but with 400 for a 5xx
    (BaseResponseHandler.toRestStatus), wrapped in ``inference_exception`` for
    ``semantic_text``; the service's own status is only in the reasons.
    """
    node: Any = error
    while isinstance(node, Mapping):
        found = UPSTREAM_STATUS.search(str(node.get("reason", "")))
        if found and int(found.group(1)) in RETRY_STATUSES:
            return True
        node = node.get("caused_by")
    return False


def chunk_id(doc_id: str, index: int) -> str:
    return f"{doc_id}#{index}"


def setup_hint(settings: Settings) -> str:
    """The command that creates the resources of ``settings.index``."""
    return f"run `python -m rag setup --index {settings.index}`"


def _hash(*parts: object) -> str:
    return hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()


def load_documents(paths: Sequence[str | Path]) -> list[Document]:
    """Every document under ``paths`` (see :func:`rag.corpus.load`); errors are InputErrors."""
    return corpus.load(paths).docs


class _Bulk:
    """Sends index operations, retrying refused items; records what finally failed."""

    def __init__(
        self, store: Store, index: str, summary: IngestSummary, pipeline: str | None, embeds: bool = False
    ) -> None:
        self.store = store
        self.index = index
        self.summary = summary
        self.pipeline = pipeline
        self.embeds = embeds

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
            items = self.store.bulk(operations, pipeline=self.pipeline, embeds=self.embeds)
            retry: dict[str, dict[str, Any]] = {}
            for (item_id, source), item in zip(pending.items(), items, strict=True):
                status = int(item.get("status", 500))
                if 200 <= status < 300:
                    stored.add(item_id)
                    self.summary.failed.pop(item_id, None)
                    continue
                kind, reason = es_reason({"error": item.get("error", {})})
                self.summary.failed[item_id] = f"{status} {kind or ''} {reason}".replace("  ", " ")
                refused = inference_refused(item.get("error", {}))
                if (status in RETRY_STATUSES or refused) and attempt < self.store.settings.max_retries:
                    retry[item_id] = source
                    self.summary.redriven += refused
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
            f"index {settings.index!r} does not exist at ES_URL={settings.es_url}: {setup_hint(settings)}"
        )
    have = resources.index_dims(mappings)
    if dims is not None and have is not None and have != dims:
        raise SetupConflictError(
            f"index {settings.index!r} stores {have}-dim vectors but the model at "
            f"EMBED_URL={settings.embed_url} makes {dims}-dim ones: use another --index or re-create it"
        )


def make_chunker(settings: Settings, model: ModelInfo) -> tuple[Chunker, Callable[[], None]]:
    """The chunker of ``settings`` and what closes it: it counts with our server's tokenizer,
    or estimates for a provider without one (Bailian)."""
    if settings.embed_provider != "server":
        return Chunker(
            EstimateTokenizer(), settings.chunk_tokens, settings.chunk_overlap, model.max_input_length
        ), (lambda: None)
    tokenizer = ServerTokenizer(settings, model.max_input_length, model.max_client_batch_size)
    chunker = Chunker(tokenizer, settings.chunk_tokens, settings.chunk_overlap, model.max_input_length)
    return chunker, tokenizer.close


def _chunks(chunker: Chunker, batch: Sequence[Document]) -> list[list[Chunk]]:
    return chunker.split([Source(d.content, d.format, d.metadata.get("title")) for d in batch])


def _ingest_client(
    docs: list[Document],
    settings: Settings,
    store: Store,
    embedder: Embedder,
    summary: IngestSummary,
    stream: TextIO | None,
) -> None:
    model = embedder.info()
    _check_index(settings, store, model.dims)
    chunker, close_tokenizer = make_chunker(settings, model)
    todo: list[tuple[str, dict[str, Any]]] = []
    chunking = Progress("chunk", len(docs), stream, unit="documents")
    try:
        for start in range(0, len(docs), DOC_BATCH):
            batch = docs[start : start + DOC_BATCH]
            per_doc = _chunks(chunker, batch)
            todo.extend(_plan_client(batch, per_doc, settings, store, model, chunker, summary))
            chunking.advance(len(batch))
    finally:
        chunking.close()
        close_tokenizer()
    summary.docs += len(docs)
    bulk = _Bulk(store, settings.index, summary, pipeline=None)
    size = max(1, min(settings.embed_batch_size, model.max_client_batch_size))
    embedding = Progress("embed", len(todo), stream, unit="chunks")
    pending: dict[str, dict[str, Any]] = {}
    try:
        for lo in range(0, len(todo), size):
            part = todo[lo : lo + size]
            vectors = embedder.embed([source["chunk"] for _, source in part], bulk=True)
            for (cid, source), vector in zip(part, vectors, strict=True):
                source["dense_vector"] = vector
                pending[cid] = source
                if len(pending) == settings.bulk_size:
                    summary.chunks += len(bulk.send(pending))
                    pending = {}
            embedding.advance(len(part))
        if pending:
            summary.chunks += len(bulk.send(pending))
    finally:
        embedding.close()


def _plan_client(
    batch: Sequence[Document],
    per_doc: list[list[Chunk]],
    settings: Settings,
    store: Store,
    model: ModelInfo,
    chunker: Chunker,
    summary: IngestSummary,
) -> list[tuple[str, dict[str, Any]]]:
    """The chunks of ``batch`` the index does not hold yet; stale leftovers are deleted."""
    ids = [
        chunk_id(d.doc_id, i) for d, chunks in zip(batch, per_doc, strict=True) for i in range(len(chunks))
    ]
    stored = store.sources(settings.index, ids, ["content_hash"]) if ids else {}
    todo: list[tuple[str, dict[str, Any]]] = []
    changed_docs: list[tuple[str, int]] = []
    for doc, chunks in zip(batch, per_doc, strict=True):
        digest = _hash(
            CHUNKER_VERSION,
            model.model_id,
            model.dims,
            chunker.budget,
            chunker.overlap,
            doc.format,
            doc.metadata.get("title"),
            normalize(doc.content),
        )
        unchanged = 0
        replaced = False
        for i, chunk in enumerate(chunks):
            cid = chunk_id(doc.doc_id, i)
            previous = stored.get(cid)
            if previous is not None and previous.get("content_hash") == digest:
                unchanged += 1
                continue
            replaced = replaced or previous is not None
            source = {
                "doc_id": doc.doc_id,
                "chunk_index": i,
                "chunk": chunk.text,
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
    if changed_docs:
        summary.stale_deleted += store.delete_where(settings.index, _stale_query(changed_docs))
    return todo


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


def _check_pipeline(settings: Settings, store: Store) -> None:
    existing = store.get_pipeline(settings.pipeline)
    if existing is None:
        raise NotSetUpError(
            f"ingest pipeline {settings.pipeline!r} does not exist at ES_URL={settings.es_url}: "
            f"{setup_hint(settings)}"
        )
    if resources.pipeline_differences(existing, resources.pipeline_body(settings.inference_id)):
        raise NotSetUpError(
            f"ingest pipeline {settings.pipeline!r} at ES_URL={settings.es_url} is not the one this "
            f"version of rag sends chunks to: run `python -m rag setup --index {settings.index} --replace`"
        )


def _check_semantic(settings: Settings, store: Store) -> None:
    mappings = store.get_index_mappings(settings.index) or {}
    if not resources.has_semantic_field(mappings):
        raise NotSetUpError(
            f"index {settings.index!r} at ES_URL={settings.es_url} has no semantic_text field: run "
            f"`python -m rag setup --index {settings.index} --ingest-path semantic_text` (on a new index)"
        )


def _ingest_documents(
    docs: list[Document],
    settings: Settings,
    store: Store,
    embedder: Embedder,
    summary: IngestSummary,
    stream: TextIO | None,
    via: Via,
) -> None:
    """``pipeline`` and ``semantic_text``: one document per source document, Elasticsearch embeds."""
    _check_index(settings, store, None)
    if via == "pipeline":
        _check_pipeline(settings, store)
    else:
        _check_semantic(settings, store)
    model = embedder.info()
    chunker, close_tokenizer = make_chunker(settings, model)
    todo: list[tuple[str, dict[str, Any]]] = []
    counts: dict[str, int] = {}
    chunking = Progress("chunk", len(docs), stream, unit="documents")
    try:
        for start in range(0, len(docs), DOC_BATCH):
            batch = docs[start : start + DOC_BATCH]
            per_doc = _chunks(chunker, batch)
            stored = store.sources(settings.index, [d.doc_id for d in batch], ["content_hash"])
            for doc, chunks in zip(batch, per_doc, strict=True):
                digest = _hash(
                    CHUNKER_VERSION,
                    via,
                    settings.pipeline if via == "pipeline" else "",
                    settings.inference_id,
                    model.model_id,
                    chunker.budget,
                    chunker.overlap,
                    doc.format,
                    doc.metadata.get("title"),
                    normalize(doc.content),
                )
                if not chunks:
                    # Elasticsearch would send an empty text to the model, which refuses it.
                    summary.empty.append(doc.doc_id)
                    continue
                previous = stored.get(doc.doc_id)
                if previous is not None and previous.get("content_hash") == digest:
                    summary.docs_skipped += 1
                    summary.chunks_skipped += len(chunks)
                    continue
                texts = [c.text for c in chunks]
                source: dict[str, Any] = {
                    "doc_id": doc.doc_id,
                    "metadata": doc.metadata,
                    "content_hash": digest,
                }
                if via == "pipeline":
                    source[resources.NESTED_FIELD] = texts
                else:
                    source[resources.SEMANTIC_FIELD] = texts
                    source[resources.NESTED_FIELD] = [{"chunk": t} for t in texts]
                todo.append((doc.doc_id, source))
                counts[doc.doc_id] = len(texts)
            chunking.advance(len(batch))
    finally:
        chunking.close()
        close_tokenizer()
    summary.docs += len(docs)
    pipeline = settings.pipeline if via == "pipeline" else None
    bulk = _Bulk(store, settings.index, summary, pipeline=pipeline, embeds=via == "semantic_text")
    embedding = Progress(f"embed ({via})", sum(counts.values()), stream, unit="chunks")
    try:
        part: dict[str, dict[str, Any]] = {}
        size = 0
        for i, (doc_id, source) in enumerate(todo):
            part[doc_id] = source
            size += counts[doc_id]
            if len(part) >= settings.bulk_size or size >= settings.bulk_size or i == len(todo) - 1:
                summary.chunks += sum(counts[d] for d in bulk.send(part))
                embedding.advance(size)
                part, size = {}, 0
    finally:
        embedding.close()


def ingest(
    settings: Settings,
    store: Store,
    embedder: Embedder,
    docs: Sequence[Document],
    via: Via = "client",
    stream: TextIO | None = None,
) -> IngestSummary:
    """Ingest ``docs`` (see :func:`rag.corpus.load`); returns the summary, failures included.

    Raises NotSetUpError when ``setup`` has not run, and rag errors for unreachable services;
    progress goes to ``stream`` (stderr by default).
    """
    started = time.monotonic()
    docs = list(docs)
    summary = IngestSummary(via=via)
    try:
        if via == "client":
            _ingest_client(docs, settings, store, embedder, summary, stream)
        else:
            _ingest_documents(docs, settings, store, embedder, summary, stream, via)
        store.refresh(settings.index)
    finally:
        summary.seconds = time.monotonic() - started
    return summary


# -- removed sources ---------------------------------------------------------------------


@dataclass
class Removal:
    """What :func:`prune` or :func:`delete_sources` found (and deleted unless a dry run)."""

    entries: int
    sources: list[str]
    dry_run: bool

    def render(self) -> str:
        verb = "would delete" if self.dry_run else "deleted"
        shown = "".join(f"\n  {s}" for s in self.sources[:50])
        more = f"\n  ... and {len(self.sources) - 50} more" if len(self.sources) > 50 else ""
        what = "index entries (chunks, or pipeline documents)"
        return f"{verb} {self.entries} {what} of {len(self.sources)} sources{shown}{more}"


def _scope(sources: Sequence[str]) -> dict[str, Any] | None:
    """Documents whose source is one of ``sources`` or lies in a folder of them; None: all."""
    if any(s in ("", ".") for s in sources):
        return None
    return {
        "bool": {
            "should": [
                {"terms": {"metadata.source": list(sources)}},
                {"terms": {"metadata.folders": list(sources)}},
            ],
            "minimum_should_match": 1,
        }
    }


def _remove(settings: Settings, store: Store, query: dict[str, Any], dry_run: bool) -> Removal:
    _check_index(settings, store, None)
    entries = store.count(settings.index, query)
    found = store.search(
        settings.index, {"query": query, "size": min(max(entries, 1), 1000), "_source": ["metadata.source"]}
    )
    sources = sorted(
        {str(h.get("_source", {}).get("metadata", {}).get("source", h["_id"])) for h in found["hits"]["hits"]}
    )
    if entries and not dry_run:
        store.delete_where(settings.index, query)
        store.refresh(settings.index)
    return Removal(entries, sources, dry_run)


def _source_arg(raw: str) -> str:
    """A path as ingest recorded it: relative to the working directory when under it."""
    return "" if raw in ("", ".") else corpus.source_of(Path(raw)).rstrip("/")


def delete_sources(settings: Settings, store: Store, paths: Sequence[str], dry_run: bool = False) -> Removal:
    """Delete every chunk of the sources ``paths`` (files, or folders: all they held)."""
    sources = [_source_arg(p) for p in paths]
    if not sources or any(not s for s in sources):
        raise InputError("name the files or folders to delete (delete --source PATH); `.` is not allowed")
    query = _scope(sources)
    assert query is not None
    return _remove(settings, store, query, dry_run)


def prune(
    settings: Settings, store: Store, paths: Sequence[str], docs: Sequence[Document], dry_run: bool = False
) -> Removal:
    """Delete the documents ingested from ``paths`` that ``docs`` (their current content) lacks:
    removed files, and removed records of a JSONL file."""
    present = sorted({d.doc_id for d in docs})
    if len(present) > MAX_TERMS:
        raise InputError(
            f"prune compares at most {MAX_TERMS} documents at once: prune sub-folders one by one"
        )
    scope = _scope([_source_arg(p) for p in paths])
    query: dict[str, Any] = {"bool": {"must_not": [{"terms": {"doc_id": present}}] if present else []}}
    if scope is not None:
        query["bool"]["filter"] = [scope]
    return _remove(settings, store, query, dry_run)
