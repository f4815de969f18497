"""End-to-end exports of tiny random-weight models of every supported family."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np
import onnx
import pytest

from export import parity
from export.errors import ParityError
from export.pipeline import ExportOptions, Progress, export_model
from server.manifest import load
from server.tokenizer import Tokenizer
from tests.export.conftest import TinyCheckpoint

# Short inputs keep these exports quick; truncation is exercised all the same.
MAX_LENGTH = 64


@pytest.mark.parametrize(
    ("family", "inputs"),
    [
        ("bert", ("input_ids", "attention_mask", "token_type_ids")),
        ("xlm-roberta", ("input_ids", "attention_mask")),
        ("mpnet", ("input_ids", "attention_mask")),
    ],
)
def test_family_exports_at_fp32_parity(
    tiny_checkpoint: TinyCheckpoint, tmp_path: Path, family: str, inputs: tuple[str, ...]
) -> None:
    source = tiny_checkpoint(family)
    out = tmp_path / "out" / family
    log = io.StringIO()
    manifest = export_model(
        source, out, ExportOptions(variants=("fp32",), max_length=MAX_LENGTH), Progress(log)
    )
    assert manifest.inputs == inputs
    assert manifest.dims == 32
    assert manifest.pooling == "mean"
    assert manifest.variants["fp32"].parity.cos_min >= parity.FP32_MIN_COSINE
    assert manifest.source["reference"].startswith("transformers")
    assert load(out, verify_hashes=True) == manifest
    for stage in ("load", "export", "optimise", "parity", "write"):
        assert re.search(rf"{stage} \[ *\d+ s\]: done in", log.getvalue()), stage
    assert "fp32 gate: about" in log.getvalue()
    assert sorted(p.name for p in out.parent.iterdir()) == [family]


def test_pooling_from_config_and_overridden(tiny_checkpoint: TinyCheckpoint, tmp_path: Path) -> None:
    source = tiny_checkpoint("bert", sentence_transformers=True, pooling="cls")
    quiet = Progress(io.StringIO())
    cls = export_model(source, tmp_path / "cls", ExportOptions(variants=("fp32",)), quiet)
    assert (cls.pooling, cls.max_length) == ("cls", 128)
    assert cls.source["reference"].startswith("sentence-transformers")
    assert cls.variants["fp32"].parity.max_abs_diff <= parity.FP32_MAX_ABS_DIFF
    options = ExportOptions(variants=("fp32",), pooling="mean", max_length=MAX_LENGTH)
    mean = export_model(source, tmp_path / "mean", options, quiet)
    assert (mean.pooling, mean.max_length) == ("mean", MAX_LENGTH)
    assert mean.source["reference"].startswith("transformers")
    text = ["pooling decides which vector comes out"]
    vectors = [
        parity.OnnxEncoder(tmp_path / name / "model.onnx", Tokenizer(tmp_path / name, 64), m.inputs)(text)
        for name, m in (("mean", mean), ("cls", cls))
    ]
    assert not np.allclose(vectors[0], vectors[1])


def test_failed_fp32_gate_leaves_nothing_and_keeps_the_old_directory(
    tiny_checkpoint: TinyCheckpoint, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tiny_checkpoint("bert")
    out = tmp_path / "models" / "tiny"
    out.mkdir(parents=True)
    (out / "manifest.json").write_text(json.dumps({"old": True}))
    real = parity.reference_encoder

    def skewed(*args: object, **kwargs: object) -> tuple[parity.Encode, str]:
        encode, description = real(*args, **kwargs)  # type: ignore[arg-type]
        return (lambda texts: encode(texts) + np.float32(0.01)), description

    monkeypatch.setattr(parity, "reference_encoder", skewed)
    with pytest.raises(ParityError, match="max abs diff"):
        options = ExportOptions(variants=("fp32",), force=True, max_length=MAX_LENGTH)
        export_model(source, out, options, Progress(io.StringIO()))
    assert json.loads((out / "manifest.json").read_text()) == {"old": True}
    assert sorted(p.name for p in out.parent.iterdir()) == ["tiny"]


def test_fp16_variant_is_gated_on_the_cpu(tiny_checkpoint: TinyCheckpoint, tmp_path: Path) -> None:
    source = tiny_checkpoint("bert")
    options = ExportOptions(
        variants=("fp32", "fp16"), required=frozenset({"fp32", "fp16"}), max_length=MAX_LENGTH
    )
    manifest = export_model(source, tmp_path / "fp16", options, Progress(io.StringIO()))
    fp16 = manifest.variants["fp16"]
    assert (fp16.file, fp16.target) == ("model.fp16.onnx", "gpu")
    assert fp16.parity.cos_mean >= parity.REDUCED_MEAN_COSINE
    assert fp16.parity.recall_at_10 >= parity.REDUCED_RECALL_AT_10
    assert "gated on the CPU" in fp16.notes
    graph = onnx.load(str(tmp_path / "fp16" / fp16.file))
    assert graph.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.INT64
    assert graph.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert any(i.data_type == onnx.TensorProto.FLOAT16 for i in graph.graph.initializer)
