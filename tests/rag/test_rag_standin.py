"""The ES stand-in behaves like Elasticsearch where rag depends on it (driven by the real client)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from elasticsearch import BadRequestError, Elasticsearch, NotFoundError

from rag import resources
from rag.settings import Settings
from rag.store import CLIENT_MAJOR, connect
from tests.rag.conftest import Running
from tests.rag.embed_standin import EmbedStandin, hashed_vector
from tests.rag.es_standin import EsStandin


@pytest.fixture
def client(es: Running[EsStandin]) -> Elasticsearch:
    c = Elasticsearch(es.url)
    yield c
    c.close()


def _vector_index(client: Elasticsearch, dims: int = 3) -> None:
    client.indices.create(
        index="v",
        mappings={
            "properties": {
                "v": {"type": "dense_vector", "dims": dims, "index": True, "similarity": "cosine"},
                "tag": {"type": "keyword"},
                "body": {"type": "text"},
            }
        },
    )


def test_headers_and_error_bodies_are_elasticsearch_s(client: Elasticsearch, es: Running[EsStandin]) -> None:
    info = client.info()
    assert info.meta.headers["x-elastic-product"] == "Elasticsearch"
    assert (
        info.meta.headers["content-type"]
        == f"application/vnd.elasticsearch+json;compatible-with={CLIENT_MAJOR}"
    )
    with pytest.raises(NotFoundError) as caught:
        client.search(index="missing", query={"match_all": {}})
    body = caught.value.body
    assert body["status"] == 404 and body["error"]["type"] == "index_not_found_exception"
    assert body["error"]["root_cause"][0]["reason"] == "no such index [missing]"


def test_an_8x_cluster_refuses_a_9x_client_unless_the_compat_major_is_pinned(
    make_es: Callable[..., Running[EsStandin]],
    embed: Running[EmbedStandin],
    make_settings: Callable[..., Settings],
) -> None:
    old = make_es(version="8.15.3")
    plain = Elasticsearch(old.url)
    if CLIENT_MAJOR == 9:
        with pytest.raises(BadRequestError) as caught:
            plain.search(index="x", query={"match_all": {}})
        cause = caught.value.body["error"]["caused_by"]["reason"]
        assert cause.startswith("Accept version must be either version 8 or 7, but found 9.")
    plain.close()
    before = len(old.standin.calls)
    store = connect(make_settings(old.url, embed.url))
    assert store.info.version == (8, 15, 3) and store.info.compat == 8
    store.create_index("x", {"mappings": {"properties": {"a": {"type": "keyword"}}}})
    assert store.bulk([{"index": {"_index": "x", "_id": "1"}}, {"a": "b"}])[0]["status"] == 201
    accepts = {c.headers.get("accept") for c in old.standin.calls[before:]}
    assert accepts == {"application/vnd.elasticsearch+json; compatible-with=8"}
    store.close()


def test_mapping_validation_and_document_checks(client: Elasticsearch) -> None:
    with pytest.raises(BadRequestError, match="mapper_parsing_exception"):
        client.indices.create(
            index="bad", mappings={"properties": {"v": {"type": "dense_vector", "dims": 5000}}}
        )
    with pytest.raises(BadRequestError, match="mapper_parsing_exception"):
        client.indices.create(index="bad", mappings={"properties": {"v": {"type": "vector"}}})
    _vector_index(client)
    items = client.bulk(
        operations=[
            {"index": {"_index": "v", "_id": "ok"}},
            {"v": [1, 0, 0]},
            {"index": {"_index": "v", "_id": "short"}},
            {"v": [1, 0]},
            {"index": {"_index": "v", "_id": "zero"}},
            {"v": [0, 0, 0]},
        ]
    ).body
    assert items["errors"] is True
    statuses = [next(iter(i.values()))["status"] for i in items["items"]]
    assert statuses == [201, 400, 400]
    assert "different number of dimensions [2]" in items["items"][1]["index"]["error"]["reason"]
    assert "zero magnitude" in items["items"][2]["index"]["error"]["reason"]


def test_knn_is_exact_cosine_with_es_score_and_filters(client: Elasticsearch) -> None:
    _vector_index(client)
    docs = {"a": ([1, 0, 0], "x"), "b": ([1, 1, 0], "y"), "c": ([-1, 0, 0], "x")}
    for doc_id, (vector, tag) in docs.items():
        client.index(index="v", id=doc_id, document={"v": vector, "tag": tag})
    assert (
        client.search(index="v", query={"match_all": {}}).body["hits"]["total"]["value"] == 0
    )  # not refreshed
    client.indices.refresh(index="v")
    hits = client.search(
        index="v", knn={"field": "v", "query_vector": [1, 0, 0], "k": 3, "num_candidates": 10}
    )
    scores = {h["_id"]: h["_score"] for h in hits.body["hits"]["hits"]}
    assert scores == pytest.approx({"a": 1.0, "b": (1 + 2**-0.5) / 2, "c": 0.0})
    filtered = client.search(
        index="v",
        knn={
            "field": "v",
            "query_vector": [1, 0, 0],
            "k": 3,
            "num_candidates": 10,
            "filter": {"term": {"tag": "x"}},
        },
    )
    assert [h["_id"] for h in filtered.body["hits"]["hits"]] == ["a", "c"]
    with pytest.raises(BadRequestError, match="num_candidates"):
        client.search(index="v", knn={"field": "v", "query_vector": [1, 0, 0], "k": 5, "num_candidates": 2})
    with pytest.raises(BadRequestError, match="different number of dimensions"):
        client.search(index="v", knn={"field": "v", "query_vector": [1, 0], "k": 1, "num_candidates": 2})


def test_rrf_fuses_ranks_and_needs_a_license(
    client: Elasticsearch, make_es: Callable[..., Running[EsStandin]]
) -> None:
    _vector_index(client)
    client.index(index="v", id="a", document={"v": [1, 0, 0], "body": "red apple"}, refresh=True)
    client.index(index="v", id="b", document={"v": [0, 1, 0], "body": "green apple apple"}, refresh=True)
    retriever = {
        "rrf": {
            "retrievers": [
                {"knn": {"field": "v", "query_vector": [1, 0, 0], "k": 2, "num_candidates": 2}},
                {"standard": {"query": {"match": {"body": "apple green"}}}},
            ],
            "rank_window_size": 10,
            "rank_constant": 60,
        }
    }
    hits = client.search(index="v", retriever=retriever, size=2).body["hits"]["hits"]
    assert {h["_id"]: h["_score"] for h in hits} == pytest.approx(
        {"a": 1 / 61 + 1 / 62, "b": 1 / 62 + 1 / 61}
    )
    basic = make_es(rrf_licensed=False)
    other = Elasticsearch(basic.url)
    other.indices.create(index="v", mappings={"properties": {"v": {"type": "dense_vector", "dims": 3}}})
    with pytest.raises(Exception, match="non-compliant"):
        other.search(index="v", retriever=retriever)
    other.close()


def test_inference_endpoint_calls_the_server_like_es(
    es: Running[EsStandin], embed: Running[EmbedStandin], client: Elasticsearch
) -> None:
    embed.standin.api_key = "secret"
    created = client.inference.put(
        task_type="text_embedding",
        inference_id="hf",
        inference_config={
            "service": "hugging_face",
            "service_settings": {"api_key": "secret", "url": f"{embed.url}/embed"},
        },
    )
    assert created.body["service_settings"]["dimensions"] == embed.standin.dims
    assert "api_key" not in created.body["service_settings"]
    assert embed.standin.embedded_batches()[0] == ["how big"]
    assert embed.standin.requests[0].headers["authorization"] == "Bearer secret"
    embed.standin.fail_next(429, times=1, retry_after=0)
    embed.standin.fail_next(503, times=1)
    texts = [f"text number {i}" for i in range(45)]
    out = client.inference.inference(inference_id="hf", task_type="text_embedding", input=texts).body
    vectors = [row["embedding"] for row in out["text_embedding"]]
    expected = [hashed_vector(t, embed.standin.dims) for t in texts]
    assert all(got == pytest.approx(want) for got, want in zip(vectors, expected, strict=True))
    sizes = [len(b) for b in embed.standin.embedded_batches()[1:]]
    assert sizes == [20, 20, 20, 20, 5]  # two refused attempts, then 20, 20, 5


def test_a_413_halves_the_batch(
    es: Running[EsStandin], make_embed: Callable[..., Running[EmbedStandin]], client: Elasticsearch
) -> None:
    small = make_embed(max_client_batch_size=8)
    client.inference.put(
        task_type="text_embedding",
        inference_id="hf",
        inference_config={
            "service": "hugging_face",
            "service_settings": {"api_key": "k", "url": f"{small.url}/embed"},
        },
    )
    client.inference.inference(
        inference_id="hf", task_type="text_embedding", input=[f"t{i}" for i in range(20)]
    )
    assert [len(b) for b in small.standin.embedded_batches()[1:]] == [20, 10, 5, 5, 10, 5, 5]


@pytest.mark.parametrize(("version", "encoding"), [("9.1.0", "base64"), ("8.15.0", "float")])
def test_openai_service_encoding(
    version: str,
    encoding: str,
    make_es: Callable[..., Running[EsStandin]],
    embed: Running[EmbedStandin],
    make_settings: Callable[..., Settings],
) -> None:
    cluster = make_es(version=version)
    store = connect(make_settings(cluster.url, embed.url))
    store.put_inference(
        "oa",
        {
            "service": "openai",
            "service_settings": {"api_key": "k", "model_id": "m", "url": f"{embed.url}/v1/embeddings"},
        },
    )
    assert (store.get_inference("oa") or {})["service_settings"]["dimensions"] == embed.standin.dims
    store.close()
    request = embed.standin.requests[-1]
    assert request.path == "/v1/embeddings"
    assert request.body == {"input": ["how big"], "model": "m", "encoding_format": encoding}


def test_pipeline_processors_follow_es_semantics(client: Elasticsearch, embed: Running[EmbedStandin]) -> None:
    client.inference.put(
        task_type="text_embedding",
        inference_id="hf",
        inference_config={
            "service": "hugging_face",
            "service_settings": {"api_key": "k", "url": f"{embed.url}/embed"},
        },
    )
    client.ingest.put_pipeline(id="p", **resources.pipeline_body("hf"))
    text = 'One "<b>&</b>".\n \n\n  Two\nlines.  \n\n'
    client.index(index="docs", id="1", pipeline="p", document={"content": text})
    stored = client.get(index="docs", id="1").body["_source"]
    assert [c["chunk"] for c in stored["chunks"]] == ['One "<b>&</b>".', "Two\nlines."]
    assert stored["chunks"][1]["dense_vector"] == pytest.approx(
        hashed_vector("Two\nlines.", embed.standin.dims)
    )
    with pytest.raises(BadRequestError, match="not present"):
        client.index(index="docs", id="2", pipeline="p", document={"title": "no content"})
    # The set processor's default media type escapes {{x}} as JSON; {{{x}}} is never escaped.
    client.ingest.put_pipeline(
        id="escape",
        processors=[
            {"set": {"field": "double", "value": "{{content}}"}},
            {"set": {"field": "triple", "value": "{{{content}}}"}},
            {"set": {"field": "plain", "value": "{{content}}", "media_type": "text/plain"}},
        ],
    )
    client.index(index="docs", id="3", pipeline="escape", document={"content": 'a "b"\nc'})
    escaped = client.get(index="docs", id="3").body["_source"]
    assert (escaped["double"], escaped["triple"], escaped["plain"]) == (
        'a \\"b\\"\\nc',
        'a "b"\nc',
        'a "b"\nc',
    )
    with pytest.raises(NotFoundError):
        client.ingest.put_pipeline(
            id="q",
            processors=[
                {"inference": {"model_id": "nope", "input_output": {"input_field": "a", "output_field": "b"}}}
            ],
        )
