"""``--eval-data``: the user's held-out set read, scored at every width, and gated on."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from export import evalset
from export.errors import UsageError
from server.manifest import load as load_manifest
from tests.conftest import eval_pairs


def test_widths_are_the_full_width_then_the_narrower_ladder() -> None:
    assert evalset.widths(768) == (768, 512, 384, 256, 128, 64)
    assert evalset.widths(384) == (384, 256, 128, 64)
    assert evalset.widths(1000) == (1000, 768, 512, 384, 256, 128, 64)


def test_a_file_a_dataset_and_a_training_output_are_read(tmp_path: Path) -> None:
    pairs = eval_pairs(tmp_path / "pairs.jsonl", size=30)
    data = evalset.load(pairs)
    assert len(data.qrels.queries) == 30 and len(data.qrels.corpus) == 30
    assert data.describe()["sha256"] == data.sha256 and len(data.sha256) == 64
    for directory in (tmp_path / "dataset", tmp_path / "run" / "training"):
        directory.mkdir(parents=True)
        (directory / "heldout.jsonl").write_text(pairs.read_text())
    assert evalset.load(tmp_path / "dataset").qrels == data.qrels
    assert evalset.load(tmp_path / "run").name == "training/heldout.jsonl"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"query": "q"}\n', "passage"),
        ("not json\n", "not valid JSON"),
        ("", "holds no pairs"),
        ("".join(json.dumps({"query": f"q{i}", "passage": f"p{i}"}) + "\n" for i in range(5)), "at least 20"),
    ],
)
def test_bad_sets_are_usage_errors(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "heldout.jsonl"
    path.write_text(content)
    with pytest.raises(UsageError, match=message):
        evalset.load(path)
    with pytest.raises(UsageError, match="--eval-data"):
        evalset.load(tmp_path / "missing")


def test_scores_per_width_and_the_margin() -> None:
    rng = np.random.default_rng(0)
    passages = rng.normal(size=(50, 64)).astype(np.float32)
    relevant = [frozenset({i}) for i in range(50)]
    exact = evalset.score(passages.copy(), passages, relevant, 64)
    assert list(exact) == ["64"]
    assert exact["64"] == {"ndcg_at_10": 1.0, "recall_at_10": 1.0}
    noisy = (passages + 2.0 * rng.normal(size=passages.shape)).astype(np.float32)
    worse = evalset.score(noisy, passages, relevant, 64)
    assert worse["64"]["ndcg_at_10"] < 0.99
    assert evalset.judge(exact, exact, 0.0) == ()
    failures = evalset.judge(exact, worse, 0.01)
    assert len(failures) == 1 and failures[0].startswith("eval-data at 64 dims: nDCG@10")
    assert evalset.judge(exact, worse, 0.999) == ()


def test_the_export_scored_every_variant_on_the_users_set(minilm_model_dir: Path) -> None:
    manifest = load_manifest(minilm_model_dir)
    assert manifest.eval_data["queries"] == 60 and manifest.eval_data["margin"] == evalset.DEFAULT_MARGIN
    fp32, int8 = manifest.variants["fp32"].eval, manifest.variants["int8"].eval
    assert sorted(fp32, key=int) == sorted(int8, key=int) == ["64", "128", "256", "384"]
    assert fp32["384"]["ndcg_at_10"] > 0.5, "MiniLM finds most of the reference's sections"
    for width in fp32:
        assert int8[width]["ndcg_at_10"] >= fp32[width]["ndcg_at_10"] - evalset.DEFAULT_MARGIN
