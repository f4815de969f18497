"""A tiny run of the whole quick-suite machinery on the MiniLM test model: our server as a
subprocess, the engine in-process, the bare loop and the plain ORT peer; checks the files
and the fields of the results, and that the numbers are sane (not how fast they are)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import callers
from bench.__main__ import execute, main
from bench.corpus import from_stdlib
from bench.progress import Progress
from bench.report import read_json
from bench.schedule import poisson_arrivals
from bench.settings import PRESETS, BenchSettings

TINY = PRESETS["quick"].__class__(
    passages=12,
    queries=8,
    rounds=1,
    ingest_concurrency=2,
    concurrency=(1, 2),
    query_concurrency=(1,),
    open_loads=(0.5,),
    phase_s=0.3,
    length_texts=4,
    batch_sizes=(4,),
    sweep_passages=8,
    peers=("ort",),
    per_request=4,
    callers_s=0.5,
)
# The open-loop phases send at rate max(0.5 x measured capacity, 0.5/s) ("query open 50%",
# seed + 0). A Poisson schedule's first arrival comes sooner the higher the rate, so with this
# seed it sends at least one query within TINY.phase_s at its floor rate, whatever capacity
# this machine measures. The callers' open loops always send at least one request.
SEED = 139


@pytest.mark.slow
def test_tiny_run_writes_sane_results(bench_model_dir: Path, minilm_checkpoint: Path, tmp_path: Path) -> None:
    corpus = from_stdlib(passages=200, queries=20, modules=("textwrap", "heapq", "shlex", "fractions"))
    lines = [{"text": t} for t in corpus.passages] + [{"text": q, "kind": "query"} for q in corpus.queries]
    path = tmp_path / "corpus.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines))
    assert poisson_arrivals(0.5, TINY.phase_s, SEED)
    settings = BenchSettings(
        seed=SEED,
        model=bench_model_dir,
        checkpoint=minilm_checkpoint,
        sizes=TINY,
        out=tmp_path,
        variants=("fp32",),
        corpus=path,
    )
    files = execute(settings, Progress(quiet=True))
    assert {f.name for f in files} >= {"results.json", "summary.md", "throughput_vs_concurrency.png"}
    results = read_json(tmp_path / "results.json")
    assert results["model"]["name"] == "all-minilm-l6-v2"
    assert results["machine"]["cores"] >= 1 and results["machine"]["packages"]["onnxruntime"]
    assert results["corpus"]["passages"] == 12
    systems = {s["key"]: s for s in results["throughput"]["systems"]}
    assert set(systems) == {"ort-fp32-b32", "bare-fp32-t2048-b64", "engine-fp32-t2048-b64", "server-fp32"}
    for row in systems.values():
        assert row["error"] is None
        assert row["tokens_per_s"] > 0
        assert 0 <= row["padding_ratio"] < 1
        assert row["ratio_to_reference"] is None
    assert systems["bare-fp32-t2048-b64"]["padding_ratio"] <= systems["ort-fp32-b32"]["padding_ratio"]
    assert results["roofline"]["bound_tokens_per_s"] > 0
    assert 0 < systems["server-fp32"]["roofline_share"] < 1
    assert {r["system"] for r in results["batch_sweep"]["rows"]} == {"bare", "engine", "ort-corpus-order"}
    phases = {p["name"]: p for p in results["http"]["phases"]}
    assert {"ingest c=1", "ingest c=2", "length short", "length long", "query c=1", "query open 50%"} <= set(
        phases
    )
    for phase in phases.values():
        assert phase["ok"] == phase["requests"] > 0
        assert phase["latency"]["p50_ms"] <= phase["latency"]["p99_ms"] <= phase["latency"]["max_ms"]
        assert phase["server_ms"]["count"] == phase["ok"]
    assert phases["ingest c=2"]["server_batches"]["batches"] >= 1
    c = results["http"]["callers"]
    assert [p["name"] for p in c["alone"]][:4] == ["query alone", *(s.name for s in callers.ES_PIPELINE)]
    for phase in c["alone"]:
        assert phase["ok"] == phase["requests"] > 0, phase["name"]
    assert [m["shape"] for m in c["mixed"]] == [s.name for s in callers.MIXED]
    for m in c["mixed"]:
        assert m["query_under_ingest"]["ok"] == m["query_under_ingest"]["requests"] > 0
        assert m["ingest_with_queries"]["ok"] > 0
    assert set(c["ratios"]["isolation"]) == {s.name for s in callers.MIXED}
    assert all(r > 0 for r in c["ratios"]["one_chunk_over_twenty"].values())
    names = [t["name"] for t in results["targets"]]
    assert "server fp32 at saturation / its bare engine loop (median of per-round ratios)" in names
    assert "## Server over HTTP (fp32)" in (tmp_path / "summary.md").read_text()
    assert "## Callers" in (tmp_path / "summary.md").read_text()


def test_unusable_model_dir_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--model", str(tmp_path), "--out", str(tmp_path / "out"), "--peers", "none"]) == 2
    assert "manifest.json" in capsys.readouterr().err


def test_bad_flag_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--model", "x", "--peers", "bogus"]) == 2
    assert "unknown bogus" in capsys.readouterr().err
