"""The reference: sentence-transformers on PyTorch (fp32, CPU), as users start out.

``SentenceTransformer.encode`` with its defaults (it sorts texts by character length
before batching) and ``batch_size`` 32, torch limited to ``threads`` intra-op threads.
The model's max sequence length is set to the exported model's, so both sides embed the
same tokens. torch is imported only when this peer is asked for.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.systems import F32, Pass, Role, Transport, padding_ratio


class SentenceTransformers:
    role: Role = "reference"
    transport: Transport = "in-process"
    variant = "fp32"

    def __init__(
        self,
        checkpoint: Path,
        threads: int,
        max_length: int,
        token_lengths: dict[str, int],
        batch_size: int = 32,
    ) -> None:
        import torch
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(threads)
        self._torch: Any = torch
        self.model: Any = SentenceTransformer(str(checkpoint), device="cpu")
        self.model.max_seq_length = max_length
        self.batch_size = batch_size
        self.key = f"st-b{batch_size}"
        self.label = (
            f"sentence-transformers (torch {torch.__version__.split('+')[0]} fp32, batch {batch_size})"
        )
        self._lengths = token_lengths

    def _encode(self, texts: Sequence[str]) -> F32:
        with self._torch.inference_mode():
            out = self.model.encode(
                list(texts), batch_size=self.batch_size, convert_to_numpy=True, show_progress_bar=False
            )
        return np.asarray(out, dtype=np.float32)

    def run(self, texts: Sequence[str]) -> Pass:
        start = time.perf_counter()
        self._encode(texts)
        seconds = time.perf_counter() - start
        # encode() batches texts sorted by character length, longest first.
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        tokens = [self._lengths.get(texts[i], 0) for i in order]
        batches = [tokens[i : i + self.batch_size] for i in range(0, len(tokens), self.batch_size)]
        return Pass(seconds, padding_ratio(batches))

    def embed(self, texts: Sequence[str]) -> F32:
        return self._encode(texts)

    def close(self) -> None:
        return None
