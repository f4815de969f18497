"""The systems the bench compares, each able to embed a list of texts once, timed.

Every system implements :class:`System`; the suite treats them alike, interleaves their
rounds, and reports each as a ratio to the reference (sentence-transformers) measured in
the same run. Members of the family:

- ``torch_st``: sentence-transformers on PyTorch, the reference users start from;
- ``onnx``: plain ONNX Runtime in corpus order (a peer) and the bare engine loop (ORT plus
  the tokenizer with length-sorted, token-budget batches: the bound our server should reach);
- ``engine``: our engine in-process (``server.engine.Engine``), no HTTP;
- ``http``: any embedding server over HTTP (ours, or infinity-emb as a subprocess).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]
Role = Literal["reference", "peer", "ours"]
Transport = Literal["in-process", "http"]


@dataclass(frozen=True)
class Pass:
    """One timed pass over the texts: wall seconds and, where known, the padding share
    (``1 - real tokens / padded tokens``) and server-side batch statistics."""

    seconds: float
    padding_ratio: float | None = None
    detail: dict[str, float] = field(default_factory=dict)


class System(Protocol):
    """Something that embeds texts: a peer, the reference, or one of ours."""

    key: str
    label: str
    role: Role
    transport: Transport
    variant: str

    def run(self, texts: Sequence[str]) -> Pass:
        """Embed every text once (timed); the vectors are discarded."""
        ...

    def embed(self, texts: Sequence[str]) -> F32:
        """Vectors ``[n, d]`` of ``texts`` in order (for the agreement check with the reference)."""
        ...

    def close(self) -> None: ...


def padding_ratio(batches: Sequence[Sequence[int]]) -> float:
    """Share of padded positions over batches of token lengths (each padded to its longest)."""
    real = sum(sum(b) for b in batches)
    padded = sum(len(b) * max(b) for b in batches if b)
    return 1.0 - real / padded if padded else 0.0


def pad(ids: Sequence[Sequence[int]], pad_id: int, input_names: Sequence[str]) -> dict[str, I64]:
    """``[n, longest]`` int64 inputs named as the graph expects, padded with ``pad_id``."""
    width = max(len(row) for row in ids)
    input_ids = np.full((len(ids), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(ids), width), dtype=np.int64)
    for i, row in enumerate(ids):
        input_ids[i, : len(row)] = row
        mask[i, : len(row)] = 1
    arrays = {"input_ids": input_ids, "attention_mask": mask, "token_type_ids": np.zeros_like(input_ids)}
    return {name: arrays[name] for name in input_names}


def cosines(a: F32, b: F32) -> F32:
    """Row-wise cosine similarity of two ``[n, d]`` arrays."""
    a64 = a.astype(np.float64)
    b64 = b.astype(np.float64)
    num = (a64 * b64).sum(axis=1)
    den = np.linalg.norm(a64, axis=1) * np.linalg.norm(b64, axis=1)
    out: F32 = (num / np.maximum(den, 1e-12)).astype(np.float32)
    return out
