"""Manifest fields the gates and the server share: per-domain figures, the default prompt and
the machine the gates ran on (written, read back, refused when malformed)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from server.manifest import DomainParity, ManifestError, load, write
from tests.unit.test_manifest_invariance import _manifest, _variant, _written

PROSE = DomainParity(
    cos_mean=0.996,
    cos_min=0.99,
    recall_at_10=1.0,
    fp32_recall_at_10=0.95,
    top10_overlap=0.94,
    top10_overlap_min=0.7,
    queries=80,
)


def test_domains_default_prompt_and_machine_round_trip(tmp_path: Path) -> None:
    int8 = replace(_variant("int8", True, 2e-7), domains={"prose": PROSE})
    manifest = replace(
        _manifest(_variant("fp32", True, 2e-7), int8),
        prompts={"query": "query: "},
        default_prompt_name="query",
        gated_on={"cpu": "Some CPU", "isa": ["avx2", "amx_int8"], "onnxruntime": "1.32.0"},
    )
    loaded = load(_written(manifest, tmp_path))
    assert loaded.variants["int8"].domains == {"prose": PROSE}
    assert loaded.variants["fp32"].domains == {}
    assert loaded.default_prompt_name == "query"
    assert loaded.gated_on["isa"] == ["avx2", "amx_int8"]


def test_older_manifests_have_none_of_them(tmp_path: Path) -> None:
    write(_manifest(_variant("fp32", True)), tmp_path)
    data = json.loads((tmp_path / "manifest.json").read_text())
    for key in ("default_prompt_name", "gated_on"):
        del data[key]
    del data["variants"]["fp32"]["domains"]
    (tmp_path / "manifest.json").write_text(json.dumps(data))
    (tmp_path / "model.onnx").write_bytes(b"")
    loaded = load(tmp_path)
    assert (loaded.default_prompt_name, loaded.gated_on, loaded.variants["fp32"].domains) == (None, {}, {})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(default_prompt_name="passage"), "default_prompt_name 'passage'"),
        (lambda d: d.update(default_prompt_name=["query"]), "default_prompt_name"),
        (lambda d: d.update(gated_on="x86"), "gated_on must be an object"),
        (lambda d: d["variants"]["fp32"].update(domains=[1]), "domains must map"),
        (lambda d: d["variants"]["fp32"].update(domains={"prose": {"cos": 1}}), "domains is malformed"),
    ],
)
def test_malformed_fields_are_refused(tmp_path: Path, change, message: str) -> None:
    manifest = replace(_manifest(_variant("fp32", True)), prompts={"query": "query: "})
    write(manifest, tmp_path)
    data = json.loads((tmp_path / "manifest.json").read_text())
    change(data)
    (tmp_path / "manifest.json").write_text(json.dumps(data))
    (tmp_path / "model.onnx").write_bytes(b"")
    with pytest.raises(ManifestError, match=message):
        load(tmp_path)
