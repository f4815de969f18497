"""Tokenization with Hugging Face `tokenizers` (Rust; releases the GIL in batch encode).

Two tokenizer instances are kept, one per truncation direction, each configured once at
load time: `tokenizers` stores truncation on the object, and mutating it per request would
race between threads. Inputs are cut to the model's max length (special tokens included);
when the client asked for no truncation, an input that would be cut is an error.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
from tokenizers import Tokenizer as HFTokenizer

from server.errors import PayloadTooLarge, StartupError

Direction = Literal["right", "left"]
_PAD_CANDIDATES = ("[PAD]", "<pad>", "<|pad|>", "[pad]")


class TokenizerLoadError(StartupError):
    """The model directory's tokenizer files are missing or unreadable."""


@dataclass(frozen=True)
class Encoded:
    """Token ids of a list of texts, one int64 array per text (no padding)."""

    ids: list[npt.NDArray[np.int64]]
    offsets: list[list[tuple[int, int]]] | None = None
    special: list[list[int]] | None = None

    @property
    def lengths(self) -> list[int]:
        return [len(i) for i in self.ids]

    @property
    def total_tokens(self) -> int:
        return sum(len(i) for i in self.ids)


def _pad_id(tok: HFTokenizer, directory: Path) -> int:
    padding = tok.padding
    if padding and "pad_id" in padding:
        return int(padding["pad_id"])
    config = directory / "tokenizer_config.json"
    candidates: list[str] = []
    if config.is_file():
        pad = json.loads(config.read_text()).get("pad_token")
        if isinstance(pad, dict):
            pad = pad.get("content")
        if isinstance(pad, str):
            candidates.append(pad)
    for token in (*candidates, *_PAD_CANDIDATES):
        if (found := tok.token_to_id(token)) is not None:
            return int(found)
    return 0


class Tokenizer:
    """Encodes texts for one model: max length, truncation side, pad id."""

    def __init__(self, directory: Path, max_length: int) -> None:
        path = directory / "tokenizer.json"
        if not path.is_file():
            raise TokenizerLoadError(f"{directory} has no tokenizer.json; re-export the model")
        try:
            by_side = {side: HFTokenizer.from_file(str(path)) for side in ("right", "left")}
        except Exception as exc:
            raise TokenizerLoadError(f"{path} cannot be loaded by `tokenizers`: {exc}") from exc
        for side, tok in by_side.items():
            tok.no_padding()
            tok.enable_truncation(max_length=max_length, stride=0, direction=side)
        self._by_side = by_side
        self.max_length = max_length
        self.pad_id = _pad_id(by_side["right"], directory)

    def encode(
        self,
        texts: Sequence[str],
        *,
        truncate: bool = True,
        direction: Direction = "right",
        with_offsets: bool = False,
    ) -> Encoded:
        """Encode texts with special tokens; raise PayloadTooLarge if one is too long and
        ``truncate`` is false."""
        encodings = self._by_side[direction].encode_batch(list(texts), add_special_tokens=True)
        if not truncate:
            for i, enc in enumerate(encodings):
                if enc.overflowing:
                    raise PayloadTooLarge(
                        f"input {i} is longer than the model's limit of {self.max_length} tokens; "
                        "shorten it or send `truncate: true`",
                        param="inputs",
                    )
        ids = [np.asarray(enc.ids, dtype=np.int64) for enc in encodings]
        if not with_offsets:
            return Encoded(ids=ids)
        return Encoded(
            ids=ids,
            offsets=[list(enc.offsets) for enc in encodings],
            special=[list(enc.special_tokens_mask) for enc in encodings],
        )

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        return self._by_side["right"].decode(list(ids), skip_special_tokens=skip_special_tokens)

    def id_to_token(self, token_id: int) -> str:
        return self._by_side["right"].id_to_token(token_id) or ""
