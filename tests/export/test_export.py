"""The exported MiniLM model directory (built once per source tree by the ``minilm_model_dir`` fixture)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from export import corpus, precision
from export.parity import (
    BATCH_MAX_ABS_DIFF,
    FP32_MAX_ABS_DIFF,
    FP32_MIN_COSINE,
    REDUCED_MEAN_COSINE,
    REDUCED_RECALL_AT_10,
    OnnxEncoder,
    batch_variation,
    judge,
)
from server.manifest import load
from server.tokenizer import Tokenizer


def test_manifest_describes_the_model(minilm_model_dir: Path, minilm_checkpoint: Path) -> None:
    manifest = load(minilm_model_dir, verify_hashes=True)
    assert manifest.name == "all-minilm-l6-v2"
    assert (manifest.dims, manifest.max_length, manifest.pooling) == (384, 256, "mean")
    assert manifest.pooling_in_graph and manifest.normalize
    assert manifest.inputs == ("input_ids", "attention_mask", "token_type_ids")
    assert manifest.output == "sentence_embedding"
    assert set(manifest.variants) == {"fp32", "int8"}
    assert manifest.source["model_type"] == "bert"
    assert manifest.source["architecture"] == "BertModel"
    assert manifest.source["name"] == minilm_checkpoint.resolve().name
    raw = json.loads((minilm_model_dir / "manifest.json").read_text())
    assert "path" not in raw["source"] and str(minilm_checkpoint.resolve()) not in json.dumps(raw)
    assert len(manifest.source["sha256"]) == 64
    assert {"torch", "transformers", "onnx", "onnxruntime", "export"} <= set(manifest.versions)
    assert manifest.created


def test_variants_passed_their_gates(minilm_model_dir: Path) -> None:
    variants = load(minilm_model_dir).variants
    fp32 = variants["fp32"]
    assert fp32.parity.cos_min >= FP32_MIN_COSINE
    assert fp32.parity.max_abs_diff <= FP32_MAX_ABS_DIFF
    assert fp32.parity.recall_at_10 == 1.0
    assert fp32.parity.texts == 64
    assert (fp32.target, fp32.file) == ("any", "model.onnx")
    int8 = variants["int8"]
    assert int8.parity.cos_mean >= REDUCED_MEAN_COSINE
    assert int8.parity.recall_at_10 >= REDUCED_RECALL_AT_10
    assert (int8.target, int8.file) == ("cpu", "model.int8.onnx")
    assert int8.size_bytes < fp32.size_bytes
    assert "int8" in int8.notes


def test_variants_are_batch_invariant(minilm_model_dir: Path) -> None:
    variants = load(minilm_model_dir).variants
    for variant in variants.values():
        assert variant.batch_invariant is True, variant.name
        assert variant.batch_max_abs_diff is not None
        assert 0.0 <= variant.batch_max_abs_diff <= BATCH_MAX_ABS_DIFF
    assert variants["int8"].notes.startswith("static int8")


def test_dynamic_int8_of_the_same_graph_fails_the_invariance_gate(
    minilm_model_dir: Path, tmp_path: Path
) -> None:
    """What the static int8 replaced: per-batch activation scales make a text's vector
    depend on its batch mates, and the gate of a variant built to be invariant refuses it."""
    manifest = load(minilm_model_dir)
    tokenizer = Tokenizer(minilm_model_dir, manifest.max_length)
    fp32 = minilm_model_dir / manifest.variants["fp32"].file
    plan = next(p for p in precision.int8_plans(fp32) if not p.static)
    dynamic = tmp_path / "dynamic.onnx"
    precision.quantize_dynamic_int8(fp32, dynamic, plan)
    texts = corpus.invariance_texts()
    diff = batch_variation(OnnxEncoder(dynamic, tokenizer, manifest.inputs), texts)
    assert diff > BATCH_MAX_ABS_DIFF
    vectors = OnnxEncoder(fp32, tokenizer, manifest.inputs)(texts)
    verdict = judge("int8", vectors, vectors, recall=1.0, batch_diff=diff)
    assert not verdict.passed and "not batch-invariant" in verdict.failures[0]
    static = OnnxEncoder(minilm_model_dir / manifest.variants["int8"].file, tokenizer, manifest.inputs)
    assert batch_variation(static, texts) <= BATCH_MAX_ABS_DIFF


def test_fusions_recorded_match_the_graph(minilm_model_dir: Path) -> None:
    fp32 = load(minilm_model_dir).variants["fp32"]
    ops: dict[str, int] = {}
    for node in onnx.load(str(minilm_model_dir / fp32.file), load_external_data=False).graph.node:
        ops[node.op_type] = ops.get(node.op_type, 0) + 1
    if fp32.fusions:  # the fused graph shipped
        assert fp32.fusions["SkipLayerNormalization"] == 12
        for op, count in fp32.fusions.items():
            assert ops.get(op) == count
        assert "fused" in fp32.notes
    else:
        assert "plain" in fp32.notes


def test_tokenizer_json_truncates_to_max_length(minilm_model_dir: Path) -> None:
    data = json.loads((minilm_model_dir / "tokenizer.json").read_text())
    assert data["truncation"]["max_length"] == 256
    assert data["padding"]["strategy"] == "BatchLongest"
    assert data["padding"]["pad_id"] == 0
    for name in ("tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        assert (minilm_model_dir / name).is_file()


@pytest.mark.parametrize("variant", ["fp32", "int8"])
def test_variant_matches_sentence_transformers(
    minilm_model_dir: Path, minilm_checkpoint: Path, variant: str
) -> None:
    """An independent check of the gate: the shipped file against ST's own normalised output,
    on the gate's texts and on three others (a mean over three texts is not the gate)."""
    from sentence_transformers import SentenceTransformer

    manifest = load(minilm_model_dir)
    others = ["how big", "Der schnelle braune Fuchs.", "word " * 400]
    texts = [*corpus.parity_texts(), *others]
    encoder = OnnxEncoder(
        minilm_model_dir / manifest.variants[variant].file,
        Tokenizer(minilm_model_dir, manifest.max_length),
        manifest.inputs,
    )
    ours = encoder(texts)
    ours /= np.linalg.norm(ours, axis=1, keepdims=True)
    reference = SentenceTransformer(str(minilm_checkpoint), device="cpu").encode(
        texts, normalize_embeddings=True
    )
    cosines = (ours * reference).sum(axis=1)
    if variant == "fp32":
        assert cosines.min() >= FP32_MIN_COSINE
    else:
        assert cosines[: -len(others)].mean() >= REDUCED_MEAN_COSINE
        assert cosines[-len(others) :].min() >= 0.98


def test_compare_prints_the_figures_of_each_graph(
    minilm_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from export.compare import main

    extra = minilm_model_dir / "model.onnx"
    assert main([str(minilm_model_dir), str(extra), "--texts", "8", "--rounds", "1", "--threads", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == ["fp32", "int8", str(extra)]
    assert "batch variation" in lines[1] and "8 passages in" in lines[1] and "1 threads" in lines[1]
    assert "cos to fp32 mean 1.0000" in lines[2]
    assert main([str(minilm_model_dir.parent / "missing")]) == 2


def test_without_a_static_plan_the_dynamic_int8_ships_marked_not_invariant(
    minilm_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fallback: a dynamic int8 that passes parity is written with ``batch_invariant``
    false, and the server's ``auto`` then serves fp32 on CPU."""
    import io

    from export.pipeline import ExportOptions, Progress, export_model
    from server.session import choose_variant

    every_plan = precision.int8_plans
    monkeypatch.setattr(
        precision, "int8_plans", lambda path, peaks=None: [p for p in every_plan(path, peaks) if not p.static]
    )
    log = io.StringIO()
    options = ExportOptions(variants=("fp32", "int8"), required=frozenset({"fp32", "int8"}))
    manifest = export_model(minilm_checkpoint, tmp_path / "dynamic", options, Progress(log))
    int8 = manifest.variants["int8"]
    assert int8.notes.startswith("dynamic int8")
    assert int8.batch_invariant is False
    assert int8.batch_max_abs_diff is not None and int8.batch_max_abs_diff > BATCH_MAX_ABS_DIFF
    assert manifest.variants["fp32"].batch_invariant is True
    assert "NOT batch-invariant" in log.getvalue()
    assert load(tmp_path / "dynamic") == manifest
    assert choose_variant(manifest, "auto", on_gpu=False).name == "fp32"
