"""`ingest`: both paths, idempotent and resumable re-runs, and what happens under faults."""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from rag import ingest, provision
from rag.embedder import Embedder
from rag.errors import EmbeddingServerError, NotSetUpError
from rag.settings import Settings
from rag.store import Store, connect
from tests.rag.conftest import Running
from tests.rag.embed_standin import EmbedStandin
from tests.rag.es_standin import EsStandin


@pytest.fixture
def ready(settings: Settings, in_tmp: Path) -> Iterator[tuple[Settings, Store, Embedder]]:
    store, embedder = connect(settings), Embedder(settings)
    provision.setup(settings, store, embedder)
    yield settings, store, embedder
    store.close()
    embedder.close()


def _ids(es: Running[EsStandin], index: str = "rag-kb") -> list[str]:
    return sorted(es.standin.indices[index].docs)


def test_client_ingest_writes_deterministic_chunk_ids(
    ready: tuple[Settings, Store, Embedder], make_corpus: Callable[..., Path], es: Running[EsStandin]
) -> None:
    settings, store, embedder = ready
    stream = io.StringIO()
    summary = ingest.ingest(settings, store, embedder, ingest.load_documents([make_corpus()]), stream=stream)
    assert (summary.docs, summary.chunks, summary.failed) == (5, 10, {})
    assert _ids(es) == sorted(
        [
            "corpus/handbook/expenses.md#0",
            "corpus/handbook/expenses.md#1",
            "corpus/handbook/expenses.md#2",
            "corpus/handbook/vacation.md#0",
            "corpus/handbook/vacation.md#1",
            "corpus/handbook/vacation.md#2",
            "corpus/notes/servers.txt#0",
            "corpus/notes/servers.txt#1",
            "faq-1#0",
            "faq-2#0",
        ]
    )
    doc = es.standin.indices["rag-kb"].docs["corpus/handbook/vacation.md#1"]
    assert doc["chunk"] == "Employees receive twenty-five vacation days per calendar year."
    assert doc["metadata"] == {"source": "corpus/handbook/vacation.md", "title": "Vacation policy"}
    assert "ingest (client) [" in stream.getvalue() and "5/5" in stream.getvalue()
    assert "10 chunks" in summary.render() and "0 failed" in summary.render()


def test_changed_and_shortened_documents_are_reindexed_without_leftovers(
    ready: tuple[Settings, Store, Embedder],
    make_corpus: Callable[..., Path],
    es: Running[EsStandin],
    embed: Running[EmbedStandin],
) -> None:
    settings, store, embedder = ready
    root = make_corpus()
    ingest.ingest(settings, store, embedder, ingest.load_documents([root]))
    (root / "handbook" / "vacation.md").write_text("Vacation is now unlimited.")
    embedded_before = len(embed.standin.embedded_batches())
    summary = ingest.ingest(settings, store, embedder, ingest.load_documents([root]))
    assert (summary.chunks, summary.chunks_skipped, summary.stale_deleted) == (1, 7, 2)
    assert embed.standin.embedded_batches()[embedded_before:] == [["Vacation is now unlimited."]]
    assert [i for i in _ids(es) if "vacation" in i] == ["corpus/handbook/vacation.md#0"]
    assert store.count(settings.index) == 8


def test_pipeline_ingest_lets_es_embed_and_skips_unchanged(
    ready: tuple[Settings, Store, Embedder],
    make_corpus: Callable[..., Path],
    es: Running[EsStandin],
    embed: Running[EmbedStandin],
) -> None:
    settings, store, embedder = ready
    docs = ingest.load_documents([make_corpus()])
    summary = ingest.ingest(settings, store, embedder, docs, via="pipeline")
    assert (summary.docs, summary.chunks, summary.failed) == (5, 10, {})
    stored = es.standin.indices["rag-kb"].docs["corpus/handbook/vacation.md"]
    assert [c["chunk"] for c in stored["chunks"]] == [
        "# Vacation policy",
        "Employees receive twenty-five vacation days per calendar year.",
        "Unused vacation days expire on March 31 of the following year.",
    ]
    bulk_calls = [c for c in es.standin.calls if c.path == "/_bulk"]
    assert all(c.params.get("pipeline") == "rag-embed" for c in bulk_calls)
    calls = len(es.standin.inference_calls)
    again = ingest.ingest(settings, store, embedder, docs, via="pipeline")
    assert (again.docs_skipped, again.chunks, len(es.standin.inference_calls)) == (5, 0, calls)


def test_refused_bulk_items_are_retried_and_counted_exactly(
    ready: tuple[Settings, Store, Embedder], make_corpus: Callable[..., Path], es: Running[EsStandin]
) -> None:
    settings, store, embedder = ready
    es.standin.faults.fail_bulk_items(status=429, times=2, count=4)
    es.standin.faults.fail_requests(r"^/_bulk$", status=503, times=1)
    summary = ingest.ingest(settings, store, embedder, ingest.load_documents([make_corpus()]))
    assert (summary.chunks, summary.retried, summary.failed) == (10, 8, {})
    assert len(_ids(es)) == 10 and store.count(settings.index) == 10


def test_items_that_keep_failing_are_reported_by_id_and_a_rerun_resumes(
    ready: tuple[Settings, Store, Embedder],
    make_corpus: Callable[..., Path],
    es: Running[EsStandin],
) -> None:
    settings, store, embedder = ready
    bad = {"faq-2#0", "corpus/notes/servers.txt#1"}
    es.standin.faults.fail_bulk_items(status=400, times=1, ids=bad)
    docs = ingest.load_documents([make_corpus()])
    first = ingest.ingest(settings, store, embedder, docs)
    assert sorted(first.failed) == sorted(bad) and first.chunks == 8
    assert "failed: faq-2#0: 400 status_exception injected item fault 400" in first.render()
    es.standin.faults.fail_bulk_items(status=429, times=4, ids={"faq-2#0"})
    second = ingest.ingest(replace(settings, max_retries=2), store, embedder, docs)
    assert list(second.failed) == ["faq-2#0"] and second.chunks == 1 and second.chunks_skipped == 8
    third = ingest.ingest(settings, store, embedder, docs)
    assert (third.failed, third.chunks, third.chunks_skipped) == ({}, 1, 9)
    assert store.count(settings.index) == 10


def test_pipeline_failures_from_the_embedding_server_are_item_errors(
    ready: tuple[Settings, Store, Embedder],
    make_corpus: Callable[..., Path],
    embed: Running[EmbedStandin],
) -> None:
    settings, store, embedder = ready
    embed.standin.fail_next(500, times=1)
    summary = ingest.ingest(settings, store, embedder, ingest.load_documents([make_corpus()]), via="pipeline")
    assert list(summary.failed) == ["faq-1"] and (summary.docs, summary.chunks) == (5, 9)
    assert "inference entity id [rag-embedder] status [500]" in summary.failed["faq-1"]


def test_es_timeouts_are_retried(
    ready: tuple[Settings, Store, Embedder], make_corpus: Callable[..., Path], es: Running[EsStandin]
) -> None:
    settings, store, embedder = ready
    quick = replace(settings, es_timeout=0.3)
    es.standin.faults.delay_requests(r"^/_bulk$", seconds=1.0, times=1)
    summary = ingest.ingest(quick, store, embedder, ingest.load_documents([make_corpus()]))
    assert (summary.chunks, summary.failed) == (10, {})


def test_not_set_up_and_server_down_are_clear(
    settings: Settings, make_corpus: Callable[..., Path], in_tmp: Path
) -> None:
    store, embedder = connect(settings), Embedder(settings)
    docs = ingest.load_documents([make_corpus()])
    with pytest.raises(NotSetUpError, match=r"index 'rag-kb' does not exist.*run `python -m rag setup`"):
        ingest.ingest(settings, store, embedder, docs)
    down = replace(settings, embed_url="http://127.0.0.1:9", max_retries=0)
    with pytest.raises(EmbeddingServerError, match=re.escape("EMBED_URL=http://127.0.0.1:9")):
        ingest.ingest(down, store, Embedder(down), docs)
    store.close()
    embedder.close()


def test_empty_documents_are_reported_not_dropped(
    ready: tuple[Settings, Store, Embedder], make_corpus: Callable[..., Path]
) -> None:
    settings, store, embedder = ready
    root = make_corpus({"empty.txt": " \n\n ", "full.txt": "Some text."}, jsonl=None)
    docs = ingest.load_documents([root])
    for via in ("client", "pipeline"):
        summary = ingest.ingest(settings, store, embedder, docs, via=via)  # type: ignore[arg-type]
        assert (summary.empty, summary.failed) == (["corpus/empty.txt"], {})
        assert summary.chunks + summary.chunks_skipped == 1
        assert "1 documents have no text and gave no chunks: corpus/empty.txt" in summary.render()
