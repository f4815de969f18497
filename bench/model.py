"""The model under test: an exported model directory and, for the peers, its checkpoint.

The directory is read with the server's own code: :func:`server.manifest.load` for the
manifest (variant files, graph inputs and output, max length, pooling) and
:class:`server.tokenizer.Tokenizer` for token counts (special tokens included, cut at
``max_length``, the same input clip), so every system's tokens/s counts the tokens the
server counts.

The peers (sentence-transformers, infinity-emb) load the Hugging Face checkpoint the model
was exported from, given as ``--checkpoint``: manifests record no machine paths, and
``python -m export.shipped NAME --print-checkpoint`` prints a shipped model's. Its
``config.json`` gives the roofline its layer sizes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from server.manifest import Manifest, ManifestError, load
from server.tokenizer import Tokenizer, TokenizerLoadError


class ModelError(ValueError):
    """The model directory or checkpoint cannot be used; the message says what to fix."""


@dataclass(frozen=True)
class ModelDir:
    """An exported model directory, its manifest and (for the peers) its checkpoint."""

    path: Path
    manifest: Manifest
    checkpoint: Path | None = None
    config: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path, checkpoint: Path | None = None) -> ModelDir:
        try:
            manifest = load(path)
        except ManifestError as exc:
            raise ModelError(f"{exc} (build one with `make model`, or pass --model)") from exc
        config: dict[str, Any] = {}
        if checkpoint is not None:
            config_file = checkpoint / "config.json"
            if not config_file.is_file():
                raise ModelError(
                    f"--checkpoint {checkpoint} has no config.json; pass a Hugging Face checkpoint"
                )
            try:
                config = json.loads(config_file.read_text())
            except (OSError, ValueError) as exc:
                raise ModelError(f"{config_file} is not valid JSON: {exc}") from exc
        return cls(path=path, manifest=manifest, checkpoint=checkpoint, config=config)

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def max_length(self) -> int:
        return self.manifest.max_length

    @property
    def variants(self) -> list[str]:
        """The variant names the directory holds."""
        return sorted(self.manifest.variants)

    def variant_path(self, variant: str) -> Path:
        if variant not in self.manifest.variants:
            raise ModelError(f"variant {variant} is not in {self.path} (it has {', '.join(self.variants)})")
        return self.path / self.manifest.variants[variant].file

    def tokenizer(self) -> Tokenizer:
        """The server's tokenizer for this directory (truncation at max_length, its pad id)."""
        try:
            return Tokenizer(self.path, self.max_length)
        except TokenizerLoadError as exc:
            raise ModelError(str(exc)) from exc

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens per text as the server counts them (special tokens in, truncated)."""
        return [len(ids) for ids in self.tokenizer().encode(texts).ids]
