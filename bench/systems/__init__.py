"""The systems the bench compares, each able to embed a list of texts once, timed.

Every system implements :class:`System`; the suite treats them alike, interleaves their
rounds, and reports each as a ratio to the reference (sentence-transformers) measured in
the same run. Members of the family:

- ``torch_st``: sentence-transformers on PyTorch, the reference users start from;
- ``onnx``: plain ONNX Runtime in corpus order (a peer) and the bare engine loop (ORT plus
  the tokenizer with length-sorted, token-budget batches: the bound our server should reach);
- ``engine``: our engine in-process (``server.engine.Engine``), no HTTP;
- ``http``: any embedding server over HTTP (ours, or infinity-emb as a subprocess);
- ``openvino``: the bare engine loop with OpenVINO in place of ONNX Runtime, on the same
  ONNX files (optional: only where the ``openvino`` package is installed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np
import numpy.typing as npt

from server.collate import padding_ratio as batch_padding_ratio

F32 = npt.NDArray[np.float32]
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
    """Share of padded positions over batches of token lengths, each padded to its longest:
    the server's per-batch :func:`server.collate.padding_ratio`, weighted by padded size."""
    sized = [(len(b) * max(b), b) for b in batches if b and max(b) > 0]
    padded = sum(size for size, _ in sized)
    return sum(size * batch_padding_ratio(b) for size, b in sized) / padded if padded else 0.0


def cosines(a: F32, b: F32) -> F32:
    """Row-wise cosine similarity of two ``[n, d]`` arrays."""
    a64 = a.astype(np.float64)
    b64 = b.astype(np.float64)
    num = (a64 * b64).sum(axis=1)
    den = np.linalg.norm(a64, axis=1) * np.linalg.norm(b64, axis=1)
    out: F32 = (num / np.maximum(den, 1e-12)).astype(np.float32)
    return out
