"""The hardware bound: the model's FLOPs per token against the machine's fp32 GEMM rate.

FLOPs of a BERT-style encoder layer for one token in a sequence of ``s`` tokens (hidden
size ``h``, feed-forward size ``i``; a multiply-add counts 2):

- Q, K, V and output projections: ``2 * 4 * h * h``;
- feed-forward up and down: ``2 * 2 * h * i``;
- attention scores ``Q K^T`` and the weighted sum ``A V``: ``2 * 2 * s * h``.

Embeddings, layer norms, softmax and pooling are left out (a few percent). The useful work
of a corpus counts each text at its own length ``n`` (no padding): ``L * (linear * n +
4 * h * n^2)``. Dividing the useful FLOP/s a system reaches by the machine's measured
fp32 GEMM rate (numpy/OpenBLAS, square 2048 matrices, ``threads`` threads, best of
several runs) gives its share of the hardware bound. int8 kernels can exceed an fp32
bound; the share is then above what fp32 arithmetic allows, not an error.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


class RooflineError(RuntimeError):
    """The model's sizes are unknown or the GEMM measurement failed."""


@dataclass(frozen=True)
class Shape:
    """Sizes of a BERT-style encoder, from a Hugging Face ``config.json``."""

    layers: int
    hidden: int
    intermediate: int

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Shape:
        try:
            return cls(
                int(config["num_hidden_layers"]), int(config["hidden_size"]), int(config["intermediate_size"])
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise RooflineError(
                "the checkpoint's config.json lacks num_hidden_layers / hidden_size / intermediate_size"
            ) from exc

    @property
    def linear_flops_per_token(self) -> float:
        h, i = self.hidden, self.intermediate
        return float(self.layers * 2 * (4 * h * h + 2 * h * i))

    def flops_per_token(self, seq_len: float) -> float:
        """FLOPs for one token in a sequence of ``seq_len`` tokens."""
        return self.linear_flops_per_token + self.layers * 4.0 * seq_len * self.hidden

    def corpus_flops(self, lengths: Sequence[int]) -> float:
        """Useful FLOPs to embed texts of these token lengths (no padding)."""
        n = np.asarray(lengths, dtype=np.float64)
        return float(self.linear_flops_per_token * n.sum() + self.layers * 4.0 * self.hidden * (n * n).sum())


def measure(hidden: int, intermediate: int, size: int = 2048, repeats: int = 5) -> dict[str, float]:
    """Best fp32 GFLOP/s of numpy matmul: square ``size`` and the model's FFN shape."""
    rng = np.random.default_rng(0)

    def best(a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]) -> float:
        np.matmul(a, b)
        flops = 2.0 * a.shape[0] * a.shape[1] * b.shape[1]
        fastest = min(_timed(a, b) for _ in range(repeats))
        return float(flops / fastest / 1e9)

    square = rng.standard_normal((size, size), dtype=np.float32)
    tokens = rng.standard_normal((size, hidden), dtype=np.float32)
    ffn = rng.standard_normal((hidden, intermediate), dtype=np.float32)
    return {"square_gflops": best(square, square), "model_gflops": best(tokens, ffn), "size": float(size)}


def _timed(a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]) -> float:
    start = time.perf_counter()
    np.matmul(a, b)
    return time.perf_counter() - start


_CHILD = (
    "import json, sys; from bench.roofline import measure; "
    "print(json.dumps(measure(int(sys.argv[1]), int(sys.argv[2]))))"
)


def gemm_rate(shape: Shape, env: Mapping[str, str]) -> dict[str, float]:
    """:func:`measure` in a child process whose BLAS thread count is set by ``env``
    (OpenBLAS reads it once, at import, so it cannot be changed in this process)."""
    try:
        out = subprocess.run(
            [sys.executable, "-c", _CHILD, str(shape.hidden), str(shape.intermediate)],
            capture_output=True,
            text=True,
            env=dict(env),
            check=True,
            timeout=300,
        )
        data: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    except (subprocess.SubprocessError, ValueError, IndexError) as exc:
        raise RooflineError(f"the GEMM measurement failed: {exc}") from exc
    return data
