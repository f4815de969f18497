"""The whole recipe on a tiny random model: keyword queries, mined negatives, exact resume, the report."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from finetune import base, pairs
from finetune.trainer import Report, TrainConfig, train

from .test_trainer import jargon_pairs


@pytest.fixture(scope="module")
def recipe_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("recipe-data")
    items = jargon_pairs()
    pairs.write_pairs(root / pairs.TRAIN_FILE, items[:9])
    pairs.write_pairs(root / pairs.HELDOUT_FILE, items[9:])
    return root


def recipe_config(base_dir: Path, data: Path, out: Path) -> TrainConfig:
    return TrainConfig(
        base=base_dir,
        data=data,
        out=out,
        epochs=2,
        batch_size=4,
        lr=1e-3,
        max_seq_length=32,
        checkpoint_every=100,
        probe_pairs=8,
        negatives="both",
        hard_negatives=2,
        mine_batch_size=4,
        log_every=2,
    )


@pytest.fixture(scope="module")
def recipe_run(
    tiny_model_dir: Path, recipe_data: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[TrainConfig, Report]:
    config = recipe_config(tiny_model_dir, recipe_data, tmp_path_factory.mktemp("recipe") / "out")
    return config, train(replace(config, progress=False))


def test_training_pairs_get_keyword_queries_and_hard_negatives(
    recipe_run: tuple[TrainConfig, Report],
) -> None:
    config, report = recipe_run
    trained = pairs.read_pairs(config.out / "training" / pairs.TRAIN_FILE)
    assert report.query_styles == {"given": 9, "keywords": 9}
    assert report.train_pairs == 18 and report.heldout_pairs == 3
    for pair in trained:
        assert len(pair.negatives) == 2 and pair.passage not in pair.negatives
        same_passage = {p.passage for p in trained if p.group == pair.group}
        assert not same_passage & set(pair.negatives)  # never from the pair's own document
    heldout_passages = {p.passage for p in pairs.read_pairs(config.out / "training" / pairs.HELDOUT_FILE)}
    assert not heldout_passages & {n for p in trained for n in p.negatives}
    mining = report.negatives
    assert mining["source"] == "both" and mining["mined"] + mining["random"] == 36
    assert mining["model_passages"] == 9 and mining["skipped"]["positive"] >= 18
    saved = json.loads((config.out / "training" / "mining.json").read_text())
    assert saved == mining


def test_base_is_recorded_by_name_and_content_hash(
    recipe_run: tuple[TrainConfig, Report], tiny_model_dir: Path
) -> None:
    config, report = recipe_run
    identity = {"name": "tiny-bert", "sha256": base.content_sha256(tiny_model_dir)}
    assert report.base == identity
    saved_config = json.loads((config.out / "training" / "config.json").read_text())
    assert saved_config["base"] == identity
    for name in ("config.json", "report.json"):
        text = (config.out / "training" / name).read_text()
        assert str(tiny_model_dir) not in text and str(tiny_model_dir.parent.name) not in text


def test_resume_with_mined_negatives_reaches_the_same_weights(
    recipe_run: tuple[TrainConfig, Report], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reference_config, reference = recipe_run
    config = replace(reference_config, out=tmp_path / "out")

    def interrupt(step: int, loss: float) -> None:
        if step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(config, on_step=interrupt)
    err = capsys.readouterr().err
    assert "mining negatives: text 27/27 (100%)" in err  # 18 queries, 9 passages
    assert "fine-tune: step 2/" in err and "ETA" in err

    resumed = train(replace(config, resume=True))

    assert "fine-tune: step 5/" in capsys.readouterr().err  # resumed at 3, a line every 2 steps
    assert resumed.losses == pytest.approx(reference.losses, abs=1e-5)
    untimed = {k: v for k, v in resumed.negatives.items() if k != "seconds"}
    assert untimed == {k: v for k, v in reference.negatives.items() if k != "seconds"}
    trained = config.out / "training" / pairs.TRAIN_FILE
    assert trained.read_text() == (reference_config.out / "training" / pairs.TRAIN_FILE).read_text()
    got = load_file(config.out / "model.safetensors")
    want = load_file(reference_config.out / "model.safetensors")
    for name in want:
        torch.testing.assert_close(got[name], want[name], atol=1e-5, rtol=0, msg=name)


def test_resume_refuses_a_different_base(recipe_run: tuple[TrainConfig, Report], tmp_path: Path) -> None:
    config, _ = recipe_run
    other = tmp_path / "tiny-bert"
    other.mkdir()
    for path in config.base.rglob("*"):
        if path.is_file():
            target = other / path.relative_to(config.base)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
    (other / "config.json").write_text((other / "config.json").read_text().replace("}", ', "x": 1}', 1))
    # A finished run is refused anyway; an unfinished one with another base says why.
    (config.out / "training" / "report.json").rename(config.out / "training" / "report.keep")
    try:
        from finetune.errors import UsageError

        with pytest.raises(UsageError, match="base"):
            train(replace(config, base=other, resume=True))
    finally:
        (config.out / "training" / "report.keep").rename(config.out / "training" / "report.json")
