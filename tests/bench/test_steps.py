"""The suite's pure steps with fake systems: rounds, the throughput table, the roofline, the
targets; and the bare loop's use of the server's own tokenizer, padding and pooling."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from bench.model import ModelDir, ModelError
from bench.progress import Progress
from bench.roofline import Shape
from bench.suite import Log, Roofline, measure_throughput, targets, throughput_table
from bench.systems import F32, Pass, Role, Transport, padding_ratio
from bench.systems.onnx import BareLoop, PlainOrt
from server import collate
from server.tokenizer import Tokenizer

MINILM = {"num_hidden_layers": 6, "hidden_size": 384, "intermediate_size": 1536}


class FakeSystem:
    transport: Transport = "in-process"
    variant = "fp32"

    def __init__(self, key: str, seconds: Sequence[float], role: Role = "peer") -> None:
        self.key = key
        self.label = f"fake {key}"
        self.role = role
        self._seconds = list(seconds)

    def run(self, texts: Sequence[str]) -> Pass:
        if not self._seconds:
            raise RuntimeError("out of passes")
        return Pass(self._seconds.pop(0), 0.25)

    def embed(self, texts: Sequence[str]) -> F32:
        return np.ones((len(texts), 4), dtype=np.float32)

    def close(self) -> None:
        return None


def _log() -> Log:
    return Log(Progress(io.StringIO()))


def test_rounds_rotate_and_a_failed_system_is_not_run_again() -> None:
    reference = FakeSystem("ref", [2.0, 1.0, 2.0], role="reference")
    ours = FakeSystem("ours", [1.0], role="ours")
    log = _log()
    measured = measure_throughput([reference, ours], ["a", "b"], 100, 3, log)
    assert measured.per_round == {"ref": [50.0, 100.0, 50.0], "ours": [100.0, None, None]}
    assert measured.errors == {"ours": "RuntimeError: out of passes"}
    assert log.notes == ["fake ours failed: RuntimeError: out of passes"]
    table = throughput_table([reference, ours], reference, measured, {"ours": {"cos_mean": 1.0}}, None)
    rows = {r["key"]: r for r in table["systems"]}
    assert rows["ref"]["tokens_per_s"] == 50.0 and rows["ref"]["ratio_to_reference"] == 1.0
    assert rows["ours"]["ratio_to_reference"] == 2.0
    assert rows["ours"]["texts_per_s"] == pytest.approx(100.0 * 2 / 100)
    assert rows["ours"]["error"] == "RuntimeError: out of passes"
    assert rows["ours"]["agreement"] == {"cos_mean": 1.0} and rows["ref"]["agreement"] is None
    assert (table["reference"], table["rounds"], table["texts"], table["tokens"]) == ("ref", 3, 2, 100)
    assert "roofline_share" not in rows["ours"]


def test_roofline_keeps_the_best_gemm_and_gives_shares() -> None:
    shape = Shape.from_config(MINILM)
    lengths = [10, 30]
    roof = Roofline(shape, shape.corpus_flops(lengths), sum(lengths), 2)
    roof = roof.with_gemm({"square_gflops": 100.0, "model_gflops": 80.0}, _log())
    roof = roof.with_gemm({"square_gflops": 50.0, "model_gflops": 60.0}, _log())
    assert roof.peak_flops == 100e9
    data = roof.to_json()
    assert data["gemm"] == {"square_gflops": 100.0, "model_gflops": 80.0} and len(data["gemm_runs"]) == 2
    assert data["bound_tokens_per_s"] == pytest.approx(100e9 / roof.flops_per_token)
    assert roof.share(data["bound_tokens_per_s"]) == pytest.approx(1.0)


def test_targets_compare_the_server_with_its_bare_loop_and_the_reference() -> None:
    rows = [
        {
            "key": "bare",
            "transport": "in-process",
            "role": "ours",
            "variant": "fp32",
            "rounds_tokens_per_s": [100.0],
        },
        {
            "key": "server-fp32",
            "transport": "http",
            "role": "ours",
            "variant": "fp32",
            "rounds_tokens_per_s": [95.0],
            "ratio_to_reference": 1.2,
        },
    ]

    class Bare:
        key = "bare"

    http = {"phases": [{"name": "query c=1", "latency": {"p50_ms": 3.0, "p99_ms": 9.0}}]}
    out = targets(["fp32"], {"fp32": Bare()}, {"systems": rows}, http)  # type: ignore[dict-item]
    assert [(t["value"], t["met"]) for t in out] == [(0.95, True), (1.2, False), ([3.0, 9.0], None)]


def test_padding_ratio_weights_the_servers_per_batch_ratio() -> None:
    batches = [[3, 5, 8], [8, 8], [], [0]]
    assert padding_ratio(batches) == pytest.approx(1 - (16 + 16) / (24 + 16))
    assert padding_ratio([[4, 2]]) == pytest.approx(collate.padding_ratio([4, 2]))
    assert padding_ratio([]) == 0.0


def test_unusable_model_directory_is_a_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"manifest\.json"):
        ModelDir.load(tmp_path)


@pytest.mark.slow
def test_bare_loop_runs_the_model_as_the_server_does(bench_model_dir: Path) -> None:
    model = ModelDir.load(bench_model_dir)
    texts = ["short", "a somewhat longer text about tokenizers and padding " * 3, "mid length text here"]
    server = Tokenizer(bench_model_dir, model.max_length)
    assert model.count_tokens(texts) == [len(ids) for ids in server.encode(texts).ids]
    bare = BareLoop(model, "fp32", 1, max_batch_tokens=64, max_batch_size=2)
    plain = PlainOrt(model, 1, batch_size=3)
    alone = np.concatenate([plain.embed([t]) for t in texts])
    np.testing.assert_allclose(bare.embed(texts), alone, atol=1e-5)
    np.testing.assert_allclose(plain.embed(texts), alone, atol=1e-5)
    result = bare.run(texts)
    assert result.seconds > 0 and 0 <= (result.padding_ratio or 0) < 1
