"""Our engine in-process: ``server.engine.Engine`` with its batcher, without HTTP.

This is the one place the bench imports the server (the engine, its settings and its
metrics), to separate what the engine costs from what HTTP and JSON cost. Texts go in as
requests of ``per_request`` texts, up to ``in_flight`` requests outstanding at once (many
clients), and the padding share is read from the engine's own metrics.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from bench.model import ModelDir
from bench.systems import F32, Pass, Role, Transport

TIMEOUT_S = 600.0
SETTLE_S = 0.2


class InProcessEngine:
    role: Role = "ours"
    transport: Transport = "in-process"

    def __init__(
        self,
        model: ModelDir,
        variant: str,
        threads: int,
        per_request: int = 20,
        in_flight: int = 64,
        **overrides: Any,
    ) -> None:
        from server.engine import EmbedOptions
        from server.loader import load_engine
        from server.metrics import Metrics
        from server.settings import Settings

        self.metrics = Metrics.create()
        settings = Settings(model=model.path, variant=variant, intra_op_threads=threads, **overrides)  # type: ignore[arg-type]
        self.engine = load_engine(settings, self.metrics)
        self._options = EmbedOptions()
        self.variant = self.engine.variant
        self.per_request = per_request
        self.in_flight = in_flight
        limits = self.engine.limits
        self.key = f"engine-{self.variant}-t{limits.max_batch_tokens}-b{limits.max_batch_size}"
        self.label = (
            f"our engine {self.variant}, in-process (<= {limits.max_batch_tokens} tokens / "
            f"{limits.max_batch_size} texts per batch)"
        )

    def _sample(self, name: str) -> float:
        value = self.metrics.registry.get_sample_value(name)
        return float(value) if value is not None else 0.0

    async def _all(self, texts: Sequence[str]) -> list[F32]:
        slots = asyncio.Semaphore(self.in_flight)

        async def one(chunk: Sequence[str]) -> F32:
            async with slots:
                result = await self.engine.embed(chunk, self._options, timeout=TIMEOUT_S)
                return result.vectors

        chunks = [texts[i : i + self.per_request] for i in range(0, len(texts), self.per_request)]
        return list(await asyncio.gather(*(one(c) for c in chunks)))

    def run(self, texts: Sequence[str]) -> Pass:
        names = (
            "embed_batch_tokens_sum",
            "embed_tokens_total",
            "embed_batch_size_count",
            "embed_batch_size_sum",
        )
        before = [self._sample(n) for n in names]
        start = time.perf_counter()
        asyncio.run(self._all(texts))
        seconds = time.perf_counter() - start
        # The worker thread records a batch's metrics just after resolving its futures.
        time.sleep(SETTLE_S)
        padded, real, batches, rows = (self._sample(n) - b for n, b in zip(names, before, strict=True))
        detail = {"batches": batches, "mean_batch_size": rows / batches} if batches else {}
        return Pass(seconds, 1.0 - real / padded if padded else None, detail)

    def embed(self, texts: Sequence[str]) -> F32:
        return np.concatenate(asyncio.run(self._all(texts)))

    def close(self) -> None:
        self.engine.close()
