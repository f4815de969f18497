"""rag's client of the embedding server: batching, retries, 413 halving, token counts."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import httpx
import pytest

from rag.embedder import Embedder
from rag.errors import EmbeddingServerError
from rag.settings import Settings
from tests.rag.conftest import Running
from tests.rag.embed_standin import EmbedStandin, hashed_vector


@pytest.fixture
def make_embedder(make_settings: Callable[..., Settings]) -> Iterator[Callable[..., Embedder]]:
    made: list[Embedder] = []

    def make(embed: Running[EmbedStandin], **overrides: object) -> Embedder:
        made.append(Embedder(make_settings("http://127.0.0.1:9", embed.url, **overrides)))
        return made[-1]

    yield make
    for embedder in made:
        embedder.close()


def test_batches_are_capped_by_the_server_and_keep_order(
    make_embed: Callable[..., Running[EmbedStandin]], make_embedder: Callable[..., Embedder]
) -> None:
    embed = make_embed(max_client_batch_size=4)
    embedder = make_embedder(embed, embed_batch_size=32)
    texts = [f"text {i}" for i in range(10)]
    vectors = embedder.embed(texts)
    assert [len(b) for b in embed.standin.embedded_batches()] == [4, 4, 2]
    assert all(v == pytest.approx(hashed_vector(t, 64)) for v, t in zip(vectors, texts, strict=True))


def test_429_and_503_are_retried_and_413_halves(
    embed: Running[EmbedStandin], make_embedder: Callable[..., Embedder]
) -> None:
    embedder = make_embedder(embed, embed_batch_size=8)
    embed.standin.fail_next(429, times=1, path="/embed", retry_after=0)
    embed.standin.fail_next(503, times=1, path="/embed")
    embed.standin.fail_next(413, times=1, path="/embed")
    assert len(embedder.embed([f"t{i}" for i in range(8)])) == 8
    assert [len(b) for b in embed.standin.embedded_batches()] == [8, 8, 8, 4, 4]


def test_persistent_errors_and_auth_are_clear(
    make_embed: Callable[..., Running[EmbedStandin]], make_embedder: Callable[..., Embedder]
) -> None:
    locked = make_embed(api_key="right")
    with pytest.raises(
        EmbeddingServerError, match=re.escape("401 missing or wrong API key (check EMBED_API_KEY)")
    ):
        make_embedder(locked, embed_api_key="wrong").embed(["x"])
    assert len(make_embedder(locked, embed_api_key="right").embed(["x"])[0]) == 64
    busy = make_embed()
    embedder = make_embedder(busy, max_retries=1)
    busy.standin.fail_next(503, times=5, path="/embed")
    with pytest.raises(EmbeddingServerError, match=re.escape("failed to embed 1 texts (POST /embed): 503")):
        embedder.embed(["x"])


def test_token_counts_from_the_server_or_an_estimate(
    embed: Running[EmbedStandin], make_embedder: Callable[..., Embedder]
) -> None:
    embedder = make_embedder(embed)
    counted = embedder.count_tokens(["two words", "one, two, three."])
    assert [(c.total, c.special, c.content) for c in counted] == [(4, 2, 2), (8, 2, 6)]
    embed.standin.fail_next(404, path="/tokenize")
    fresh = make_embedder(embed)
    assert [(c.total, c.special) for c in fresh.count_tokens(["two words"])] == [(4, 2)]
    assert fresh.count_tokens(["a b c"])[0].total == 5
    assert [r.path for r in embed.standin.requests].count("/tokenize") == 2  # no more asking after a 404


def test_an_embed_url_that_is_elasticsearch_is_named(make_settings: Callable[..., Settings]) -> None:
    def elasticsearch(request: httpx.Request) -> httpx.Response:
        body = {"name": "node-1", "tagline": "You Know, for Search"}
        return httpx.Response(200, json=body, headers={"x-elastic-product": "Elasticsearch"})

    settings = make_settings("http://127.0.0.1:9", "http://es.test:9200")
    embedder = Embedder(settings, transport=httpx.MockTransport(elasticsearch))
    with pytest.raises(EmbeddingServerError, match=r"http://es\.test:9200 is Elasticsearch.*set EMBED_URL"):
        embedder.embed(["x"])
    embedder.close()


def test_queries_are_interactive_and_ingest_is_bulk(
    embed: Running[EmbedStandin], make_embedder: Callable[..., Embedder]
) -> None:
    """The server serves interactive work first: a query says it is one, ingest says bulk."""
    embedder = make_embedder(embed)
    embedder.embed(["how many vacation days"])
    embedder.embed(["a chunk", "another chunk"], bulk=True)
    embedder.count_tokens(["a chunk"])
    sent = [(r.path, r.headers.get("x-embed-priority")) for r in embed.standin.requests if r.path != "/info"]
    assert sent == [("/embed", "interactive"), ("/embed", "bulk"), ("/tokenize", "bulk")]


def test_an_unknown_priority_is_refused_like_the_server_refuses_it(embed: Running[EmbedStandin]) -> None:
    answer = httpx.post(f"{embed.url}/embed?priority=urgent", json={"inputs": ["x"]})
    assert answer.status_code == 422
