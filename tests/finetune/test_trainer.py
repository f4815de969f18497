"""Tiny real training runs on the MiniLM checkpoint: the loss falls, the output loads, resume is exact."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from finetune import pairs
from finetune.__main__ import main
from finetune.errors import UsageError
from finetune.pairs import Pair
from finetune.trainer import Report, TrainConfig, load_model, plan_batches, train

TOPICS = [
    "Invoices are issued on the first working day of every month.",
    "The staging cluster is rebuilt from scratch every Sunday night.",
    "Refunds above five hundred euros need approval from finance.",
    "Badge access to the server room is logged and reviewed weekly.",
    "Customer data is kept in the Frankfurt region and never leaves it.",
    "The on-call engineer answers pages within fifteen minutes.",
    "Release branches are cut every second Wednesday at noon.",
    "Laptops are replaced after four years or on hardware failure.",
    "Expense reports must include a scanned receipt for every item.",
    "Production database backups are tested by restoring them monthly.",
    "New hires get read-only access during their first week.",
    "Holiday requests are approved by the team lead in the HR portal.",
]


JARGON = [
    "quorvex", "blintaph", "zermock", "plovine", "traskel", "munderoy",
    "fizzlon", "gravotch", "snirple", "wombrix", "kelptor", "draxnel",
]  # fmt: skip


def jargon_pairs() -> list[Pair]:
    """Queries in made-up internal jargon: the base model cannot know which passage answers them."""
    return [
        Pair(f"what does the {word} rule say", text, f"g{i}")
        for i, (word, text) in enumerate(zip(JARGON, TOPICS, strict=True))
    ]


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data")
    items = jargon_pairs()
    pairs.write_pairs(root / pairs.TRAIN_FILE, items[:8])
    pairs.write_pairs(root / pairs.HELDOUT_FILE, items[8:])
    return root


def tiny_config(base: Path, data: Path, out: Path) -> TrainConfig:
    return TrainConfig(
        base=base,
        data=data,
        out=out,
        epochs=2,
        batch_size=4,
        lr=5e-4,
        max_seq_length=32,
        checkpoint_every=2,
        probe_pairs=8,
        progress=False,
        # The plain in-batch objective; the recipe's additions are tested in test_recipe_training.
        query_styles=(),
        negatives="none",
    )


@pytest.fixture(scope="module")
def finished_run(
    minilm_dir: Path, dataset_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[TrainConfig, Report]:
    config = tiny_config(minilm_dir, dataset_dir, tmp_path_factory.mktemp("run") / "out")
    return config, train(config)


def test_loss_decreases_and_output_is_a_loadable_checkpoint(finished_run: tuple[TrainConfig, Report]) -> None:
    config, report = finished_run
    assert report.steps == 4 and len(report.losses) == 4
    assert report.probe_after["train"] < 0.5 * report.probe_before["train"]
    out = config.out
    for name in (
        "config.json",
        "model.safetensors",
        "modules.json",
        "1_Pooling/config.json",
        "tokenizer.json",
    ):
        assert (out / name).is_file(), name
    assert not (out / "training" / "checkpoints").exists()
    assert (out / "model.safetensors").stat().st_mode & 0o777 == (out / "config.json").stat().st_mode & 0o777
    model = load_model(out, "cpu")
    assert model.max_seq_length == 256  # the base's limit, not the 32 tokens used for training
    vectors = model.encode(["what does the quorvex rule say"], normalize_embeddings=True)
    assert vectors.shape == (1, 384)
    saved = json.loads((out / "training" / "report.json").read_text())
    assert saved["losses"] == report.losses


def test_output_is_accepted_by_the_exporter(finished_run: tuple[TrainConfig, Report]) -> None:
    checkpoint = pytest.importorskip("export.checkpoint")
    info = checkpoint.inspect(finished_run[0].out)
    assert (info.pooling, info.max_length, info.hidden_size) == ("mean", 256, 384)


def test_interrupted_run_resumes_to_the_same_weights(
    finished_run: tuple[TrainConfig, Report], tmp_path: Path
) -> None:
    reference_config, reference = finished_run
    # Only the interrupt writes a checkpoint here; the reference run wrote periodic ones.
    config = replace(reference_config, out=tmp_path / "out", checkpoint_every=100)

    def interrupt(step: int, loss: float) -> None:
        if step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(config, on_step=interrupt)
    assert (config.out / "training" / "checkpoints" / "step-000003" / "model" / "config.json").is_file()
    with pytest.raises(UsageError, match="--resume"):
        train(config)

    resumed = train(replace(config, resume=True))

    assert resumed.losses == pytest.approx(reference.losses, abs=1e-5)
    got = load_file(config.out / "model.safetensors")
    want = load_file(reference_config.out / "model.safetensors")
    assert got.keys() == want.keys()
    for name in want:
        torch.testing.assert_close(got[name], want[name], atol=1e-5, rtol=0, msg=name)


def test_resume_refuses_changed_settings_and_finished_runs(finished_run: tuple[TrainConfig, Report]) -> None:
    config = finished_run[0]
    with pytest.raises(UsageError, match=r"lr: 0.0005 -> 0.001"):
        train(replace(config, resume=True, lr=1e-3))
    with pytest.raises(UsageError, match="finished run"):
        train(replace(config, resume=True))


def test_batches_cover_every_pair_once_without_repeated_text(make_pairs: Callable[..., list[Pair]]) -> None:
    items = make_pairs(10)
    items += [Pair(items[0].query, "another passage for the same query"), Pair("new query", items[1].passage)]
    batches = plan_batches(items, 4, seed=1, epoch=0)
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(len(items)))
    for batch in batches:
        texts = [t for i in batch for t in (items[i].query, items[i].passage)]
        assert len(texts) == len(set(texts))
    assert batches == plan_batches(items, 4, seed=1, epoch=0)
    assert batches != plan_batches(items, 4, seed=1, epoch=1)


def test_cli_usage_errors_exit_2(tmp_path: Path, dataset_dir: Path, minilm_dir: Path) -> None:
    assert main(["--base", str(tmp_path), "--data", str(dataset_dir), "--out", str(tmp_path / "o")]) == 2
    args = ["train", "--base", str(minilm_dir), "--data", str(dataset_dir), "--out", str(tmp_path / "o")]
    assert main([*args, "--batch-size", "1"]) == 2
    assert main([*args, "--matryoshka", "512,256", "--max-steps", "1", "--no-progress"]) == 2
