"""The base checkpoint a run starts from: is it one, and which one is it (by content).

Everything here reads JSON and hashes files; nothing imports torch, so a ``--base`` that is
not a checkpoint is refused in milliseconds, before the heavy imports of training.

A base is identified by its directory *name* and a SHA-256 over its content, never by a path:
a relative path says nothing once the run is copied or resumed from another directory. The
hash is the one ``python -m export`` records in a model manifest
(``export.checkpoint.Checkpoint.content_sha256``): the SHA-256 of the lines
``NAME\\0SHA256(FILE)\\n`` for the weight, config and tokenizer files, sorted by name. The
import rules keep ``finetune`` from importing ``export``, so the rule is written out here and
a test keeps the two equal.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from finetune.errors import UsageError

WEIGHT_PATTERNS = (
    "*.safetensors",
    "pytorch_model*.bin",
    "*.safetensors.index.json",
    "pytorch_model.bin.index.json",
)
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "sentencepiece.bpe.model",
    "spiece.model",
)
CONFIG_FILES = (
    "config.json",
    "modules.json",
    "sentence_bert_config.json",
    "config_sentence_transformers.json",
    "1_Pooling/config.json",
)
VOCABULARIES = ("tokenizer.json", "vocab.txt", "vocab.json", "sentencepiece.bpe.model", "spiece.model")


@dataclass(frozen=True)
class BaseModel:
    """A checkpoint's identity: its directory name and the SHA-256 of its content."""

    name: str
    sha256: str

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "sha256": self.sha256}


def _sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def weight_files(path: Path) -> list[str]:
    found: set[str] = set()
    for pattern in WEIGHT_PATTERNS:
        found.update(p.name for p in path.glob(pattern) if p.is_file())
    return sorted(found)


def hashed_files(path: Path) -> list[str]:
    """Relative paths of the weight, config and tokenizer files, sorted (export's rule)."""
    names = set(weight_files(path))
    names.update(n for n in (*TOKENIZER_FILES, *CONFIG_FILES) if (path / n).is_file())
    return sorted(names)


def check(path: Path, flag: str = "--base") -> None:
    """Raise :class:`UsageError` unless ``path`` looks like a loadable checkpoint directory.

    Checked: a directory, a ``config.json`` holding a JSON object with a ``model_type``,
    weights, and a tokenizer vocabulary. Whether the weights load is torch's to say later.
    """
    if not path.is_dir():
        raise UsageError(f"{flag} {path} is not a directory; pass a sentence-transformers checkpoint")
    config_path = path / "config.json"
    if not config_path.is_file():
        raise UsageError(
            f"{flag} {path} is not a checkpoint directory (no config.json); "
            "save the model with SentenceTransformer.save() or save_pretrained()"
        )
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"{flag} {config_path} is not readable JSON ({exc})") from exc
    if not isinstance(config, dict) or not isinstance(config.get("model_type"), str):
        raise UsageError(f"{flag} {config_path} names no model_type; it is not a transformers checkpoint")
    if not weight_files(path):
        raise UsageError(f"{flag} {path} has no model weights (model.safetensors or pytorch_model.bin)")
    if not any((path / name).is_file() for name in VOCABULARIES):
        raise UsageError(f"{flag} {path} has no tokenizer (tokenizer.json or a vocabulary file)")


def content_sha256(path: Path) -> str:
    """One SHA-256 over the name and SHA-256 of every hashed file (equal to export's)."""
    digest = hashlib.sha256()
    for name in hashed_files(path):
        digest.update(f"{name}\0{_sha256_file(path / name)}\n".encode())
    return digest.hexdigest()


@lru_cache(maxsize=8)
def _identity(resolved: Path, stamp: tuple[tuple[str, int, int], ...]) -> BaseModel:
    return BaseModel(resolved.name, content_sha256(resolved))


def identify(path: Path) -> BaseModel:
    """The base's name and content hash (hashed once per process while its files are unchanged)."""
    resolved = path.resolve()
    stamp = tuple(
        (name, (resolved / name).stat().st_size, (resolved / name).stat().st_mtime_ns)
        for name in hashed_files(resolved)
    )
    return _identity(resolved, stamp)
