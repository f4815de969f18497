"""Fixtures of the bench tests: the MiniLM test model and synthetic results."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bench import callers

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def bench_model_dir(request: pytest.FixtureRequest) -> Path:
    """The exported MiniLM test model (the project's shared fixture when there is one)."""
    try:
        path = Path(request.getfixturevalue("minilm_model_dir"))
    except pytest.FixtureLookupError:
        path = ROOT / "models" / "all-minilm-l6-v2"
    if not (path / "manifest.json").is_file():
        pytest.skip(f"{path} is not built; export the MiniLM test model first")
    return path


def _latency(ms: float) -> dict[str, float]:
    return {"count": 3, "mean_ms": ms, "p50_ms": ms, "p90_ms": ms * 2, "p99_ms": ms * 3, "max_ms": ms * 4}


def _phase(name: str, profile: str, **changes: Any) -> dict[str, Any]:
    phase: dict[str, Any] = {
        "name": name,
        "profile": profile,
        "mode": "closed",
        "concurrency": 4,
        "target_rate": None,
        "wall_s": 2.0,
        "requests": 10,
        "ok": 9,
        "statuses": {"200": 9, "429": 1},
        "texts_per_s": 90.0,
        "tokens_per_s": 9000.0,
        "requests_per_s": 4.5,
        "latency": _latency(10.0),
        "server_ms": _latency(8.0),
        "queue_ms": _latency(1.0),
        "late_sends": 0,
        "client_cpu_s": 0.2,
        "latencies_ms": [5.0, 10.0, 20.0],
        "errors": 1,
        "server_batches": None,
    }
    phase.update(changes)
    return phase


def _callers() -> dict[str, Any]:
    """The callers' section as bench.callers.profiles returns it, on made-up phases."""
    idle = _phase("query alone", "query", mode="open", target_rate=callers.QUERY_RATE)
    shapes = [*callers.ES_PIPELINE, callers.SEMANTIC_TEXT, callers.CLIENT_BULK]
    alone = [idle, *(_phase(s.name, "ingest", concurrency=s.concurrency) for s in shapes)]
    mixed = [
        {
            "shape": s.name,
            "query_under_ingest": _phase(
                f"query under {s.name}", "mixed", mode="open", latency=_latency(15.0)
            ),
            "ingest_with_queries": _phase(f"{s.name} with queries", "mixed", texts_per_s=81.0),
            "ingest_alone_texts_per_s": 90.0,
        }
        for s in callers.MIXED
    ]
    ratios = callers.ratios(idle, {p["name"]: p for p in alone}, mixed)
    ratios["burst_goodput_over_steady"] = 0.95
    burst = {
        "requests": 8,
        "request_timeout_s": 4.0,
        "wall_s": 2.0,
        "attempts": 11,
        "statuses": {"200": 8, "503": 3},
        "goodput_texts_per_s": 80.0,
    }
    return {
        "query_rate": callers.QUERY_RATE,
        "seconds": 20.0,
        "alone": alone,
        "mixed": mixed,
        "ratios": ratios,
        "burst": burst,
    }


@pytest.fixture
def make_results() -> Callable[..., dict[str, Any]]:
    """Factory of a complete results dict as suite.run returns it; keyword args replace sections."""

    def make(**changes: Any) -> dict[str, Any]:
        system = {
            "key": "st-b32",
            "label": "sentence-transformers",
            "role": "reference",
            "transport": "in-process",
            "variant": "fp32",
            "tokens_per_s": 1000.0,
            "texts_per_s": 10.0,
            "rounds_tokens_per_s": [1000.0],
            "ratio_to_reference": 1.0,
            "padding_ratio": 0.4,
            "passes": [],
            "agreement": {"cos_mean": 1.0, "cos_min": 1.0},
            "error": None,
            "roofline_share": 0.5,
        }
        ours = {
            **system,
            "key": "server-fp32",
            "label": "our server fp32",
            "role": "ours",
            "transport": "http",
            "tokens_per_s": 2000.0,
            "ratio_to_reference": 2.0,
            "padding_ratio": 0.1,
        }
        results: dict[str, Any] = {
            "schema": 1,
            "started": "2026-11-25T10:00:00+00:00",
            "finished": "2026-11-25T10:05:00+00:00",
            "duration_s": 300.0,
            "config": {"suite": "quick", "threads": 2},
            "machine": {
                "cpu": "Test CPU",
                "cores": 2,
                "cpu_flags": ["avx2"],
                "packages": {"numpy": "2"},
                "load_average": [0.1, 0.1, 0.1],
            },
            "load_average_end": [0.2, 0.2, 0.2],
            "model": {
                "name": "test-model",
                "dir": "models/test",
                "dims": 384,
                "max_length": 256,
                "variants": ["fp32"],
            },
            "corpus": {
                "source": "test",
                "digest": "abc",
                "passages": 10,
                "passage_tokens": {"median": 80, "p10": 30, "p90": 190, "max": 256},
                "query_tokens": {"median": 12},
            },
            "roofline": {
                "layers": 6,
                "hidden": 384,
                "intermediate": 1536,
                "linear_flops_per_token": 21.2e6,
                "flops_per_token_corpus": 22.5e6,
                "gemm": {"square_gflops": 300.0, "model_gflops": 250.0, "size": 2048.0},
                "peak_gflops": 300.0,
                "bound_tokens_per_s": 13333.0,
                "threads": 2,
            },
            "throughput": {
                "texts": 10,
                "tokens": 1000,
                "rounds": 1,
                "reference": "st-b32",
                "systems": [system, ours],
            },
            "http": {
                "variant": "fp32",
                "phases": [
                    _phase("ingest c=1", "ingest", concurrency=1),
                    _phase("ingest c=4", "ingest"),
                    _phase("length long", "length:long", bare_tokens_per_s=10000.0),
                    _phase("query c=1", "query", concurrency=1),
                    _phase("query open 50%", "query", mode="open", target_rate=20.0),
                ],
                "callers": _callers(),
            },
            "targets": [
                {
                    "name": "server fp32 / sentence-transformers",
                    "value": 2.0,
                    "target": 1.5,
                    "unit": "x",
                    "met": True,
                },
                {
                    "name": "single short text",
                    "value": [5.0, 20.0],
                    "target": None,
                    "unit": "ms",
                    "met": None,
                },
            ],
            "notes": ["a note"],
        }
        results.update(changes)
        return results

    return make
