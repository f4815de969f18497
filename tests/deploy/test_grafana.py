"""deploy/grafana/embed-server.json: valid dashboard JSON whose queries use only real metrics.

The allowed metric names are read off ``server.metrics`` (the one place metrics are
declared), expanded into the sample names Prometheus stores (``_total`` for counters,
``_bucket``/``_sum``/``_count`` for histograms), so a renamed metric breaks this test
instead of leaving an empty panel.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from server.metrics import LANES, REJECT_REASONS, STAGES, Metrics

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "embed-server.json"

FUNCTIONS = {
    "sum", "avg", "min", "max", "count", "rate", "irate", "increase", "histogram_quantile", "clamp_min",
    "clamp_max", "topk", "bottomk", "avg_over_time", "max_over_time", "label_values", "abs", "quantile",
}  # fmt: skip
KEYWORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
}
LABELS = {"le", "stage", "route", "status", "reason", "instance", "job", "lane"}
LABEL_VALUES = {"stage": set(STAGES), "reason": set(REJECT_REASONS), "lane": set(LANES)}
_MATCHER = re.compile(r'([A-Za-z_]\w*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')
_GROUPING = re.compile(r"\b(by|without|on|ignoring)\s*\(([^)]*)\)")
_IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*(\s*\()?")


def sample_names() -> set[str]:
    """Every series name the server's metrics produce in Prometheus' text format."""
    suffixes = {
        "counter": ("_total", "_created"),
        "gauge": ("",),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
    }
    names: set[str] = set()
    for family in Metrics.create().registry.collect():
        names.update(family.name + suffix for suffix in suffixes[family.type])
    return names


def problems(expr: str, metrics: set[str]) -> list[str]:
    """What is wrong with one PromQL expression: unknown metrics, functions, labels, values."""
    found: list[str] = []
    for label, _, value in _MATCHER.findall(expr):
        if label not in LABELS:
            found.append(f"unknown label {label}")
        elif label in LABEL_VALUES and not set(re.split(r"\|", value)) <= LABEL_VALUES[label]:
            found.append(f"{label}={value!r} is not one of {sorted(LABEL_VALUES[label])}")
    for _, names in _GROUPING.findall(expr):
        found += [
            f"unknown label {n.strip()}" for n in names.split(",") if n.strip() and n.strip() not in LABELS
        ]
    bare = _GROUPING.sub(" ", expr)
    bare = re.sub(r"\{[^}]*\}|\[[^\]]*\]|\"(?:[^\"\\]|\\.)*\"|\$\w+", " ", bare)
    bare = re.sub(r"(?<![\w.])\d+(\.\d+)?(e-?\d+)?", " ", bare)
    for match in _IDENT.finditer(bare):
        name = match.group(0).rstrip("( \t")
        if match.group(1):
            if name not in FUNCTIONS:
                found.append(f"unknown function {name}")
        elif name not in KEYWORDS and name not in LABELS | metrics:
            found.append(f"unknown metric {name}")
    return found


def expressions(dashboard: dict[str, Any]) -> list[str]:
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            exprs.append(variable["query"]["query"])
    return exprs


@pytest.fixture
def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def test_dashboard_is_well_formed(dashboard: dict[str, Any]) -> None:
    assert dashboard["uid"] == "embed-server" and dashboard["title"]
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert {"datasource", "job", "instance"} <= variables
    for panel in dashboard["panels"]:
        assert {"h", "w", "x", "y"} <= set(panel["gridPos"])
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}"
        assert panel["targets"], f"panel {panel['title']!r} has no query"
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids))
        for target in panel["targets"]:
            assert 'job=~"$job"' in target["expr"], f"{panel['title']}: queries must honour the job filter"


def test_every_query_uses_only_the_servers_metrics(dashboard: dict[str, Any]) -> None:
    metrics = sample_names()
    failures = {expr: problems(expr, metrics) for expr in expressions(dashboard)}
    assert not {expr: found for expr, found in failures.items() if found}


def test_the_checker_catches_mistakes() -> None:
    metrics = sample_names()
    assert problems('sum(rate(embed_requests_total{job=~"$job"}[$__rate_interval]))', metrics) == []
    assert problems("sum(rate(embed_request_total[5m]))", metrics) == ["unknown metric embed_request_total"]
    assert problems('rate(embed_rejected_total{reason="full"}[5m])', metrics)
    assert problems("sum by (pod) (embed_queue_requests)", metrics) == ["unknown label pod"]
    assert problems("histogram_quantil(0.9, embed_stage_seconds_bucket)", metrics)


def test_the_dashboard_covers_what_operators_watch(dashboard: dict[str, Any]) -> None:
    text = "\n".join(expressions(dashboard))
    assert re.search(
        r"histogram_quantile\(0\.99, sum by \(le, stage\) \(rate\(embed_stage_seconds_bucket", text
    )
    for needed in ("embed_texts_total", "embed_tokens_total", "embed_queue_requests", "embed_queue_tokens",
                   "embed_batch_size_bucket", "embed_batch_tokens_sum", "embed_padding_ratio_sum",
                   'embed_rejected_total{job=~"$job", instance=~"$instance", reason="queue_full"}',
                   "embed_inflight_requests", "embed_lane_seconds_bucket",
                   "embed_lane_texts_total"):  # fmt: skip
        assert needed in text, needed
    titles = {panel["title"] for panel in dashboard["panels"]}
    assert "429 rate (queue full)" in titles
