"""The ES stand-in behaves like Elasticsearch where rag depends on it (driven by the real client)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import pytest
from elasticsearch import BadRequestError, Elasticsearch, NotFoundError

from rag import resources
from rag.settings import Settings
from rag.store import CLIENT_MAJOR, connect
from tests.rag.conftest import Running
from tests.rag.embed_standin import EmbedStandin, hashed_vector
from tests.rag.es_standin import EsStandin


@pytest.fixture
def client(es: Running[EsStandin]) -> Iterator[Elasticsearch]:
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


# -- fidelity beyond what rag sends today (ES's behaviour, checked through the real client) ----------


def _hf_endpoint(client: Elasticsearch, embed: Running[EmbedStandin], inference_id: str = "hf") -> None:
    client.inference.put(
        task_type="text_embedding",
        inference_id=inference_id,
        inference_config={
            "service": "hugging_face",
            "service_settings": {"api_key": "k", "url": f"{embed.url}/embed"},
        },
    )


@pytest.mark.parametrize(
    ("similarity", "vector", "raw", "score"),
    [
        ("cosine", [0.6, 0.8], 0.6, 0.8),
        ("dot_product", [0.6, 0.8], 0.6, 0.8),
        ("l2_norm", [0.6, 0.8], math.sqrt(0.8), 1 / 1.8),
        ("max_inner_product", [3.0, 4.0], 3.0, 4.0),
        ("max_inner_product", [-3.0, 4.0], -3.0, 0.25),
    ],
)
def test_knn_scores_each_similarity_like_es_and_thresholds_the_raw_similarity(
    client: Elasticsearch, similarity: str, vector: list[float], raw: float, score: float
) -> None:
    client.indices.create(
        index="s",
        mappings={"properties": {"v": {"type": "dense_vector", "dims": 2, "similarity": similarity}}},
    )
    client.index(index="s", id="1", document={"v": vector}, refresh=True)
    knn = {"field": "v", "query_vector": [1.0, 0.0], "k": 1, "num_candidates": 1}
    hits = client.search(index="s", knn=knn).body["hits"]["hits"]
    assert hits[0]["_score"] == pytest.approx(score)
    # `similarity` bounds the raw similarity (a distance for l2_norm), not the score.
    looser, stricter = (raw + 0.01, raw - 0.01) if similarity == "l2_norm" else (raw - 0.01, raw + 0.01)
    assert len(client.search(index="s", knn={**knn, "similarity": looser}).body["hits"]["hits"]) == 1
    assert client.search(index="s", knn={**knn, "similarity": stricter}).body["hits"]["hits"] == []


def test_dot_product_needs_unit_vectors(client: Elasticsearch) -> None:
    client.indices.create(
        index="d",
        mappings={"properties": {"v": {"type": "dense_vector", "dims": 2, "similarity": "dot_product"}}},
    )
    with pytest.raises(BadRequestError, match="unit-length"):
        client.index(index="d", id="1", document={"v": [3, 4]})


@pytest.mark.parametrize(
    ("options", "dims", "accepted"),
    [
        ({"type": "hnsw", "m": 16, "ef_construction": 100}, 5, True),
        ({"type": "int8_hnsw", "rescore_vector": {"oversample": 2.0}}, 5, True),
        ({"type": "int4_hnsw"}, 6, True),
        ({"type": "int4_hnsw"}, 5, False),
        ({"type": "bbq_hnsw"}, 64, True),
        ({"type": "bbq_hnsw"}, 5, False),
        ({"type": "flat"}, 5, True),
        ({"type": "flat", "m": 42}, 5, False),
        ({"type": "bbq_flat", "confidence_interval": 0.9}, 64, False),
        ({"type": "ivf"}, 5, False),
        ({"m": 16}, 5, False),
    ],
)
def test_index_options_are_validated_for_the_dims_like_es(
    client: Elasticsearch, options: dict[str, object], dims: int, accepted: bool
) -> None:
    mappings = {"properties": {"v": {"type": "dense_vector", "dims": dims, "index_options": options}}}
    if accepted:
        assert client.indices.create(index="o", mappings=mappings).body["acknowledged"] is True
        return
    with pytest.raises(BadRequestError) as caught:
        client.indices.create(index="o", mappings=mappings)
    assert caught.value.body["error"]["type"] == "mapper_parsing_exception"


def test_what_the_standin_does_not_implement_is_a_400_never_ignored(client: Elasticsearch) -> None:
    _vector_index(client)
    refusals: list[Callable[[], object]] = [
        lambda: client.indices.create(
            index="b",
            mappings={"properties": {"v": {"type": "dense_vector", "dims": 3, "element_type": "byte"}}},
        ),
        lambda: client.search(index="v", query={"match_all": {}}, sort=["tag"]),
        lambda: client.search(index="v", query={"script_score": {"query": {"match_all": {}}, "script": "1"}}),
        lambda: client.search(index="v", query={"match_all": {}}, profile=True),
        lambda: client.ingest.put_pipeline(
            id="p", processors=[{"set": {"field": "a", "value": 1, "if": "true"}}]
        ),
        lambda: client.perform_request("GET", "/v/_search", params={"nonsense": "1"}, headers=_JSON),
    ]
    for refuse in refusals:
        with pytest.raises(BadRequestError) as caught:
            refuse()
        assert caught.value.meta.status == 400


_JSON = {"accept": "application/json", "content-type": "application/json"}


def test_pipelines_refuse_unknown_processors_and_bad_configs_at_creation(client: Elasticsearch) -> None:
    with pytest.raises(BadRequestError) as caught:
        client.ingest.put_pipeline(id="p", processors=[{"http": {"url": "http://x"}}])
    error = caught.value.body["error"]
    assert (error["type"], error["reason"]) == (
        "parse_exception",
        "No processor type exists with name [http]",
    )
    assert error["processor_type"] == "http"
    with pytest.raises(BadRequestError) as caught:
        client.ingest.put_pipeline(id="p", processors=[{"set": {"tag": "t", "value": 1}}])
    assert caught.value.body["error"]["property_name"] == "field"
    assert "p" not in client.ingest.get_pipeline().body


def test_on_failure_runs_with_the_failure_in_ingest_metadata(client: Elasticsearch) -> None:
    client.ingest.put_pipeline(
        id="p",
        processors=[
            {
                "uppercase": {
                    "field": "missing",
                    "on_failure": [
                        {"set": {"field": "why", "value": "{{{_ingest.on_failure_processor_type}}}"}}
                    ],
                }
            }
        ],
    )
    client.index(index="x", id="1", pipeline="p", document={"a": 1})
    assert client.get(index="x", id="1").body["_source"] == {"a": 1, "why": "uppercase"}


def test_the_inference_processor_writes_model_id_next_to_each_result(
    client: Elasticsearch, embed: Running[EmbedStandin]
) -> None:
    _hf_endpoint(client, embed)
    client.ingest.put_pipeline(id="p", **resources.pipeline_body("hf"))
    client.index(index="docs", id="1", pipeline="p", document={"content": "One.\n\nTwo."})
    chunks = client.get(index="docs", id="1").body["_source"]["chunks"]
    assert [(c["chunk"], c["model_id"]) for c in chunks] == [("One.", "hf"), ("Two.", "hf")]
    client.ingest.put_pipeline(
        id="top",
        processors=[
            {"inference": {"model_id": "hf", "input_output": {"input_field": "t", "output_field": "v"}}}
        ],
    )
    client.index(index="docs", id="2", pipeline="top", document={"t": "text"})
    assert client.get(index="docs", id="2").body["_source"]["model_id"] == "hf"


def test_ids_refresh_and_url_parameters_behave_like_es(client: Elasticsearch) -> None:
    items = client.bulk(operations=[{"index": {"_index": "i", "_id": ""}}, {"a": 1}]).body["items"]
    assert items[0]["index"]["error"]["reason"] == "if _id is specified it must not be empty"
    with pytest.raises(BadRequestError, match="too long"):
        client.index(index="i", id="x" * 513, document={"a": 1})
    assert client.index(index="i", id="1", document={"a": 1, "t": "red"}, refresh=True).body["forced_refresh"]
    client.index(index="i", id="2", document={"a": 2, "t": "blue"}, refresh="wait_for")
    found = client.search(
        index="i",
        size=1,
        from_=1,
        rest_total_hits_as_int=True,
        fields=[{"field": "a"}, {"field": "t.keyword"}],
    )
    assert found.body["hits"]["total"] == 2
    assert [h["fields"] for h in found.body["hits"]["hits"]] == [{"a": [2], "t.keyword": ["blue"]}]
    # dynamic mapping: strings are text with a keyword sub-field, integers long.
    props = client.indices.get_mapping(index="i").body["i"]["mappings"]["properties"]
    assert props["a"] == {"type": "long"} and props["t"]["fields"]["keyword"]["type"] == "keyword"


def test_rrf_filter_applies_to_every_child_retriever(client: Elasticsearch) -> None:
    _vector_index(client)
    for doc_id, vector, tag in (("a", [1, 0, 0], "x"), ("b", [1, 0.1, 0], "y"), ("c", [0, 1, 0], "x")):
        client.index(index="v", id=doc_id, document={"v": vector, "tag": tag, "body": "apple"})
    client.indices.refresh(index="v")
    retriever = {
        "rrf": {
            "filter": {"term": {"tag": "x"}},
            "retrievers": [
                {"knn": {"field": "v", "query_vector": [1, 0, 0], "k": 3, "num_candidates": 3}},
                {"standard": {"query": {"match": {"body": "apple"}}}},
            ],
        }
    }
    hits = client.search(index="v", retriever=retriever).body["hits"]
    assert [h["_id"] for h in hits["hits"]] == ["a", "c"] and hits["total"]["value"] == 2


def _semantic_index(client: Elasticsearch, chunking: dict[str, object] | None = None) -> None:
    field: dict[str, object] = {"type": "semantic_text", "inference_id": "hf"}
    if chunking is not None:
        field["chunking_settings"] = chunking
    client.indices.create(
        index="sem",
        mappings={"properties": {"text": field, "tag": {"type": "keyword"}, "body": {"type": "text"}}},
    )


def test_semantic_text_embeds_all_chunks_of_a_bulk_in_batches_of_20(
    client: Elasticsearch, embed: Running[EmbedStandin]
) -> None:
    _hf_endpoint(client, embed)
    _semantic_index(client, {"strategy": "none"})
    operations: list[dict[str, object]] = []
    for i in range(25):
        operations += [
            {"index": {"_index": "sem", "_id": str(i)}},
            {"text": f"paragraph number {i}", "tag": "t"},
        ]
    assert client.bulk(operations=operations, refresh=True).body["errors"] is False
    assert [len(b) for b in embed.standin.embedded_batches()[1:]] == [20, 5]
    hit = client.search(
        index="sem", query={"ids": {"values": ["3"]}}, fields=[{"field": "_inference_fields"}]
    ).body
    stored = hit["hits"]["hits"][0]["_source"]
    assert stored["text"] == "paragraph number 3"  # _source keeps the text
    inference = stored["_inference_fields"]["text"]["inference"]
    assert (
        inference["inference_id"] == "hf" and inference["model_settings"]["dimensions"] == embed.standin.dims
    )
    chunk = inference["chunks"]["text"][0]
    assert (chunk["start_offset"], chunk["end_offset"]) == (0, len("paragraph number 3"))
    assert chunk["embeddings"] == pytest.approx(hashed_vector("paragraph number 3", embed.standin.dims))
    plain = client.search(index="sem", query={"ids": {"values": ["3"]}}).body["hits"]["hits"][0]["_source"]
    assert "_inference_fields" not in plain
    mapping = client.indices.get_mapping(index="sem").body["sem"]["mappings"]["properties"]["text"]
    assert mapping["model_settings"]["dimensions"] == embed.standin.dims  # recorded on first use, as ES does


def test_semantic_query_knn_highlighter_and_rrf_on_semantic_text(
    client: Elasticsearch, embed: Running[EmbedStandin]
) -> None:
    _hf_endpoint(client, embed)
    _semantic_index(client, {"strategy": "none"})
    client.index(index="sem", id="a", document={"text": ["red apples grow", "green pears"], "body": "fruit"})
    client.index(
        index="sem", id="b", document={"text": ["blue sky above"], "body": "fruit sky"}, refresh=True
    )
    query = {"semantic": {"field": "text", "query": "green pears"}}
    highlight = {"fields": {"text": {"type": "semantic", "number_of_fragments": 1, "order": "score"}}}
    hits = client.search(index="sem", query=query, highlight=highlight).body["hits"]["hits"]
    assert hits[0]["_id"] == "a" and hits[0]["_score"] == pytest.approx(1.0)
    assert hits[0]["highlight"] == {"text": ["green pears"]}
    # Each value is its own text; offsets run over the values joined by one separator.
    knn = {"field": "text", "query_vector": hashed_vector("blue sky", embed.standin.dims), "k": 1}
    top = client.search(index="sem", query={"knn": knn}, highlight=highlight).body["hits"]["hits"]
    assert [h["_id"] for h in top] == ["b"] and top[0]["highlight"] == {"text": ["blue sky above"]}
    retriever = {
        "rrf": {
            "retrievers": [
                {"standard": {"query": query}},
                {"standard": {"query": {"match": {"body": "sky"}}}},
            ]
        }
    }
    fused = client.search(index="sem", retriever=retriever).body["hits"]["hits"]
    assert {h["_id"] for h in fused} == {"a", "b"}
    with pytest.raises(BadRequestError) as caught:
        client.search(index="sem", query={"semantic": {"field": "body", "query": "x"}})
    assert caught.value.body["error"]["type"] == "search_phase_execution_exception"
    assert caught.value.body["error"]["root_cause"][0]["reason"] == (
        "Field [body] of type [text] does not support semantic queries"
    )


def test_semantic_text_chunks_sentences_like_es_by_default(
    client: Elasticsearch, embed: Running[EmbedStandin]
) -> None:
    _hf_endpoint(client, embed)
    _semantic_index(client, {"strategy": "sentence", "max_chunk_size": 20, "sentence_overlap": 1})
    sentences = [f"Sentence {n} has exactly seven words here. " for n in "abcd"]
    text = "".join(sentences).strip()
    client.index(index="sem", id="1", document={"text": text}, refresh=True)
    body = client.search(index="sem", fields=[{"field": "_inference_fields"}]).body
    chunks = body["hits"]["hits"][0]["_source"]["_inference_fields"]["text"]["inference"]["chunks"]["text"]
    spans = [text[c["start_offset"] : c["end_offset"]] for c in chunks]
    # 7 words a sentence, 20 words a chunk, each chunk after the first repeats one sentence.
    assert spans == [
        sentences[0] + sentences[1],
        sentences[1] + sentences[2],
        (sentences[2] + sentences[3]).strip(),
    ]
    with pytest.raises(BadRequestError, match="max_chunk_size"):
        client.indices.create(
            index="bad",
            mappings={
                "properties": {
                    "t": {
                        "type": "semantic_text",
                        "inference_id": "hf",
                        "chunking_settings": {"max_chunk_size": 5},
                    }
                }
            },
        )


@pytest.mark.parametrize(
    ("status", "es_status", "message", "attempts"),
    [
        (429, 429, "Received a rate limit status code", 3),
        (503, 400, "Received a rate limit status code", 3),
        (408, 408, "Received an unsuccessful status code", 1),
        (500, 400, "Received a server error status code", 1),
        (401, 401, "Received an authentication error status code", 1),
    ],
)
def test_inference_errors_after_retries_are_what_es_answers(
    client: Elasticsearch,
    embed: Running[EmbedStandin],
    status: int,
    es_status: int,
    message: str,
    attempts: int,
) -> None:
    _hf_endpoint(client, embed)
    before = len(embed.standin.requests)
    embed.standin.fail_next(status, times=10, retry_after=0)
    with pytest.raises(Exception) as caught:
        client.options(max_retries=0).inference.inference(
            inference_id="hf", task_type="text_embedding", input=["x"]
        )
    error = caught.value.body["error"]  # type: ignore[attr-defined]
    assert caught.value.meta.status == es_status  # type: ignore[attr-defined]
    assert error["type"] == "status_exception"
    assert error["reason"].startswith(
        f"{message} for request from inference entity id [hf] status [{status}]"
    )
    assert len(embed.standin.requests) - before == attempts  # 3 attempts for 429/502/503 only


def test_openai_endpoints_default_to_dot_product_and_batch_2048_chunks(
    client: Elasticsearch, embed: Running[EmbedStandin]
) -> None:
    client.inference.put(
        task_type="text_embedding",
        inference_id="oa",
        inference_config={
            "service": "openai",
            "service_settings": {
                "api_key": "k",
                "model_id": "m",
                "url": f"{embed.url}/v1/embeddings",
                "rate_limit": {"requests_per_minute": 60},
            },
        },
    )
    settings = client.inference.get(inference_id="oa").body["endpoints"][0]["service_settings"]
    assert (settings["similarity"], settings["rate_limit"]) == ("dot_product", {"requests_per_minute": 60})
    client.indices.create(
        index="sem",
        mappings={
            "properties": {
                "text": {
                    "type": "semantic_text",
                    "inference_id": "oa",
                    "chunking_settings": {"strategy": "none"},
                }
            }
        },
    )
    client.index(index="sem", id="1", document={"text": [f"value {i}" for i in range(25)]})
    assert [len(b) for b in embed.standin.embedded_batches("/v1/embeddings")[1:]] == [25]
    with pytest.raises(BadRequestError, match="unknown to the \\[openai\\] service"):
        client.inference.put(
            task_type="text_embedding",
            inference_id="oa2",
            inference_config={
                "service": "openai",
                "service_settings": {"api_key": "k", "model_id": "m", "x": 1},
            },
        )
