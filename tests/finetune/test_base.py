"""The base checkpoint: refused early when it is not one, identified by name and content hash."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from finetune import base
from finetune.errors import UsageError


def fake_checkpoint(root: Path, name: str = "my-base") -> Path:
    path = root / name
    (path / "1_Pooling").mkdir(parents=True)
    config = {
        "model_type": "bert",
        "architectures": ["BertModel"],
        "hidden_size": 32,
        "num_attention_heads": 4,
        "num_hidden_layers": 2,
        "max_position_embeddings": 512,
    }
    (path / "config.json").write_text(json.dumps(config))
    (path / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n")
    (path / "model.safetensors").write_bytes(b"weights")
    (path / "modules.json").write_text(
        json.dumps(
            [
                {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
                {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            ]
        )
    )
    (path / "1_Pooling" / "config.json").write_text(
        json.dumps({"word_embedding_dimension": 32, "pooling_mode_mean_tokens": True})
    )
    (path / "README.md").write_text("not part of the identity")
    return path


def test_identity_is_the_exporters_hash_and_the_directory_name(tmp_path: Path) -> None:
    path = fake_checkpoint(tmp_path)
    identity = base.identify(path)
    assert identity.name == "my-base" and len(identity.sha256) == 64
    checkpoint = pytest.importorskip("export.checkpoint")
    assert identity.sha256 == checkpoint.inspect(path).content_sha256()
    moved = shutil.copytree(path, tmp_path / "elsewhere" / "my-base")
    (moved / "README.md").write_text("changed, not hashed")
    assert base.identify(moved) == identity
    (moved / "model.safetensors").write_bytes(b"other weights")
    assert base.identify(moved).sha256 != identity.sha256


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("missing", "is not a directory"),
        ("no-config", "no config.json"),
        ("no-type", "names no model_type"),
        ("no-weights", "has no model weights"),
        ("no-tokenizer", "has no tokenizer"),
    ],
)
def test_check_says_what_is_missing(tmp_path: Path, change: str, message: str) -> None:
    path = fake_checkpoint(tmp_path)
    if change == "missing":
        path = tmp_path / "nothing"
    elif change == "no-config":
        (path / "config.json").unlink()
    elif change == "no-type":
        (path / "config.json").write_text("{}")
    elif change == "no-weights":
        (path / "model.safetensors").unlink()
    else:
        (path / "vocab.txt").unlink()
    with pytest.raises(UsageError, match=message):
        base.check(path)
