"""The model under test: an exported model directory and, for the peers, its checkpoint.

The bench reads ``manifest.json`` as plain JSON (it talks to the server over HTTP and does
not import the server's manifest code); it needs the variant files, the graph's input and
output names, the max length and the pooling. Token counts come from the directory's own
``tokenizer.json`` with the server's truncation (special tokens included, cut at
``max_length``), so every system's tokens/s counts the same tokens.

The peers (sentence-transformers, infinity-emb) load the Hugging Face checkpoint the model
was exported from: ``--checkpoint`` (manifests record no machine paths; ``python -m
export.shipped NAME --print-checkpoint`` prints a shipped model's), else the ``source.path``
of a manifest written before that rule, when it exists.
Its ``config.json`` gives the roofline its layer sizes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer


class ModelError(ValueError):
    """The model directory or checkpoint cannot be used; the message says what to fix."""


@dataclass(frozen=True)
class ModelDir:
    """What the bench needs from an exported model directory."""

    path: Path
    name: str
    dims: int
    max_length: int
    pooling: str
    pooling_in_graph: bool
    inputs: tuple[str, ...]
    output: str
    variants: dict[str, str]
    checkpoint: Path | None
    config: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path, checkpoint: Path | None = None) -> ModelDir:
        manifest_path = path / "manifest.json"
        if not manifest_path.is_file():
            raise ModelError(
                f"{path} is not an exported model directory (no manifest.json); build one with "
                "`make model` or `python -m export CHECKPOINT_DIR OUT_DIR`, or pass --model"
            )
        try:
            data = json.loads(manifest_path.read_text())
            variants = {name: str(v["file"]) for name, v in data["variants"].items()}
            source = data.get("source", {})
            model = cls(
                path=path,
                name=str(data["name"]),
                dims=int(data["dims"]),
                max_length=int(data["max_length"]),
                pooling=str(data["pooling"]),
                pooling_in_graph=bool(data["pooling_in_graph"]),
                inputs=tuple(data["inputs"]),
                output=str(data["output"]),
                variants=variants,
                checkpoint=checkpoint or _existing(source.get("path")),
            )
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ModelError(f"{manifest_path} is malformed ({exc}); re-export the model") from exc
        if checkpoint is not None and not (checkpoint / "config.json").is_file():
            raise ModelError(f"--checkpoint {checkpoint} has no config.json; pass a Hugging Face checkpoint")
        config: dict[str, Any] = {}
        if model.checkpoint is not None and (model.checkpoint / "config.json").is_file():
            config = json.loads((model.checkpoint / "config.json").read_text())
        return cls(**{**model.__dict__, "config": config})

    def variant_path(self, variant: str) -> Path:
        if variant not in self.variants:
            raise ModelError(
                f"variant {variant} is not in {self.path} (it has {', '.join(sorted(self.variants))})"
            )
        return self.path / self.variants[variant]

    def tokenizer(self) -> Tokenizer:
        """The directory's tokenizer with the server's policy: truncate at max_length, no padding."""
        path = self.path / "tokenizer.json"
        if not path.is_file():
            raise ModelError(f"{self.path} has no tokenizer.json; re-export the model")
        tok = Tokenizer.from_file(str(path))
        tok.no_padding()
        tok.enable_truncation(max_length=self.max_length)
        return tok

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens per text as the server counts them (special tokens in, truncated)."""
        return [len(enc.ids) for enc in self.tokenizer().encode_batch(list(texts))]


def _existing(path: object) -> Path | None:
    if isinstance(path, str) and path and Path(path).is_dir():
        return Path(path)
    return None
