"""The flags and environment variables of ``python -m finetune``, and their defaults."""

from __future__ import annotations

from dataclasses import MISSING, fields
from pathlib import Path

import pytest

from finetune import dataset
from finetune.errors import UsageError
from finetune.evaluation import EvalConfig
from finetune.settings import DatasetSettings, EvalSettings, TrainSettings, from_sources, parser


def test_train_defaults_are_the_trainers() -> None:
    from finetune.trainer import TrainConfig

    config = TrainConfig(Path(), Path(), Path())
    for f in fields(TrainSettings):
        if f.default is not MISSING and f.name != "threads":
            assert getattr(config, f.name) == f.default, f.name


def test_eval_and_dataset_defaults_are_the_libraries() -> None:
    config = EvalConfig(Path(), ())
    assert EvalSettings(Path()).k == config.ks
    for name in ("dimensions", "distractors", "batch_size", "device", "startup_timeout", "server_args"):
        setting = "server_arg" if name == "server_args" else name
        assert getattr(EvalSettings(Path()), setting) == getattr(config, name), name
    settings = DatasetSettings(Path())
    assert (settings.heldout_fraction, settings.seed) == (
        dataset.DEFAULT_HELDOUT_FRACTION,
        dataset.DEFAULT_SEED,
    )


def test_flags_keep_their_names_and_forms() -> None:
    argv = ["train", "--base", "b", "--data", "d", "--out", "o", "--matryoshka", "256,128", "--no-progress"]
    settings = from_sources([*argv, "--keep-checkpoints", "--resume", "--precision", "bf16"], env={})
    assert isinstance(settings, TrainSettings)
    assert (settings.base, settings.matryoshka, settings.progress) == (Path("b"), (256, 128), False)
    assert settings.keep_checkpoints and settings.resume and settings.precision == "bf16"
    argv = ["eval", "--data", "d", "--model", "a=x", "--model", "y", "--server-arg=--intra-op-threads=2"]
    evaluation = from_sources([*argv, "--variant", "fp32,int8", "--k", "1,10"], env={})
    assert isinstance(evaluation, EvalSettings)
    assert evaluation.model == ("a=x", "y") and evaluation.server_arg == ("--intra-op-threads=2",)
    assert evaluation.variant == ("fp32", "int8") and evaluation.k == (1, 10)


def test_environment_sets_a_command_and_flags_win() -> None:
    env = {
        "FINETUNE_TRAIN_BASE": "env-base",
        "FINETUNE_TRAIN_DATA": "env-data",
        "FINETUNE_TRAIN_OUT": "env-out",
        "FINETUNE_TRAIN_EPOCHS": "3",
        "FINETUNE_TRAIN_PROGRESS": "false",
        "FINETUNE_EVAL_MODEL": "a=x b=y",
        "FINETUNE_EVAL_DIMENSIONS": "256,128",
    }
    settings = from_sources(["train", "--epochs", "2"], env=env)
    assert isinstance(settings, TrainSettings)
    assert (settings.base, settings.epochs, settings.progress) == (Path("env-base"), 2, False)
    evaluation = from_sources(["eval", "--data", "d"], env=env)
    assert isinstance(evaluation, EvalSettings)
    assert evaluation.model == ("a=x", "b=y") and evaluation.dimensions == (256, 128)
    with pytest.raises(UsageError, match="FINETUNE_TRAIN_EPOCHS"):
        from_sources(["train"], env={**env, "FINETUNE_TRAIN_EPOCHS": "many"})
    with pytest.raises(UsageError, match="FINETUNE_TRAIN_PRECISION"):
        from_sources(["train"], env={**env, "FINETUNE_TRAIN_PRECISION": "fp8"})


def test_required_flags_and_bad_values_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["train", "--base", "b"], ["eval", "--data", "d", "--k", "one"], ["dataset"]):
        with pytest.raises(SystemExit) as exit_info:
            from_sources(argv, env={})
        assert exit_info.value.code == 2
    assert "expected comma-separated integers" in capsys.readouterr().err


def test_help_names_every_environment_variable() -> None:
    text = parser(env={}).format_help()
    assert "FINETUNE_<COMMAND>_<FLAG>" in text
