"""`ingest`: both paths, idempotent and resumable re-runs, and what happens under faults."""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from rag import ingest, provision, resources
from rag.embedder import Embedder
from rag.errors import EmbeddingServerError, InputError, NotSetUpError
from rag.settings import Settings
from rag.store import Store, connect
from tests.rag.conftest import Running
from tests.rag.embed_standin import EmbedStandin
from tests.rag.es_standin import EsStandin


@pytest.fixture
def ready(settings: Settings, in_tmp: Path) -> Iterator[tuple[Settings, Store, Embedder]]:
    """Set up, with a budget small enough (20 tokens) to cut the test corpus's Markdown and
    text files in two chunks each (8 chunks in all)."""
    settings = replace(settings, chunk_tokens=20, chunk_overlap=0)
    store, embedder = connect(settings), Embedder(settings)
    provision.setup(settings, store, embedder)
    yield settings, store, embedder
    store.close()
    embedder.close()


CHUNK_IDS = sorted(
    [
        "corpus/handbook/expenses.md#0",
        "corpus/handbook/expenses.md#1",
        "corpus/handbook/vacation.md#0",
        "corpus/handbook/vacation.md#1",
        "corpus/notes/servers.txt#0",
        "corpus/notes/servers.txt#1",
        "faq-1#0",
        "faq-2#0",
    ]
)


def _ids(es: Running[EsStandin], index: str = "rag-kb") -> list[str]:
    return sorted(es.standin.indices[index].docs)


def test_client_ingest_writes_deterministic_chunk_ids(
    ready: tuple[Settings, Store, Embedder], make_corpus: Callable[..., Path], es: Running[EsStandin]
) -> None:
    settings, store, embedder = ready
    stream = io.StringIO()
    summary = ingest.ingest(settings, store, embedder, ingest.load_documents([make_corpus()]), stream=stream)
    assert (summary.docs, summary.chunks, summary.failed) == (5, 8, {})
    assert _ids(es) == CHUNK_IDS
    docs = es.standin.indices["rag-kb"].docs
    # The heading travels with its paragraph; the next chunk carries the title as its prefix.
    assert docs["corpus/handbook/vacation.md#0"]["chunk"] == (
        "# Vacation policy\n\nEmployees receive twenty-five vacation days per calendar year."
    )
    assert docs["corpus/handbook/vacation.md#1"]["chunk"] == (
        "Vacation policy\n\nUnused vacation days expire on March 31 of the following year."
    )
    assert docs["corpus/handbook/vacation.md#1"]["metadata"] == {
        "source": "corpus/handbook/vacation.md",
        "folders": ["corpus", "corpus/handbook"],
        "title": "Vacation policy",
    }
    assert "chunk [" in stream.getvalue() and "5/5 documents" in stream.getvalue()
    assert "embed [" in stream.getvalue() and "8/8 chunks" in stream.getvalue()
    assert "8 chunks" in summary.render() and "0 failed" in summary.render()


def test_the_default_budget_merges_small_paragraphs(
    settings: Settings, make_corpus: Callable[..., Path], es: Running[EsStandin], in_tmp: Path
) -> None:
    store, embedder = connect(settings), Embedder(settings)
    provision.setup(settings, store, embedder)
    summary = ingest.ingest(settings, store, embedder, ingest.load_documents([make_corpus()]))
    assert summary.chunks == 5  # one chunk per document: three paragraphs each fit 256 tokens
    doc = es.standin.indices["rag-kb"].docs["corpus/handbook/expenses.md#0"]
    assert doc["chunk"] == (
        "# Travel expenses\n\nTrain tickets are reimbursed in second class.\n\n"
        "Hotel costs are reimbursed up to 150 euros per night with receipts."
    )
    store.close()
    embedder.close()


def test_progress_moves_per_embedded_batch_with_rate_and_eta(
    ready: tuple[Settings, Store, Embedder], make_corpus: Callable[..., Path]
) -> None:
    settings, store, embedder = ready
    stream = io.StringIO()
    ingest.ingest(
        replace(settings, embed_batch_size=2),
        store,
        embedder,
        ingest.load_documents([make_corpus()]),
        stream=stream,
    )
    lines = [line for line in stream.getvalue().splitlines() if line.startswith("embed [")]
    assert [re.search(r"\] (\d+)/8 chunks", line).group(1) for line in lines] == ["2", "4", "6", "8"]  # type: ignore[union-attr]
    assert all("chunks/s" in line for line in lines)
    assert all("ETA" in line for line in lines[:-1]) and "took" in lines[-1]


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
    assert (summary.chunks, summary.chunks_skipped, summary.stale_deleted) == (1, 6, 1)
    assert embed.standin.embedded_batches()[embedded_before:] == [["Vacation is now unlimited."]]
    assert [i for i in _ids(es) if "vacation" in i] == ["corpus/handbook/vacation.md#0"]
    assert store.count(settings.index) == 7


def test_pipeline_ingest_lets_es_embed_and_skips_unchanged(
    ready: tuple[Settings, Store, Embedder],
    make_corpus: Callable[..., Path],
    es: Running[EsStandin],
    embed: Running[EmbedStandin],
) -> None:
    settings, store, embedder = ready
    docs = ingest.load_documents([make_corpus()])
    summary = ingest.ingest(settings, store, embedder, docs, via="pipeline")
    assert (summary.docs, summary.chunks, summary.failed) == (5, 8, {})
    stored = es.standin.indices["rag-kb"].docs["corpus/handbook/vacation.md"]
    # rag's chunker cut them (the same chunks as the client path); Elasticsearch embedded them.
    assert [c["chunk"] for c in stored["chunks"]] == [
        "# Vacation policy\n\nEmployees receive twenty-five vacation days per calendar year.",
        "Vacation policy\n\nUnused vacation days expire on March 31 of the following year.",
    ]
    assert "content" not in stored and all(len(c["dense_vector"]) == 64 for c in stored["chunks"])
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
    assert (summary.chunks, summary.retried, summary.failed) == (8, 8, {})
    assert _ids(es) == CHUNK_IDS and store.count(settings.index) == 8


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
    assert sorted(first.failed) == sorted(bad) and first.chunks == 6
    assert "failed: faq-2#0: 400 status_exception injected item fault 400" in first.render()
    es.standin.faults.fail_bulk_items(status=429, times=4, ids={"faq-2#0"})
    second = ingest.ingest(replace(settings, max_retries=2), store, embedder, docs)
    assert list(second.failed) == ["faq-2#0"] and second.chunks == 1 and second.chunks_skipped == 6
    third = ingest.ingest(settings, store, embedder, docs)
    assert (third.failed, third.chunks, third.chunks_skipped) == ({}, 1, 7)
    assert store.count(settings.index) == 8


def test_pipeline_failures_from_the_embedding_server_are_item_errors(
    ready: tuple[Settings, Store, Embedder],
    make_corpus: Callable[..., Path],
    embed: Running[EmbedStandin],
) -> None:
    settings, store, embedder = ready
    embed.standin.fail_next(500, times=1, path="/embed")
    summary = ingest.ingest(settings, store, embedder, ingest.load_documents([make_corpus()]), via="pipeline")
    assert list(summary.failed) == ["faq-1"] and (summary.docs, summary.chunks) == (5, 7)
    assert "inference entity id [rag-embedder] status [500]" in summary.failed["faq-1"]


def test_es_timeouts_are_retried(
    ready: tuple[Settings, Store, Embedder], make_corpus: Callable[..., Path], es: Running[EsStandin]
) -> None:
    settings, store, embedder = ready
    quick = replace(settings, es_timeout=2.0)
    # Held until the test lets it go, so it times out whatever the machine's speed; a client
    # that waited for it instead fails the first assertion after the safety release.
    held = es.standin.faults.hold_requests(r"^/_bulk$")
    safety = threading.Timer(60, held.release)
    safety.start()
    try:
        summary = ingest.ingest(quick, store, embedder, ingest.load_documents([make_corpus()]))
    finally:
        safety.cancel()
    assert held.arrived.is_set() and not held.released.is_set(), "the held _bulk was waited for"
    assert (summary.chunks, summary.failed) == (8, {})
    held.release()  # the cluster carries out the request whose client gave up: no duplicates
    assert held.finished.wait(60)
    assert store.count(settings.index) == 8


def test_not_set_up_and_server_down_are_clear(
    settings: Settings, make_corpus: Callable[..., Path], in_tmp: Path
) -> None:
    store, embedder = connect(settings), Embedder(settings)
    docs = ingest.load_documents([make_corpus()])
    with pytest.raises(
        NotSetUpError, match=r"index 'rag-kb' does not exist.*run `python -m rag setup --index rag-kb`"
    ):
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


def test_both_paths_embed_the_same_chunks(
    ready: tuple[Settings, Store, Embedder],
    make_corpus: Callable[..., Path],
    es: Running[EsStandin],
) -> None:
    settings, store, embedder = ready
    docs = ingest.load_documents([make_corpus()])
    piped = replace(settings, index="rag-piped")
    provision.setup(piped, store, embedder)
    ingest.ingest(settings, store, embedder, docs)
    ingest.ingest(piped, store, embedder, docs, via="pipeline")
    client = {i: d["chunk"] for i, d in es.standin.indices["rag-kb"].docs.items()}
    pipeline = {
        ingest.chunk_id(doc_id, n): c["chunk"]
        for doc_id, d in es.standin.indices["rag-piped"].docs.items()
        for n, c in enumerate(d["chunks"])
    }
    assert client == pipeline


def test_a_pipeline_from_before_is_refused_with_the_setup_command(
    ready: tuple[Settings, Store, Embedder], make_corpus: Callable[..., Path]
) -> None:
    settings, store, embedder = ready
    old = resources.pipeline_body(settings.inference_id)
    old["processors"][0]["split"].pop("ignore_missing")
    store.put_pipeline(settings.pipeline, old)
    with pytest.raises(NotSetUpError, match=r"setup --index rag-kb --replace"):
        ingest.ingest(settings, store, embedder, ingest.load_documents([make_corpus()]), via="pipeline")


def test_prune_deletes_what_is_gone_and_delete_removes_sources(
    ready: tuple[Settings, Store, Embedder], make_corpus: Callable[..., Path], es: Running[EsStandin]
) -> None:
    settings, store, embedder = ready
    root = make_corpus()
    ingest.ingest(settings, store, embedder, ingest.load_documents([root]))
    (root / "handbook" / "vacation.md").unlink()
    (root / "faq.jsonl").write_text(
        '{"id": "faq-1", "content": "The office opens at eight in the morning."}\n'
    )
    docs = ingest.load_documents([root])
    dry = ingest.prune(settings, store, ["corpus"], docs, dry_run=True)
    assert (dry.entries, dry.sources, store.count(settings.index)) == (
        3,
        ["corpus/faq.jsonl", "corpus/handbook/vacation.md"],
        8,
    )
    assert dry.render().startswith("would delete 3 index entries")
    done = ingest.prune(settings, store, ["corpus"], docs)
    assert done.entries == 3 and store.count(settings.index) == 5
    assert "faq-2#0" not in _ids(es) and not [i for i in _ids(es) if "vacation" in i]
    assert ingest.prune(settings, store, ["corpus/notes"], []).entries == 2  # scoped to that folder
    gone = ingest.delete_sources(settings, store, ["corpus/handbook/expenses.md"])
    assert (gone.entries, gone.sources) == (2, ["corpus/handbook/expenses.md"])
    assert _ids(es) == ["faq-1#0"]
    with pytest.raises(InputError, match="name the files or folders"):
        ingest.delete_sources(settings, store, ["."])


def test_pipeline_documents_are_pruned_too(
    ready: tuple[Settings, Store, Embedder], make_corpus: Callable[..., Path], es: Running[EsStandin]
) -> None:
    settings, store, embedder = ready
    root = make_corpus()
    ingest.ingest(settings, store, embedder, ingest.load_documents([root]), via="pipeline")
    (root / "notes" / "servers.txt").unlink()
    assert ingest.prune(settings, store, [str(root)], ingest.load_documents([root])).entries == 1
    assert "corpus/notes/servers.txt" not in _ids(es)
