"""The seed workflow end to end, against the ES stand-in and, when ES_URL is set, a real cluster.

setup -> ingest through both paths -> the same chunks and vectors either way -> search and
ask find the document that holds the answer. The embedding model is the fake one (hashed
bag of words); a real cluster must be able to reach it: it listens on all interfaces and
``RAG_TEST_EMBED_HOST_FOR_ES`` (default 127.0.0.1) names this machine as the cluster sees it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from elasticsearch import Elasticsearch

from rag import ingest, provision, resources
from rag.answer import Assistant
from rag.chat import OpenAIChat
from rag.embedder import Embedder
from rag.retrieval import Retriever
from rag.settings import Settings
from rag.store import Store, connect
from tests.rag.conftest import Running
from tests.rag.embed_standin import EmbedStandin, hashed_vector
from tests.rag.es_standin import EsStandin


@dataclass
class Cluster:
    kind: str
    url: str
    api_key: str | None
    embed_host: str
    indices: list[str]


@pytest.fixture(params=["standin", pytest.param("real", marks=pytest.mark.es_real)])
def cluster(request: pytest.FixtureRequest, make_es: Callable[..., Running[EsStandin]]) -> Iterator[Cluster]:
    if request.param == "standin":
        yield Cluster("standin", make_es().url, None, "127.0.0.1", [])
        return
    url = os.environ.get("ES_URL")
    if not url:
        pytest.skip("ES_URL not set")
    found = Cluster(
        "real",
        url,
        os.environ.get("ES_API_KEY") or None,
        os.environ.get("RAG_TEST_EMBED_HOST_FOR_ES", "127.0.0.1"),
        [],
    )
    yield found
    client = Elasticsearch(url, api_key=found.api_key) if found.api_key else Elasticsearch(url)
    for index in found.indices:
        client.options(ignore_status=404).indices.delete(index=index)
    client.close()


@dataclass
class World:
    settings: Settings
    store: Store
    embedder: Embedder
    embed: Running[EmbedStandin]


@pytest.fixture
def world(
    cluster: Cluster,
    make_embed: Callable[..., Running[EmbedStandin]],
    make_settings: Callable[..., Settings],
    chat: Running[object],
) -> Iterator[World]:
    embed = make_embed(host="0.0.0.0" if cluster.kind == "real" else "127.0.0.1")
    suffix = uuid.uuid4().hex[:8] if cluster.kind == "real" else "t"
    settings = make_settings(
        cluster.url,
        embed.url,
        chat.url,
        es_api_key=cluster.api_key,
        index=f"rag-test-{suffix}",
        pipeline=f"rag-embed-{suffix}",
        inference_id=f"rag-embedder-{suffix}",
        embed_url_for_es=f"http://{cluster.embed_host}:{embed.server.port}",
    )
    cluster.indices += [settings.index, f"{settings.index}-pipeline", f"{settings.index}-semantic"]
    store = connect(settings)
    embedder = Embedder(settings)
    yield World(settings, store, embedder, embed)
    if cluster.kind == "real":
        # A semantic_text field holds on to its endpoint: the index goes first.
        store.client.options(ignore_status=404).indices.delete(index=f"{settings.index}-semantic")
        store.client.options(ignore_status=404).ingest.delete_pipeline(id=settings.pipeline)
        store.client.options(ignore_status=404).inference.delete(
            inference_id=settings.inference_id, force=True
        )
    embedder.close()
    store.close()


def _chunks(store: Store, index: str) -> dict[tuple[str, int], tuple[str, list[float]]]:
    """(doc id, chunk index) -> (text, vector) of every chunk in ``index``, whichever its shape."""
    body = store.client.search(index=index, query={"match_all": {}}, size=1000).body
    out: dict[tuple[str, int], tuple[str, list[float]]] = {}
    for hit in body["hits"]["hits"]:
        source = hit["_source"]
        if "chunks" in source:
            for i, chunk in enumerate(source["chunks"]):
                out[(source["doc_id"], i)] = (chunk["chunk"], chunk.get("dense_vector", []))
        else:
            out[(source["doc_id"], source["chunk_index"])] = (source["chunk"], source.get("dense_vector", []))
    return out


def test_setup_ingest_both_paths_search_and_ask(
    world: World, make_corpus: Callable[..., Path], in_tmp: Path
) -> None:
    settings, store, embedder = world.settings, world.store, world.embedder
    first = provision.setup(settings, store, embedder)
    assert [s.outcome for s in first.steps[1:]] == ["created", "created", "created"]
    again = provision.setup(settings, store, embedder)
    assert [s.outcome for s in again.steps[1:]] == ["exists", "exists", "exists"] and again.complete

    piped = replace(settings, index=f"{settings.index}-pipeline")
    assert provision.setup(piped, store, embedder).steps[1].outcome == "created"
    docs = ingest.load_documents([make_corpus()])
    by_client = ingest.ingest(settings, store, embedder, docs, via="client")
    by_pipeline = ingest.ingest(piped, store, embedder, docs, via="pipeline")
    # One chunk per document: each one's paragraphs fit the default budget together.
    assert (by_client.docs, by_client.chunks, by_client.failed) == (5, 5, {})
    assert (by_pipeline.docs, by_pipeline.chunks, by_pipeline.failed) == (5, 5, {})

    client_chunks = _chunks(store, settings.index)
    pipeline_chunks = _chunks(store, piped.index)
    assert sorted(client_chunks) == sorted(pipeline_chunks)
    for key, (text, vector) in client_chunks.items():
        assert pipeline_chunks[key][0] == text
        expected = hashed_vector(text, world.embed.standin.dims)
        for got in (vector, pipeline_chunks[key][1]):
            if got:  # a cluster may leave vectors out of _source (9.2+ exclude_source_vectors)
                assert max(abs(a - b) for a, b in zip(got, expected, strict=True)) < 1e-5

    question = "How many vacation days do employees receive per year?"
    for where in (settings, piped):
        top = Retriever(where, store, embedder).search(question).passages
        assert top[0].doc_id == "corpus/handbook/vacation.md"
        assert "twenty-five vacation days" in " ".join(p.text for p in top[:2])

    chat = OpenAIChat(settings)
    answer = Assistant(settings, Retriever(settings, store, embedder), chat, embedder).ask(question)
    chat.close()
    assert "twenty-five" in answer.text
    assert [c.passage.source for c in answer.citations] == ["corpus/handbook/vacation.md"]


def test_rerun_is_idempotent_and_filters_work(
    world: World, make_corpus: Callable[..., Path], in_tmp: Path
) -> None:
    settings, store, embedder = world.settings, world.store, world.embedder
    provision.setup(settings, store, embedder)
    docs = ingest.load_documents([make_corpus()])
    ingest.ingest(settings, store, embedder, docs)
    second = ingest.ingest(settings, store, embedder, docs)
    assert (second.chunks, second.chunks_skipped, second.docs_skipped) == (0, 5, 5)
    assert store.count(settings.index) == 5

    german = Retriever(settings, store, embedder).search("office hours", filters={"lang": ["de"]}).passages
    assert [p.doc_id for p in german] == ["faq-2"]
    either = (
        Retriever(settings, store, embedder).search("office", k=10, filters={"lang": ["de", "en"]}).passages
    )
    assert sorted(p.doc_id for p in either) == ["faq-1", "faq-2"]


def test_semantic_text_path(world: World, make_corpus: Callable[..., Path], in_tmp: Path) -> None:
    """setup --ingest-path semantic_text, ingest, search and ask: Elasticsearch embeds the chunks."""
    settings = replace(world.settings, index=f"{world.settings.index}-semantic", ingest_path="semantic_text")
    store, embedder = world.store, world.embedder
    if not resources.supports_semantic_text(store.info.version):
        pytest.skip(f"the cluster is {store.info.version}; semantic_text needs 8.18+")
    report = provision.setup(settings, store, embedder)
    assert report.complete and [s.outcome for s in report.steps[1:]] == ["created", "created"]
    assert provision.setup(settings, store, embedder).complete
    docs = ingest.load_documents([make_corpus()])
    summary = ingest.ingest(settings, store, embedder, docs, via="semantic_text")
    assert (summary.docs, summary.failed) == (5, {}) and summary.chunks >= 5
    again = ingest.ingest(settings, store, embedder, docs, via="semantic_text")
    assert again.docs_skipped == 5

    question = "How many vacation days do employees receive per year?"
    top = Retriever(settings, store, embedder).search(question).passages
    assert top[0].doc_id == "corpus/handbook/vacation.md" and "twenty-five" in top[0].text
    chat = OpenAIChat(settings)
    answer = Assistant(settings, Retriever(settings, store, embedder), chat, embedder).ask(question)
    chat.close()
    assert [c.passage.source for c in answer.citations] == ["corpus/handbook/vacation.md"]
