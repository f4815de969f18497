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
CHARS_PER_TOKEN = 16
"""Characters per token that an input may need before it is cut without tokenizing the rest:
an input is clipped to ``CHARS_PER_TOKEN x max_length`` characters (at a whitespace) before
tokenization, so a 2 MiB string costs what a page costs. Prose and code average 3 to 6
characters per token, so the clip changes no result unless a text's first thousands of
characters hold fewer than ``max_length`` tokens (whitespace runs, very long words)."""
ENCODE_SLICE = 32
"""Texts encoded per call into `tokenizers`: its per-text structures for the whole call are
alive at once, so slices bound a request's peak memory."""
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
        # The pad id first: tokenizer.json's own padding section is cleared just below.
        self.pad_id = _pad_id(by_side["right"], directory)
        for side, tok in by_side.items():
            tok.no_padding()
            tok.enable_truncation(max_length=max_length, stride=0, direction=side)
        self._by_side = by_side
        self.max_length = max_length
        self.max_chars = CHARS_PER_TOKEN * max_length

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
        clipped = [self._clip(text, i, truncate, direction) for i, text in enumerate(texts)]
        tok = self._by_side[direction]
        ids: list[npt.NDArray[np.int64]] = []
        offsets: list[list[tuple[int, int]]] = []
        special: list[list[int]] = []
        for first in range(0, len(clipped), ENCODE_SLICE):
            encodings = tok.encode_batch(clipped[first : first + ENCODE_SLICE], add_special_tokens=True)
            for i, enc in enumerate(encodings, start=first):
                if not truncate and enc.overflowing:
                    raise PayloadTooLarge(
                        f"input {i} is longer than the model's limit of {self.max_length} tokens; "
                        "shorten it or send `truncate: true`",
                        param="inputs",
                    )
                ids.append(np.asarray(enc.ids, dtype=np.int64))
                if with_offsets:
                    # A left clip dropped characters before the kept text: offsets are the input's.
                    shift = len(texts[i]) - len(clipped[i]) if direction == "left" else 0
                    mask = list(enc.special_tokens_mask)
                    pairs = zip(enc.offsets, mask, strict=True)
                    offsets.append([(a, b) if s else (a + shift, b + shift) for (a, b), s in pairs])
                    special.append(mask)
        if not with_offsets:
            return Encoded(ids=ids)
        return Encoded(ids=ids, offsets=offsets, special=special)

    def _clip(self, text: str, index: int, truncate: bool, direction: Direction) -> str:
        """``text`` cut to :attr:`max_chars` characters on the kept side, at a whitespace when
        one is near; refused (413) when truncation is off."""
        if len(text) <= self.max_chars:
            return text
        if not truncate:
            raise PayloadTooLarge(
                f"input {index} has {len(text)} characters, more than the {self.max_chars} this model's "
                f"{self.max_length} tokens can use; shorten it or send `truncate: true`",
                param="inputs",
            )
        if direction == "right":
            head = text[: self.max_chars]
            cut = head.rfind(" ", self.max_chars // 2)
            return head[:cut] if cut > 0 else head
        tail = text[-self.max_chars :]
        cut = tail.find(" ", 0, self.max_chars // 2)
        return tail[cut + 1 :] if cut >= 0 else tail

    def id_to_token(self, token_id: int) -> str:
        return self._by_side["right"].id_to_token(token_id) or ""
