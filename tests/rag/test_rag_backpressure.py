"""Back-pressure that loses no document: ingest through Elasticsearch at 5x the embedding
server's capacity indexes every document exactly once.

The embedding double serves ``rate`` requests per logical second and sees them arrive five
times faster; the ES stand-in retries refused inference calls as ES does (3 attempts, random
delays under a doubling bound of 1 s to 5 s, 30 s in all: ES's defaults, in logical seconds),
then fails the bulk item as ES does. Nothing depends on the machine's speed: time moves only
when a request arrives or the stand-in waits, and the stand-in's delays are seeded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from rag import ingest, provision
from rag.embedder import Embedder
from rag.settings import Settings
from rag.store import Store, connect
from tests.rag.conftest import Running
from tests.rag.embed_standin import Capacity, EmbedStandin, LogicalClock
from tests.rag.es_standin import EsStandin, InferenceRetry

DOCS = 24


def _corpus(root: Path) -> Path:
    """DOCS documents of two or three paragraphs: 2 or 3 chunks each at a 20-token budget."""
    root.mkdir()
    for n in range(DOCS):
        paragraphs = [
            f"Document {n} paragraph {p} talks about topic {n * 7 + p} at some length."
            for p in range(2 + n % 2)
        ]
        (root / f"doc{n:02d}.md").write_text("\n\n".join(paragraphs), encoding="utf-8")
    return root


@pytest.fixture
def overloaded(
    make_es: Callable[..., Running[EsStandin]],
    make_embed: Callable[..., Running[EmbedStandin]],
    make_settings: Callable[..., Settings],
    in_tmp: Path,
) -> Iterator[tuple[Settings, Store, Embedder, Running[EsStandin], Running[EmbedStandin]]]:
    clock = LogicalClock()
    es = make_es(clock=clock, inference_retry=InferenceRetry())
    embed = make_embed(capacity=Capacity(clock, rate=0.5, overload=5.0))
    settings = make_settings(es.url, embed.url, chunk_tokens=20, chunk_overlap=0, max_retries=5)
    store, embedder = connect(settings), Embedder(settings)
    yield settings, store, embedder, es, embed
    store.close()
    embedder.close()


@pytest.mark.parametrize("refusals", [(429, 503), (503,)], ids=["429-and-503", "503"])
@pytest.mark.parametrize("via", ["pipeline", "semantic_text"])
def test_ingest_at_5x_capacity_indexes_every_document_once(
    overloaded: tuple[Settings, Store, Embedder, Running[EsStandin], Running[EmbedStandin]],
    in_tmp: Path,
    via: ingest.Via,
    refusals: tuple[int, ...],
) -> None:
    settings, store, embedder, es, embed = overloaded
    settings = replace(settings, ingest_path=via, index=f"rag-{via.replace('_', '-')}")
    capacity = embed.standin.capacity
    assert capacity is not None
    capacity.refusals = refusals
    if via == "semantic_text":
        # ES sends semantic_text's chunks 20 to a request: 20 times fewer requests per second.
        capacity.rate /= 20
    provision.setup(settings, store, embedder)
    docs = ingest.load_documents([_corpus(in_tmp / "corpus")])
    summary = ingest.ingest(settings, store, embedder, docs, via=via)
    # The server really was overloaded, and ES really gave up on some documents: their
    # refusals outlasted its retries (the service's 503 reaches rag as a 400 item).
    assert capacity.refused > capacity.served
    assert summary.failed == {}
    assert summary.redriven > 0, "no document was dropped by ES: the test proves nothing"
    stored = es.standin.indices[settings.index].docs
    assert sorted(stored) == sorted(d.doc_id for d in docs)
    assert len(stored) == DOCS
    chunks = sum(2 + n % 2 for n in range(DOCS))
    assert summary.chunks == chunks
    if via == "pipeline":
        assert sum(len(d["chunks"]) for d in stored.values()) == chunks
        assert all(len(c["dense_vector"]) == 64 for d in stored.values() for c in d["chunks"])
    else:
        inferred = es.standin.indices[settings.index].inference
        assert sorted(inferred) == sorted(stored)


def test_a_rate_limit_at_capacity_leaves_nothing_to_refuse(
    overloaded: tuple[Settings, Store, Embedder, Running[EsStandin], Running[EmbedStandin]],
    in_tmp: Path,
) -> None:
    """ES's ``rate_limit`` queues requests on the node: set to what the server sustains, the
    same offered load meets no refusal at all and every document goes in at the first try."""
    settings, store, embedder, es, embed = overloaded
    settings = replace(settings, ingest_path="pipeline", inference_rate_limit=25)
    provision.setup(settings, store, embedder)
    summary = ingest.ingest(
        settings, store, embedder, ingest.load_documents([_corpus(in_tmp / "corpus")]), via="pipeline"
    )
    capacity = embed.standin.capacity
    assert capacity is not None
    assert (summary.failed, summary.retried, capacity.refused) == ({}, 0, 0)
    assert len(es.standin.indices[settings.index].docs) == DOCS
