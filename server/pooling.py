"""Post-processing of model outputs: pool (when the graph does not), truncate, normalise.

The order is a contract (CONTRACTS.md): pool -> truncate to ``dimensions`` -> L2-normalise.
Normalising after truncation is what makes a Matryoshka-truncated vector unit length.
All functions are pure numpy on float32 and never change their inputs.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]
_EPS = np.float32(1e-12)


def pool(hidden: F32, attention_mask: npt.NDArray[np.int64], pooling: str) -> F32:
    """Pool token states ``[n, seq, dims]`` to ``[n, dims]`` (for graphs without in-graph pooling)."""
    if pooling == "cls":
        return np.ascontiguousarray(hidden[:, 0, :], dtype=np.float32)
    if pooling == "mean":
        mask = attention_mask.astype(np.float32)[:, :, None]
        summed = (hidden * mask).sum(axis=1)
        counts = np.maximum(mask.sum(axis=1), 1.0)
        pooled: F32 = (summed / counts).astype(np.float32)
        return pooled
    raise ValueError(f"unknown pooling {pooling!r}")


def finish(vectors: F32, dimensions: int | None, normalize: bool) -> F32:
    """Truncate rows to ``dimensions`` (if given), then L2-normalise them (if asked)."""
    out = vectors if dimensions is None else vectors[:, :dimensions]
    if normalize:
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        unit: F32 = (out / np.maximum(norms, _EPS)).astype(np.float32, copy=False)
        return unit
    return np.ascontiguousarray(out, dtype=np.float32)
