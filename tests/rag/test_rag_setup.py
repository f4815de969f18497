"""`setup`: creates the three resources, is idempotent, reports differences, fails clearly."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest

from rag import provision, resources
from rag.embedder import Embedder
from rag.errors import EmbeddingServerError, SearchBackendError, SetupConflictError
from rag.settings import Settings
from rag.store import connect
from tests.rag.conftest import Running
from tests.rag.embed_standin import EmbedStandin
from tests.rag.es_standin import EsStandin


def _setup(settings: Settings, replace_: bool = False) -> provision.SetupReport:
    store, embedder = connect(settings), Embedder(settings)
    try:
        return provision.setup(settings, store, embedder, replace=replace_)
    finally:
        store.close()
        embedder.close()


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
    index = es.standin.indices["rag-kb"]
    assert index.mappings["properties"]["dense_vector"] == {
        "type": "dense_vector",
        "dims": embed.standin.dims,
        "index": True,
        "similarity": "cosine",
    }
    endpoint = es.standin.endpoints["rag-embedder"]
    assert (endpoint.service, endpoint.service_settings["url"]) == ("hugging_face", f"{embed.url}/embed")
    assert (
        es.standin.pipelines["rag-embed"]["processors"]
        == resources.pipeline_body("rag-embedder")["processors"]
    )


def test_rerun_reports_existing_and_differing_resources(
    settings: Settings, make_embed: Callable[..., Running[EmbedStandin]], es: Running[EsStandin]
) -> None:
    _setup(settings)
    moved = make_embed()
    elsewhere = replace(settings, embed_url=moved.url)
    report = _setup(elsewhere)
    assert not report.complete
    assert report.steps[2].outcome == "differs" and f"want {moved.url}/embed" in report.steps[2].detail
    assert "re-run with --replace" in report.render()
    es.standin.pipelines["rag-embed"]["processors"].pop()
    replaced = _setup(elsewhere, replace_=True)
    assert replaced.complete
    assert [s.outcome for s in replaced.steps[2:]] == ["replaced", "replaced"]
    assert es.standin.endpoints["rag-embedder"].service_settings["url"] == f"{moved.url}/embed"


def test_openai_service_points_at_v1_embeddings(
    settings: Settings, es: Running[EsStandin], embed: Running[EmbedStandin]
) -> None:
    _setup(replace(settings, inference_service="openai"))
    endpoint = es.standin.endpoints["rag-embedder"]
    assert endpoint.service == "openai"
    assert endpoint.service_settings == {
        "api_key": "none",
        "model_id": "hash-bow",
        "url": f"{embed.url}/v1/embeddings",
    }


def test_missing_index_fields_are_added(settings: Settings, es: Running[EsStandin]) -> None:
    store = connect(settings)
    store.create_index(
        "rag-kb",
        {
            "mappings": {
                "properties": {
                    "dense_vector": {
                        "type": "dense_vector",
                        "dims": 64,
                        "index": True,
                        "similarity": "cosine",
                    }
                }
            }
        },
    )
    store.close()
    step = _setup(settings).steps[1]
    assert step.outcome == "updated" and "chunks" in step.detail
    assert es.standin.indices["rag-kb"].mappings["properties"]["chunks"]["type"] == "nested"


def test_wrong_dims_between_index_and_model_is_a_clear_error(
    settings: Settings, make_embed: Callable[..., Running[EmbedStandin]]
) -> None:
    _setup(settings)
    bigger = make_embed(dims=96)
    with pytest.raises(
        SetupConflictError, match=r"stores 64-dim vectors but the model at EMBED_URL=.* makes 96-dim"
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
