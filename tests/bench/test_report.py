from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.plots import draw_all
from bench.report import read_json, render, write_json

Results = Callable[..., dict[str, Any]]


def test_summary_has_every_section(make_results: Results) -> None:
    text = render(make_results(), ["peers.png"])
    for heading in (
        "## Targets",
        "## Throughput",
        "## Roofline",
        "## Server over HTTP",
        "## Callers (20 s per phase)",
        "## Plots",
        "## Notes",
    ):
        assert heading in text
    assert "| our server fp32 | 2,000 | 10.0 | 2.00 | 10% |" in text
    assert "5.0 / 20.0" in text
    assert "429: 1" in text
    assert "![peers](peers.png)" in text
    assert "| es-pipeline c=32 | 15.0 / 45.0 | 1.50 |" in text  # query p50 / p99 under it, p99 / idle
    assert "all answered in 2.0 s after 11 attempts (200: 8, 503: 3)" in text


def test_summary_leaves_out_what_was_not_measured(make_results: Results) -> None:
    results = make_results()
    for key in ("roofline", "throughput", "http", "targets", "notes"):
        del results[key]
    text = render(results)
    assert "## Throughput" not in text and "## Roofline" not in text and "## Server" not in text
    assert text.startswith("# Benchmark: test-model")


def test_failed_system_is_shown_not_hidden(make_results: Results) -> None:
    results = make_results()
    row = results["throughput"]["systems"][1]
    row.update(tokens_per_s=None, texts_per_s=None, ratio_to_reference=None, error="PassFailed: boom")
    text = render(results)
    assert "**failed: PassFailed: boom**" in text


def test_json_round_trip(make_results: Results, tmp_path: Path) -> None:
    results = make_results()
    assert read_json(write_json(results, tmp_path / "r.json")) == results


def test_plots_are_written(make_results: Results, tmp_path: Path) -> None:
    files = draw_all(make_results(), tmp_path)
    assert sorted(f.name for f in files) == ["latency_cdf.png", "peers.png", "throughput_vs_concurrency.png"]
    assert all(f.read_bytes()[:4] == b"\x89PNG" for f in files)


def test_no_plot_without_data(make_results: Results, tmp_path: Path) -> None:
    assert draw_all(make_results(http={}, throughput={}), tmp_path) == []
