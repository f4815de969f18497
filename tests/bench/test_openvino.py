"""The OpenVINO peer: skipped cleanly without openvino, and the same bare loop with it."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from bench import suite
from bench.model import ModelDir
from bench.progress import Progress
from bench.settings import SettingsError, from_sources
from bench.systems import openvino
from bench.systems.onnx import BareLoop


def _log() -> suite.Log:
    return suite.Log(Progress(io.StringIO()))


def _no_openvino() -> None:
    raise ImportError("No module named 'openvino'")


def test_without_openvino_the_peer_is_skipped_with_a_note(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(openvino, "_openvino", _no_openvino)
    assert openvino.available() is None
    log = _log()
    model = ModelDir.__new__(ModelDir)  # never read: nothing is loaded without openvino
    assert suite._openvino(model, ["fp32", "int8"], 2, 2048, 64, log) == []
    assert len(log.notes) == 1 and "openvino is not installed" in log.notes[0]


def test_openvino_is_a_peer_choice() -> None:
    assert from_sources(["--peers", "st,openvino"], env={}).preset.peers == ("st", "openvino")
    with pytest.raises(SettingsError, match="openvinox"):
        from_sources(["--peers", "openvinox"], env={})


def _names(modes: list[openvino.Mode]) -> list[str]:
    return [m.name for m in modes]


def test_modes_follow_the_variants_and_native_bf16() -> None:
    names = _names
    assert names(openvino.modes(["fp32", "int8"], bf16=False)) == ["fp32", "int8"]
    assert names(openvino.modes(["fp32", "int8"], bf16=True)) == ["fp32", "bf16", "int8"]
    assert names(openvino.modes(["int8"], bf16=True)) == ["int8"]
    assert [(m.variant, m.precision) for m in openvino.modes(["fp32"], bf16=True)] == [
        ("fp32", "f32"),
        ("fp32", "bf16"),
    ]


def test_compile_config_states_precision_and_threads_explicitly() -> None:
    config = openvino.compile_config("f32", 3)
    assert config["INFERENCE_PRECISION_HINT"] == "f32"
    assert config["INFERENCE_NUM_THREADS"] == "3"
    assert config["NUM_STREAMS"] == "1"


@pytest.mark.slow
def test_openvino_fp32_runs_the_same_file_and_batches_as_the_bare_loop(bench_model_dir: Path) -> None:
    pytest.importorskip("openvino")
    model = ModelDir.load(bench_model_dir)
    texts = ["short", "a somewhat longer text about tokenizers and padding " * 3, "mid length text here"]
    fp32 = openvino.MODES[0]
    ov = openvino.OpenVinoLoop(model, fp32, 1, max_batch_tokens=64, max_batch_size=2)
    assert ov.key == "openvino-fp32-t64-b2" and ov.variant == "fp32" and "f32" in ov.label
    bare = BareLoop(model, "fp32", 1, max_batch_tokens=64, max_batch_size=2)
    vectors = ov.embed(texts)
    np.testing.assert_allclose(vectors, bare.embed(texts), atol=1e-5)
    alone = np.concatenate([ov.embed([t]) for t in texts])
    np.testing.assert_allclose(vectors, alone, atol=1e-5)
    result = ov.run(texts)
    assert result.seconds > 0 and 0 <= (result.padding_ratio or 0) < 1
