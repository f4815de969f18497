"""The HTTP evaluation path against the real `python -m server` on an exported model.

Skipped unless the server package and an exported MiniLM directory (``models/all-minilm-l6-v2``,
built by the model tests or ``python -m export``) are present. Through the server the fp32
ONNX variant must rank exactly as the PyTorch checkpoint it was exported from.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from finetune import evaluation, pairs
from finetune.evaluation import EvalConfig, System
from finetune.pairs import Pair

ROOT = Path(__file__).resolve().parents[2]
EXPORTED = ROOT / "models" / "all-minilm-l6-v2"


@pytest.fixture
def exported_minilm(minilm_dir: Path) -> Path:
    if not (ROOT / "server" / "app.py").is_file():
        pytest.skip("server/app.py is missing: the embedding server is not in this checkout")
    manifest = EXPORTED / "manifest.json"
    if not manifest.is_file():
        pytest.skip(f"no exported MiniLM at {EXPORTED}; run `python -m export {minilm_dir} {EXPORTED}`")
    source = json.loads(manifest.read_text()).get("source", {})
    if Path(str(source.get("path", ""))).resolve() != minilm_dir.resolve():
        pytest.skip(f"{EXPORTED} was not exported from {minilm_dir}")
    return EXPORTED


def test_onnx_through_the_server_ranks_like_the_checkpoint(
    exported_minilm: Path, minilm_dir: Path, tmp_path: Path, make_pairs: Callable[..., list[Pair]]
) -> None:
    heldout = tmp_path / "heldout.jsonl"
    pairs.write_pairs(heldout, make_pairs(16))
    config = EvalConfig(
        data=heldout,
        systems=(
            System("torch", "checkpoint", str(minilm_dir)),
            System("onnx", "onnx", str(exported_minilm), "fp32"),
        ),
        server_args=("--intra-op-threads", "1"),
        startup_timeout=180,
    )

    torch_row, onnx_row = evaluation.evaluate(config)["results"]

    assert onnx_row["dims"] == torch_row["dims"] == 384
    assert onnx_row["metrics"] == pytest.approx(torch_row["metrics"], abs=1e-4)
    assert torch_row["metrics"]["recall@1"] >= 0.75
