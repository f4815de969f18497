"""Reading a checkpoint directory: family, pooling, length, prompts, hash, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from export.checkpoint import inspect
from export.errors import UsageError
from tests.export.conftest import FakeCheckpoint


def test_sentence_transformers_mean_pooling_and_normalize(fake_checkpoint: FakeCheckpoint) -> None:
    path = fake_checkpoint(modules=["Transformer", "Pooling", "Normalize"], st_config={"max_seq_length": 256})
    ck = inspect(path)
    assert (ck.pooling, ck.pooling_source) == ("mean", "1_Pooling/config.json")
    assert ck.normalize is True
    assert (ck.max_length, ck.max_length_source) == (256, "sentence_bert_config.json")
    assert ck.sentence_transformers
    assert (ck.model_type, ck.architecture, ck.hidden_size, ck.num_heads) == ("bert", "BertModel", 32, 4)


def test_cls_pooling_without_normalize(fake_checkpoint: FakeCheckpoint) -> None:
    ck = inspect(fake_checkpoint(pooling={"pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False}))
    assert ck.pooling == "cls"
    assert ck.normalize is False


def test_newer_pooling_mode_string(fake_checkpoint: FakeCheckpoint) -> None:
    assert inspect(fake_checkpoint(pooling={"pooling_mode": "cls"})).pooling == "cls"


def test_plain_transformers_checkpoint_defaults_to_mean(fake_checkpoint: FakeCheckpoint) -> None:
    ck = inspect(fake_checkpoint(modules=None))
    assert ck.pooling == "mean"
    assert "default" in ck.pooling_source
    assert not ck.sentence_transformers
    assert ck.normalize is False


@pytest.mark.parametrize(
    ("pooling", "message"),
    [
        ({"pooling_mode_max_tokens": True}, "'max_tokens' is not supported"),
        ({"pooling_mode_cls_token": True, "pooling_mode_mean_tokens": True}, "exactly one pooling mode"),
        ({"pooling_mode_mean_tokens": False}, "exactly one pooling mode"),
        ({"pooling_mode_mean_tokens": True, "include_prompt": False}, "include_prompt"),
    ],
)
def test_pooling_configs_the_graph_cannot_reproduce(
    fake_checkpoint: FakeCheckpoint, pooling: dict[str, object], message: str
) -> None:
    with pytest.raises(UsageError, match=message):
        inspect(fake_checkpoint(pooling=pooling))


def test_pooling_and_normalize_overrides(fake_checkpoint: FakeCheckpoint) -> None:
    path = fake_checkpoint(pooling={"pooling_mode_max_tokens": True})
    ck = inspect(path, pooling="cls", normalize=True)
    assert (ck.pooling, ck.pooling_source, ck.normalize) == ("cls", "--pooling", True)
    with pytest.raises(UsageError, match="--pooling must be one of"):
        inspect(path, pooling="max")


def test_dense_head_is_rejected(fake_checkpoint: FakeCheckpoint) -> None:
    with pytest.raises(UsageError, match="Dense"):
        inspect(fake_checkpoint(modules=["Transformer", "Pooling", "Dense"]))


@pytest.mark.parametrize(
    ("config", "st_config", "tokenizer_config", "expected"),
    [
        ({}, {"max_seq_length": 128}, {"model_max_length": 512}, (128, "sentence_bert_config.json")),
        ({}, None, {"model_max_length": 300}, (300, "tokenizer_config.json")),
        ({}, None, {"model_max_length": 10**30}, (512, "config.json max_position_embeddings")),
        ({}, {"max_seq_length": 4096}, None, (512, "config.json max_position_embeddings")),
        (
            {"model_type": "xlm-roberta", "max_position_embeddings": 514},
            None,
            None,
            (512, "config.json max_position_embeddings"),
        ),
    ],
)
def test_max_length_sources(
    fake_checkpoint: FakeCheckpoint,
    config: dict[str, object],
    st_config: dict[str, object] | None,
    tokenizer_config: dict[str, object] | None,
    expected: tuple[int, str],
) -> None:
    ck = inspect(fake_checkpoint(config=config, st_config=st_config, tokenizer_config=tokenizer_config))
    assert (ck.max_length, ck.max_length_source) == expected


def test_max_length_override_is_bounded_by_the_position_table(fake_checkpoint: FakeCheckpoint) -> None:
    path = fake_checkpoint()
    assert inspect(path, max_length=64).max_length == 64
    with pytest.raises(UsageError, match="between 2 and 512"):
        inspect(path, max_length=513)


def test_prompts_are_read(fake_checkpoint: FakeCheckpoint) -> None:
    prompts = {"query": "query: ", "passage": "passage: "}
    checkpoint = inspect(fake_checkpoint(prompts=prompts))
    assert checkpoint.prompts == prompts and checkpoint.default_prompt_name is None


def test_default_prompt_name_is_read_and_must_name_a_prompt(fake_checkpoint: FakeCheckpoint) -> None:
    path = fake_checkpoint()
    config = path / "config_sentence_transformers.json"
    config.write_text(json.dumps({"prompts": {"query": "query: "}, "default_prompt_name": "query"}))
    assert inspect(path).default_prompt_name == "query"
    config.write_text(json.dumps({"prompts": {"query": "query: "}, "default_prompt_name": "doc"}))
    with pytest.raises(UsageError, match="default_prompt_name 'doc' is not one of its prompts"):
        inspect(path)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda p: (p / "config.json").unlink(), "no config.json"),
        (lambda p: (p / "config.json").write_text("{not json"), "not readable JSON"),
        (lambda p: (p / "config.json").write_text('{"model_type": "gpt2"}'), "'gpt2' is not supported"),
        (lambda p: (p / "model.safetensors").unlink(), "no model weights"),
        (lambda p: (p / "vocab.txt").unlink(), "no tokenizer files"),
        (lambda p: (p / "1_Pooling" / "config.json").unlink(), "1_Pooling/config.json is missing"),
    ],
)
def test_bad_checkpoints_say_what_is_wrong(
    fake_checkpoint: FakeCheckpoint, damage: object, message: str
) -> None:
    path = fake_checkpoint()
    damage(path)  # type: ignore[operator]
    with pytest.raises(UsageError, match=message):
        inspect(path)


def test_not_a_directory(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not a directory"):
        inspect(tmp_path / "missing")


def test_content_hash_covers_weights_and_configs(fake_checkpoint: FakeCheckpoint) -> None:
    path = fake_checkpoint()
    first = inspect(path).content_sha256()
    assert inspect(path).content_sha256() == first
    (path / "README.md").write_text("docs do not change the model")
    assert inspect(path).content_sha256() == first
    (path / "model.safetensors").write_bytes(b"\1")
    assert inspect(path).content_sha256() != first
    assert "model.safetensors" in inspect(path).hashed_files()
