"""`search`: kNN over both chunk shapes, filters, and hybrid fusion on the cluster or here."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from rag import ingest, provision
from rag.embedder import Embedder
from rag.errors import NotSetUpError, SearchBackendError
from rag.retrieval import Retriever
from rag.settings import Settings
from rag.store import connect
from tests.rag.conftest import Running
from tests.rag.embed_standin import EmbedStandin
from tests.rag.es_standin import EsStandin

Make = Callable[..., Retriever]


@pytest.fixture
def make_retriever(
    make_es: Callable[..., Running[EsStandin]],
    embed: Running[EmbedStandin],
    make_settings: Callable[..., Settings],
    make_corpus: Callable[..., Path],
    in_tmp: Path,
) -> Iterator[Make]:
    """A retriever over the test corpus, ingested ``via`` a path into a stand-in of ``version``."""
    closers: list[Callable[[], None]] = []

    def make(
        via: str = "client", version: str = "9.1.0", rrf_licensed: bool = True, **overrides: object
    ) -> Retriever:
        cluster = make_es(version=version, rrf_licensed=rrf_licensed)
        if via == "semantic_text":
            overrides.setdefault("ingest_path", "semantic_text")
        # A 20-token budget cuts each Markdown and text file of the corpus in two chunks.
        overrides.setdefault("chunk_tokens", 20)
        overrides.setdefault("chunk_overlap", 0)
        settings = make_settings(cluster.url, embed.url, **overrides)
        store, embedder = connect(settings), Embedder(settings)
        closers.extend([store.close, embedder.close])
        provision.setup(settings, store, embedder)
        ingest.ingest(settings, store, embedder, ingest.load_documents([make_corpus(name="corpus")]), via=via)  # type: ignore[arg-type]
        return Retriever(settings, store, embedder)

    yield make
    for close in closers:
        close()


def test_knn_ranks_by_cosine_and_honours_k(make_retriever: Make) -> None:
    retriever = make_retriever()
    result = retriever.search("hotel costs per night", k=3)
    assert result.fusion == "none" and len(result.passages) == 3
    top = result.passages[0]
    assert (top.doc_id, top.chunk_index, top.source) == (
        "corpus/handbook/expenses.md",
        1,
        "corpus/handbook/expenses.md",
    )
    assert [p.score for p in result.passages] == sorted((p.score for p in result.passages), reverse=True)
    assert 0.5 < top.score <= 1.0


def test_pipeline_chunks_are_found_with_their_chunk_index(make_retriever: Make) -> None:
    question = "train tickets and hotel costs are reimbursed"
    client_side = make_retriever().search(question, k=4).passages
    pipeline_side = make_retriever(via="pipeline").search(question, k=4).passages
    assert {(p.doc_id, p.chunk_index, p.text) for p in pipeline_side[:2]} == {
        (
            "corpus/handbook/expenses.md",
            1,
            "Travel expenses\n\nHotel costs are reimbursed up to 150 euros per night with receipts.",
        ),
        (
            "corpus/handbook/expenses.md",
            0,
            "# Travel expenses\n\nTrain tickets are reimbursed in second class.",
        ),
    }
    assert [p.key for p in pipeline_side[:2]] == [p.key for p in client_side[:2]]
    assert [p.score for p in pipeline_side] == pytest.approx([p.score for p in client_side])
    # The inference processor recorded which endpoint embedded each pipeline chunk.
    assert {p.embedded_by for p in pipeline_side} == {"rag-embedder"}
    assert {p.embedded_by for p in client_side} == {None}


def test_semantic_text_chunks_are_found_with_their_paragraph_index(make_retriever: Make) -> None:
    question = "train tickets and hotel costs are reimbursed"
    client_side = make_retriever().search(question, k=4).passages
    retriever = make_retriever(via="semantic_text")
    semantic = retriever.search(question, k=4).passages
    # One passage per document (its best chunk), scored like the chunk's own kNN score.
    top = semantic[0]
    assert (top.doc_id, top.chunk_index) == client_side[0].key
    assert top.text == client_side[0].text and top.score == pytest.approx(client_side[0].score)
    assert len({p.doc_id for p in semantic}) == len(semantic) == 4
    filtered = retriever.search("office", k=10, filters={"lang": ["de"]}).passages
    assert [p.doc_id for p in filtered] == ["faq-2"]
    hybrid = retriever.search("reimbursed receipts", k=3, hybrid=True)
    assert hybrid.fusion == "client" and hybrid.passages[0].doc_id == "corpus/handbook/expenses.md"


def test_hybrid_fusion_runs_on_the_cluster_and_agrees_with_client_fusion(make_retriever: Make) -> None:
    server = make_retriever(hybrid=True)
    on_cluster = server.search("reimbursed receipts", k=4)
    client = make_retriever(hybrid=True, rrf="client")
    here = client.search("reimbursed receipts", k=4)
    assert (on_cluster.fusion, here.fusion) == ("server", "client")
    # Below the two chunks that hold the words, kNN scores tie and tie order is arbitrary.
    assert [p.key for p in on_cluster.passages[:2]] == [p.key for p in here.passages[:2]]
    assert [p.score for p in on_cluster.passages[:2]] == pytest.approx([p.score for p in here.passages[:2]])
    assert on_cluster.passages[0].score == pytest.approx(2 / 61)
    assert on_cluster.passages[0].doc_id == "corpus/handbook/expenses.md"


def test_hybrid_falls_back_to_client_fusion(make_retriever: Make, caplog: pytest.LogCaptureFixture) -> None:
    assert make_retriever(hybrid=True, via="pipeline").search("vacation").fusion == "client"
    unlicensed = make_retriever(hybrid=True, rrf_licensed=False)
    with caplog.at_level(logging.WARNING, logger="rag"):
        assert unlicensed.search("vacation").fusion == "client"
    assert "refused retriever.rrf" in caplog.text and "non-compliant" in caplog.text
    assert unlicensed.search("vacation again").fusion == "client"
    forced = make_retriever(hybrid=True, rrf_licensed=False, rrf="server")
    with pytest.raises(SearchBackendError, match="403 security_exception"):
        forced.search("vacation")


def test_filters_restrict_to_metadata(make_retriever: Make) -> None:
    retriever = make_retriever()
    only = retriever.search("vacation days", k=10, filters={"source": ["corpus/notes/servers.txt"]}).passages
    assert {p.source for p in only} == {"corpus/notes/servers.txt"}
    hybrid = retriever.search("office", k=10, filters={"lang": ["de"]}, hybrid=True).passages
    assert [p.doc_id for p in hybrid] == ["faq-2"]


def test_missing_index_says_run_setup(
    es: Running[EsStandin], embed: Running[EmbedStandin], make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(es.url, embed.url)
    store, embedder = connect(settings), Embedder(settings)
    with pytest.raises(NotSetUpError, match="run `python -m rag setup --index nothing-here`"):
        Retriever(replace(settings, index="nothing-here"), store, embedder).search("anything")
    store.close()
    embedder.close()


def test_a_key_that_cannot_read_mappings_still_searches(
    settings: Settings,
    es: Running[EsStandin],
    make_corpus: Callable[..., Path],
    in_tmp: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    store, embedder = connect(settings), Embedder(settings)
    provision.setup(settings, store, embedder)
    ingest.ingest(settings, store, embedder, ingest.load_documents([make_corpus()]))
    # A search-only API key lacks view_index_metadata: reading the mapping is refused.
    es.standin.faults.fail_requests(r"^/rag-kb$", status=403, times=5, method="HEAD")
    with caplog.at_level(logging.WARNING, logger="rag"):
        found = Retriever(settings, store, embedder).search("hotel costs per night", k=2).passages
    assert found and "set RAG_INGEST_PATH" in caplog.text
    store.close()
    embedder.close()
