"""`setup`: creates what each ingest path needs, is idempotent, reports differences, fails clearly."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from rag import provision, resources
from rag.dashscope import embedder_for
from rag.embedder import Embedder
from rag.errors import ConfigError, EmbeddingServerError, SearchBackendError, SetupConflictError
from rag.settings import Settings
from rag.store import connect
from tests.rag.conftest import Running
from tests.rag.embed_standin import EmbedStandin
from tests.rag.es_standin import EsStandin


def _setup(settings: Settings, replace_: bool = False) -> provision.SetupReport:
    store, embedder = connect(settings), embedder_for(settings)
    try:
        return provision.setup(settings, store, embedder, replace=replace_)
    finally:
        store.close()
        embedder.close()


def _vector(dims: int, options: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "dense_vector",
        "dims": dims,
        "index": True,
        "similarity": "cosine",
        "index_options": options,
    }


def test_setup_creates_what_the_contract_says(
    settings: Settings, es: Running[EsStandin], embed: Running[EmbedStandin]
) -> None:
    report = _setup(settings)
    assert report.complete and [s.outcome for s in report.steps] == [
        "exists",
        "created",
        "created",
        "created",
    ]
    properties = es.standin.indices["rag-kb"].mappings["properties"]
    # Explicit index options on a 9.1 cluster: int8 HNSW, float re-scoring of 2x the candidates.
    wanted = _vector(embed.standin.dims, {"type": "int8_hnsw", "rescore_vector": {"oversample": 2.0}})
    assert properties["dense_vector"] == wanted
    assert properties["chunks"]["properties"]["dense_vector"] == wanted
    # The inference processor writes `model_id` next to each chunk's vector: mapped as a keyword.
    assert properties["chunks"]["properties"]["model_id"] == {"type": "keyword"}
    endpoint = es.standin.endpoints["rag-embedder"]
    assert (endpoint.service, endpoint.service_settings["url"]) == (
        "hugging_face",
        f"{embed.url}/embed?priority=bulk",
    )
    # ES keeps the query string: its calls (here the "how big" probe) are marked bulk work.
    probe = [r for r in embed.standin.requests if r.path == "/embed"][-1]
    assert probe.params == {"priority": "bulk"}
    # No measured capacity: ES does not throttle (its own default would be 3,000 a minute).
    assert endpoint.service_settings["rate_limit"] == {"requests_per_minute": resources.UNSIZED_RATE_LIMIT}
    assert (
        es.standin.pipelines["rag-embed"]["processors"]
        == resources.pipeline_body("rag-embedder")["processors"]
    )
    assert "rate_limit 60000/min per node (RAG_EMBED_CAPACITY unset" in report.render()


def test_rate_limit_is_sized_from_the_measured_capacity(settings: Settings, es: Running[EsStandin]) -> None:
    # 500 texts/s over 2 ingest nodes, one text per pipeline request: 15,000 a minute per node.
    report = _setup(replace(settings, embed_capacity=500.0, es_inference_nodes=2))
    endpoint = es.standin.endpoints["rag-embedder"]
    assert endpoint.service_settings["rate_limit"] == {"requests_per_minute": 15_000}
    assert "500 texts/s / 1 per request / 2 node(s)" in report.render()
    # semantic_text batches 20 texts per request; an explicit figure wins over the derived one.
    assert resources.rate_limit("semantic_text", 500.0, 2, None)[0] == 750
    assert resources.rate_limit("pipeline", 500.0, 2, 1234) == (1234, "RAG_INFERENCE_RATE_LIMIT")
    assert resources.rate_limit("pipeline", 0.01, 1, None)[0] == 1


def test_client_path_needs_no_endpoint_or_pipeline(settings: Settings, es: Running[EsStandin]) -> None:
    report = _setup(replace(settings, ingest_path="client"))
    assert [s.resource for s in report.steps] == ["embedding model", "index rag-kb"]
    assert es.standin.endpoints == {} and es.standin.pipelines == {}


@pytest.mark.parametrize(
    ("version", "rescore"),
    [("9.1.0", True), ("9.0.2", False), ("8.19.1", False), ("8.15.3", False)],
)
def test_rescore_vector_only_where_it_is_ga(
    version: str,
    rescore: bool,
    make_es: Callable[..., Running[EsStandin]],
    embed: Running[EmbedStandin],
    make_settings: Callable[..., Settings],
) -> None:
    cluster = make_es(version=version)
    _setup(make_settings(cluster.url, embed.url, ingest_path="client"))
    options = cluster.standin.indices["rag-kb"].mappings["properties"]["dense_vector"]["index_options"]
    assert options["type"] == "int8_hnsw" and ("rescore_vector" in options) == rescore


def test_index_options_are_checked_against_the_model(
    settings: Settings, make_embed: Callable[..., Running[EmbedStandin]], es: Running[EsStandin]
) -> None:
    _setup(replace(settings, ingest_path="client", index_options="bbq_hnsw", index="bbq"))
    options = es.standin.indices["bbq"].mappings["properties"]["dense_vector"]["index_options"]
    assert options == {"type": "bbq_hnsw", "rescore_vector": {"oversample": 2.0}}
    small = make_embed(dims=32)
    with pytest.raises(ConfigError, match="bbq_hnsw needs at least 64 dims, the model has 32"):
        _setup(replace(settings, embed_url=small.url, index_options="bbq_hnsw", index="small"))
    odd = make_embed(dims=33)
    with pytest.raises(ConfigError, match="int4_hnsw needs an even number of dims"):
        _setup(replace(settings, embed_url=odd.url, index_options="int4_hnsw", index="odd"))


def test_an_index_built_with_other_index_options_differs(settings: Settings) -> None:
    _setup(replace(settings, ingest_path="client"))
    step = _setup(replace(settings, ingest_path="client", index_options="hnsw")).steps[1]
    assert step.outcome == "differs"
    assert "dense_vector is indexed as int8_hnsw, want hnsw" in step.detail


def test_rerun_reports_existing_and_differing_resources(
    settings: Settings, make_embed: Callable[..., Running[EmbedStandin]], es: Running[EsStandin]
) -> None:
    _setup(settings)
    again = _setup(settings)
    assert again.complete and [s.outcome for s in again.steps[1:]] == ["exists", "exists", "exists"]
    moved = make_embed()
    elsewhere = replace(settings, embed_url=moved.url)
    report = _setup(elsewhere)
    assert not report.complete
    assert (
        report.steps[2].outcome == "differs"
        and f"want {moved.url}/embed?priority=bulk" in report.steps[2].detail
    )
    assert "re-run with --replace" in report.render()
    throttled = _setup(replace(settings, inference_rate_limit=100))
    assert "rate_limit is 60000 requests/min, want 100" in throttled.steps[2].detail
    es.standin.pipelines["rag-embed"]["processors"].pop()
    replaced = _setup(elsewhere, replace_=True)
    assert replaced.complete
    assert [s.outcome for s in replaced.steps[2:]] == ["replaced", "replaced"]
    assert es.standin.endpoints["rag-embedder"].service_settings["url"] == f"{moved.url}/embed?priority=bulk"


def test_openai_service_points_at_v1_embeddings(
    settings: Settings, es: Running[EsStandin], embed: Running[EmbedStandin]
) -> None:
    _setup(replace(settings, inference_service="openai"))
    endpoint = es.standin.endpoints["rag-embedder"]
    assert endpoint.service == "openai"
    assert endpoint.service_settings == {
        "api_key": "none",
        "model_id": "hash-bow",
        "url": f"{embed.url}/v1/embeddings?priority=bulk",
        "rate_limit": {"requests_per_minute": resources.UNSIZED_RATE_LIMIT},
    }


def test_semantic_text_path_binds_a_field_to_the_endpoint(
    settings: Settings, es: Running[EsStandin], embed: Running[EmbedStandin]
) -> None:
    report = _setup(replace(settings, ingest_path="semantic_text", embed_capacity=100.0))
    assert [s.resource for s in report.steps] == [
        "embedding model",
        "inference endpoint rag-embedder",
        "index rag-kb",
    ]
    assert report.complete and "rag-embed" not in es.standin.pipelines
    # 100 texts/s in requests of 20 texts: 300 a minute.
    rate = es.standin.endpoints["rag-embedder"].service_settings["rate_limit"]
    assert rate == {"requests_per_minute": 300}
    semantic = es.standin.indices["rag-kb"].mappings["properties"]["semantic"]
    assert semantic["type"] == "semantic_text" and semantic["inference_id"] == "rag-embedder"
    assert semantic["chunking_settings"] == {"strategy": "none"}
    assert semantic["index_options"] == {
        "dense_vector": {"type": "int8_hnsw", "rescore_vector": {"oversample": 2.0}}
    }
    assert _setup(replace(settings, ingest_path="semantic_text", embed_capacity=100.0)).complete


def test_semantic_text_needs_8_18_and_batches_the_model_accepts(
    make_es: Callable[..., Running[EsStandin]],
    embed: Running[EmbedStandin],
    make_settings: Callable[..., Settings],
) -> None:
    old = make_es(version="8.17.4")
    with pytest.raises(SearchBackendError, match=r"is 8\.17\.4; the semantic_text path needs 8\.18"):
        _setup(make_settings(old.url, embed.url, ingest_path="semantic_text"))
    cluster = make_es(version="8.18.2")
    settings = make_settings(cluster.url, embed.url, ingest_path="semantic_text")
    with pytest.raises(ConfigError, match="use --inference-service hugging_face"):
        _setup(replace(settings, inference_service="openai"))
    with pytest.raises(ConfigError, match="cannot use Bailian embeddings"):
        _setup(replace(settings, embed_provider="dashscope", dashscope_base_url=f"{embed.url}/v1"))
    # Before 8.19/9.1 the field takes no chunking or index options: ES chunks each paragraph.
    _setup(settings)
    semantic = cluster.standin.indices["rag-kb"].mappings["properties"]["semantic"]
    assert semantic == {"type": "semantic_text", "inference_id": "rag-embedder"}


def test_bailian_embeddings_for_the_pipeline(
    settings: Settings, es: Running[EsStandin], embed: Running[EmbedStandin]
) -> None:
    # The embedding stand-in's /v1/embeddings plays Bailian; it is not a DashScope host, so the
    # DashScope key must not be sent to it, neither by rag nor through Elasticsearch.
    bailian = replace(
        settings,
        embed_provider="dashscope",
        dashscope_base_url=f"{embed.url}/v1",
        dashscope_api_key="sk-secret",
        dashscope_embed_dims=64,
        inference_rate_limit=600,
    )
    report = _setup(bailian)
    assert report.complete and "Bailian text-embedding-v4" in report.steps[0].detail
    endpoint = es.standin.endpoints["rag-embedder"]
    assert endpoint.service == "openai"
    assert endpoint.service_settings == {
        "api_key": "none",
        "model_id": "text-embedding-v4",
        "url": f"{embed.url}/v1/embeddings",
        "dimensions": 64,
        "rate_limit": {"requests_per_minute": 600},
    }
    assert all("sk-secret" not in str(r.headers) for r in embed.standin.requests)
    assert embed.standin.requests[-1].body["model"] == "text-embedding-v4"


def test_missing_index_fields_are_added(settings: Settings, es: Running[EsStandin]) -> None:
    store = connect(settings)
    store.create_index(
        "rag-kb",
        {
            "mappings": {
                "properties": {
                    "dense_vector": _vector(64, {"type": "int8_hnsw", "rescore_vector": {"oversample": 2.0}}),
                    "chunks": {"type": "nested", "properties": {"chunk": {"type": "text"}}},
                }
            }
        },
    )
    store.close()
    step = _setup(settings).steps[1]
    assert step.outcome == "updated" and "chunks" in step.detail and "doc_id" in step.detail
    nested = es.standin.indices["rag-kb"].mappings["properties"]["chunks"]
    assert nested["type"] == "nested" and nested["properties"]["model_id"] == {"type": "keyword"}


def test_wrong_dims_between_index_and_model_is_a_clear_error(
    settings: Settings, make_embed: Callable[..., Running[EmbedStandin]]
) -> None:
    _setup(settings)
    bigger = make_embed(dims=96)
    with pytest.raises(
        SetupConflictError, match=r"stores 64-dim vectors but the model \(EMBED_URL=.*\) makes 96-dim"
    ):
        _setup(replace(settings, embed_url=bigger.url))


def test_endpoint_and_client_seeing_different_models_is_caught(
    settings: Settings, make_embed: Callable[..., Running[EmbedStandin]]
) -> None:
    other = make_embed(dims=32)
    with pytest.raises(SetupConflictError, match="learned 32 dims"):
        _setup(replace(settings, embed_url_for_es=other.url, index="other"))


def test_server_down_names_embed_url(settings: Settings) -> None:
    down = replace(settings, embed_url="http://127.0.0.1:9", max_retries=0)
    with pytest.raises(EmbeddingServerError, match=r"EMBED_URL=http://127\.0\.0\.1:9"):
        _setup(down)


def test_es_down_names_es_url(settings: Settings) -> None:
    with pytest.raises(
        SearchBackendError, match=r"cannot reach Elasticsearch at ES_URL=http://127\.0\.0\.1:9"
    ):
        connect(replace(settings, es_url="http://127.0.0.1:9", max_retries=1))


def test_clusters_older_than_8_15_are_refused(
    make_es: Callable[..., Running[EsStandin]],
    embed: Running[EmbedStandin],
    make_settings: Callable[..., Settings],
) -> None:
    old = make_es(version="8.13.4")
    with pytest.raises(SearchBackendError, match=r"is 8\.13\.4; rag needs 8\.15 or later"):
        connect(make_settings(old.url, embed.url))


def test_endpoint_creation_failure_is_reported(settings: Settings, embed: Running[EmbedStandin]) -> None:
    embed.standin.fail_next(401, times=10)
    with pytest.raises(SearchBackendError, match="validation call to service threw an exception"):
        _setup(settings)


def test_embedder_for_picks_the_provider(settings: Settings) -> None:
    assert type(embedder_for(settings)) is Embedder
    with pytest.raises(ConfigError, match="needs DASHSCOPE_API_KEY"):
        embedder_for(replace(settings, embed_provider="dashscope"))
