"""Batch invariance in the manifest (written, read, defaulted for old exports) and in the
choice of variant: ``auto`` never serves a variant that is not batch-invariant."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from server.manifest import Manifest, ManifestError, Parity, Variant, load, parse, write
from server.session import SessionLoadError, choose_variant

PARITY = Parity(cos_mean=0.995, cos_min=0.98, max_abs_diff=0.1, recall_at_10=1.0, texts=64)


def _variant(name: str, invariant: bool | None, diff: float | None = None) -> Variant:
    files = {"fp32": "model.onnx", "int8": "model.int8.onnx", "fp16": "model.fp16.onnx"}
    targets = {"fp32": "any", "int8": "cpu", "fp16": "gpu"}
    return Variant(
        name=name,  # type: ignore[arg-type]
        file=files[name],
        sha256="0" * 64,
        target=targets[name],  # type: ignore[arg-type]
        parity=PARITY,
        batch_invariant=invariant,
        batch_max_abs_diff=diff,
    )


def _manifest(*variants: Variant) -> Manifest:
    return Manifest(
        name="m",
        dims=4,
        max_length=16,
        pooling="mean",
        pooling_in_graph=True,
        normalize=True,
        inputs=("input_ids", "attention_mask"),
        output="sentence_embedding",
        variants={v.name: v for v in variants},
    )


def _written(manifest: Manifest, directory: Path) -> Path:
    write(manifest, directory)
    for variant in manifest.variants.values():
        (directory / variant.file).write_bytes(b"")
    return directory


def test_batch_invariance_round_trips(tmp_path: Path) -> None:
    manifest = _manifest(_variant("fp32", True, 2.4e-7), _variant("int8", False, 5.5e-3))
    loaded = load(_written(manifest, tmp_path))
    assert loaded.variants["fp32"].batch_invariant is True
    assert loaded.variants["fp32"].batch_max_abs_diff == pytest.approx(2.4e-7)
    assert loaded.variants["int8"].batch_invariant is False
    assert loaded.variants["int8"].batch_max_abs_diff == pytest.approx(5.5e-3)
    assert loaded == manifest


def _old_manifest_data() -> dict[str, Any]:
    """A manifest as exporters wrote it before they measured batch invariance."""
    data = _manifest(_variant("fp32", None), _variant("int8", None), _variant("fp16", None)).to_json()
    for variant in data["variants"].values():
        del variant["batch_invariant"], variant["batch_max_abs_diff"]
    return data


def test_old_manifests_read_int8_as_not_invariant_and_the_rest_as_unknown() -> None:
    variants = parse(_old_manifest_data()).variants
    assert variants["int8"].batch_invariant is False
    assert variants["fp32"].batch_invariant is None
    assert variants["fp16"].batch_invariant is None
    assert all(v.batch_max_abs_diff is None for v in variants.values())


@pytest.mark.parametrize(
    ("field", "value"), [("batch_invariant", "yes"), ("batch_invariant", 1), ("batch_max_abs_diff", "small")]
)
def test_malformed_invariance_fields_are_refused(field: str, value: object) -> None:
    data = _old_manifest_data()
    data["variants"]["int8"][field] = value
    with pytest.raises(ManifestError, match=field):
        parse(data)


def test_auto_on_cpu_serves_an_invariant_int8() -> None:
    manifest = _manifest(_variant("fp32", True), _variant("int8", True))
    assert choose_variant(manifest, "auto", on_gpu=False).name == "int8"


def test_auto_on_cpu_skips_an_int8_that_is_not_invariant() -> None:
    manifest = _manifest(_variant("fp32", True), _variant("int8", False, 5.5e-3))
    assert choose_variant(manifest, "auto", on_gpu=False).name == "fp32"


def test_auto_skips_an_old_manifests_int8() -> None:
    manifest = parse(_old_manifest_data())
    assert choose_variant(manifest, "auto", on_gpu=False).name == "fp32"


def test_auto_on_gpu_skips_an_fp16_that_is_not_invariant() -> None:
    manifest = _manifest(_variant("fp32", True), _variant("fp16", False, 1e-3))
    assert choose_variant(manifest, "auto", on_gpu=True).name == "fp32"
    invariant = _manifest(_variant("fp32", True), _variant("fp16", True, 0.0))
    assert choose_variant(invariant, "auto", on_gpu=True).name == "fp16"


def test_auto_refuses_when_no_variant_is_invariant() -> None:
    manifest = _manifest(_variant("int8", False, 5.5e-3))
    with pytest.raises(SessionLoadError, match="--variant"):
        choose_variant(manifest, "auto", on_gpu=False)


def test_a_named_variant_that_is_not_invariant_is_served_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    manifest = _manifest(_variant("fp32", True), _variant("int8", False, 5.5e-3))
    with caplog.at_level(logging.WARNING, logger="server.session"):
        assert choose_variant(manifest, "int8", on_gpu=False).name == "int8"
    assert "not batch-invariant" in caplog.text and "5.5e-03" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="server.session"):
        assert choose_variant(manifest, "fp32", on_gpu=False).name == "fp32"
    assert not caplog.records


def test_manifest_json_carries_the_fields(tmp_path: Path) -> None:
    write(_manifest(_variant("int8", True, 0.0)), tmp_path)
    raw = json.loads((tmp_path / "manifest.json").read_text())
    assert raw["variants"]["int8"]["batch_invariant"] is True
    assert raw["variants"]["int8"]["batch_max_abs_diff"] == 0.0
