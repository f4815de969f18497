"""Elasticsearch's own YAML REST tests, for the features rag uses, against the ES stand-in.

The YAML files are Elasticsearch's, not ours: they are not committed here (files fetched from
other repositories stay out of this repository's history). ``ES_YAML_DIR``, else the steering
repository's ``shared/es-yaml/`` beside this checkout, holds them (the list, their source
paths and commits are in ``tests/rag/es_yaml/README.md``); without them these tests skip and
say so. The same files run against a real cluster when ``ES_URL`` is set (marker ``es_real``).
Against the stand-in, the tests in ``UNSUPPORTED`` are skipped for the reason given there: each
exercises something the stand-in deliberately does not implement and refuses with a 400,
never silently. Every other test must
pass; ES's own ``skip``/``requires`` (versions, features, capabilities) skip as they would on a
cluster that lacks the feature.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.rag.conftest import Running
from tests.rag.es_standin import EsStandin
from tests.rag.es_yaml.runner import Cluster, Runner, Skip, YamlTest, load

BULK = "rest-api-spec/bulk/10_basic.yml::"
ALIASES = "index aliases (and require_alias, write indices) are not implemented; refused with 400"
UNSUPPORTED: dict[str, str] = {
    BULK + "When setting require_alias flag per request": ALIASES,
    BULK + "When setting require_alias flag": ALIASES,
    BULK + "Return item-level error when no write index defined for an alias": ALIASES,
    "ingest-common/ingest/270_set_processor.yml::Test set processor with index change and require_alias": (
        ALIASES + "; so is rerouting a document by setting _index in a pipeline"
    ),
    "rest-api-spec/search.vectors/40_knn_search.yml::kNN search in _knn_search endpoint": (
        "the _knn_search endpoint (deprecated in 8.4 for the search API's knn option) is not "
        "implemented; refused with 400"
    ),
    "rest-api-spec/search.vectors/40_knn_search.yml::kNN search with filter in _knn_search endpoint": (
        "the _knn_search endpoint (deprecated in 8.4 for the search API's knn option) is not "
        "implemented; refused with 400"
    ),
    "rest-api-spec/search.vectors/42_knn_search_flat.yml::Cosine similarity with indexed vector": (
        "script_score (Painless scripts) is not implemented; refused with 400"
    ),
    "rank-rrf/rrf/300_rrf_retriever.yml::rrf retriever with multiple standard retrievers and multiple knn "
    "retriever": (
        "its expected order rests on how ES breaks a score tie across the shards of a 5-shard index "
        "(query_vector [1.0] is as far from doc 1 as from doc 3); the stand-in has one shard and breaks "
        "ties by indexing order"
    ),
    "rest-api-spec/search.vectors/100_knn_nested_search.yml::nested kNN search inner_hits & profiling": (
        "search profiling (profile: true) is not implemented; refused with 400"
    ),
}
ROOT = Path(__file__).resolve().parents[2]
YAML_DIR = Path(os.environ.get("ES_YAML_DIR") or ROOT.parent / "shared" / "es-yaml")
TESTS = load(YAML_DIR) if YAML_DIR.is_dir() else []
MISSING = (
    f"Elasticsearch's YAML REST tests are not at {YAML_DIR}: set ES_YAML_DIR or provide "
    "shared/es-yaml (tests/rag/es_yaml/README.md lists the files)"
)


def test_every_unsupported_entry_names_a_test() -> None:
    if not TESTS:
        pytest.skip(MISSING)
    assert set(UNSUPPORTED) <= {t.id for t in TESTS}


@pytest.mark.skipif(not TESTS, reason=MISSING)
@pytest.mark.parametrize("case", TESTS, ids=[t.id for t in TESTS])
def test_standin(case: YamlTest, make_es: Callable[..., Running[EsStandin]]) -> None:
    if case.id in UNSUPPORTED:
        pytest.skip(f"stand-in: {UNSUPPORTED[case.id]}")
    es = make_es()
    cluster = Cluster.connect(es.url)
    try:
        Runner(cluster).run(case)
    except Skip as exc:
        pytest.skip(str(exc))
    finally:
        cluster.client.close()


@pytest.mark.es_real
@pytest.mark.skipif(not TESTS, reason=MISSING)
@pytest.mark.parametrize("case", TESTS, ids=[t.id for t in TESTS])
def test_real_cluster(case: YamlTest) -> None:
    url = os.environ.get("ES_URL")
    if not url:
        pytest.skip("ES_URL not set")
    cluster = Cluster.connect(url, os.environ.get("ES_API_KEY") or None)
    before = cluster.resources()
    try:
        Runner(cluster).run(case)
    except Skip as exc:
        pytest.skip(str(exc))
    finally:
        cluster.remove_new(before)
        cluster.client.close()
