"""The embedding engine: tokenize -> submit -> wait -> post-process, with stage timings.

The engine knows nothing of HTTP. It owns the tokenizer, the sessions and the batcher,
and is built once per process by :meth:`Engine.load` (blocking: call it off the event
loop). :meth:`Engine.embed` is what every embedding route calls.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from server import pooling
from server.batcher import Batch, Batcher, Limits, Session
from server.collate import padding_ratio
from server.errors import DeadlineExceeded, PayloadTooLarge, StartupError, Unavailable, ValidationError
from server.manifest import Manifest, ManifestError, load
from server.metrics import Metrics
from server.session import OrtSession, SessionConfig, choose_variant, cpu_count, cuda_available
from server.settings import Settings
from server.tokenizer import Direction, Encoded, Tokenizer

log = logging.getLogger("server.engine")

F32 = npt.NDArray[np.float32]
__version__ = "0.1.0"
CPU_BATCH_TOKENS = 2048


class ModelLoadError(StartupError):
    """The model directory cannot be served; the message says why and what to do."""


@dataclass
class Timings:
    """Seconds spent in each stage of one request."""

    tokenize: float = 0.0
    queue: float = 0.0
    inference: float = 0.0
    postprocess: float = 0.0
    total: float = 0.0

    def headers(self) -> dict[str, str]:
        return {
            "x-total-time": f"{self.total * 1000:.2f}",
            "x-tokenization-time": f"{self.tokenize * 1000:.2f}",
            "x-queue-time": f"{self.queue * 1000:.2f}",
            "x-inference-time": f"{self.inference * 1000:.2f}",
        }


@dataclass(frozen=True)
class EmbedOptions:
    """Per-request options of an embedding call (validated by schemas.py)."""

    truncate: bool = True
    direction: Direction = "right"
    normalize: bool = True
    dimensions: int | None = None
    prompt_name: str | None = None


@dataclass
class Embedded:
    """Vectors ``[n, d]`` in input order, the tokens they took, and the stage timings."""

    vectors: F32
    tokens: int
    timings: Timings = field(default_factory=Timings)


class Engine:
    """Model, tokenizer, sessions and batcher of one served model."""

    def __init__(
        self,
        settings: Settings,
        manifest: Manifest,
        tokenizer: Tokenizer,
        sessions: Sequence[Session],
        metrics: Metrics,
        *,
        variant: str,
        provider: str,
        max_batch_tokens: int,
    ) -> None:
        self.settings = settings
        self.manifest = manifest
        self.tokenizer = tokenizer
        self.metrics = metrics
        self.variant = variant
        self.provider = provider
        self.model_name = settings.served_model_name or manifest.name
        self.limits = Limits(
            max_batch_tokens=max(max_batch_tokens, manifest.max_length),
            max_batch_size=settings.max_batch_size,
            max_queue_requests=settings.max_queue_requests,
            max_queue_tokens=settings.max_queue_tokens,
            interactive_max_tokens=settings.interactive_max_tokens,
            bulk_share=settings.bulk_share,
        )
        self.batcher = Batcher(sessions, self.limits, tokenizer.pad_id, manifest.dims, observe=self._observe)
        self._tokenize_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="tokenize")

    @classmethod
    def load(cls, settings: Settings, metrics: Metrics) -> Engine:
        """Read the manifest, build the tokenizer and sessions, warm up (blocking)."""
        directory = settings.model
        try:
            manifest = load(directory, verify_hashes=True)
        except ManifestError as exc:
            raise ModelLoadError(str(exc)) from exc
        tokenizer = Tokenizer(directory, manifest.max_length)
        threads = settings.threads_per_session(cpu_count())
        probe_gpu = settings.device in ("cuda", "tensorrt") or (
            settings.device == "auto" and cuda_available()
        )
        variant = choose_variant(manifest, settings.variant, on_gpu=probe_gpu)
        config = SessionConfig(
            device=settings.device,
            gpu_id=settings.gpu_id,
            intra_op_threads=threads,
            inter_op_threads=settings.inter_op_threads,
            trt_cache_dir=settings.trt_cache_dir,
            max_batch_size=settings.max_batch_size,
        )
        sessions = [OrtSession(directory, manifest, variant, config) for _ in range(settings.sessions)]
        provider = sessions[0].provider
        max_batch_tokens = settings.max_batch_tokens
        if settings.max_batch_tokens == Settings.max_batch_tokens and not sessions[0].on_gpu:
            # CPU throughput peaks at small batches; smaller batches keep query latency low.
            max_batch_tokens = CPU_BATCH_TOKENS
        started = time.perf_counter()
        runs = sum(s.warm_up(tokenizer.pad_id, max_batch_tokens) for s in sessions) if settings.warmup else 0
        log.info(
            "model %s (%s, %d-dim, max %d tokens, %s pooling) variant %s on %s; %d session(s) x %d intra-op "
            "threads; batches <= %d tokens / %d texts; queue <= %d requests / %d tokens; warm-up %d runs "
            "in %.1fs",
            manifest.name,
            manifest.revision,
            manifest.dims,
            manifest.max_length,
            manifest.pooling,
            variant.name,
            provider,
            len(sessions),
            threads,
            max_batch_tokens,
            settings.max_batch_size,
            settings.max_queue_requests,
            settings.max_queue_tokens,
            runs,
            time.perf_counter() - started,
        )
        return cls(
            settings,
            manifest,
            tokenizer,
            sessions,
            metrics,
            variant=variant.name,
            provider=provider,
            max_batch_tokens=max_batch_tokens,
        )

    def close(self) -> None:
        """Finish queued work and stop the threads."""
        self.batcher.close()
        self._tokenize_pool.shutdown(wait=True)

    def _prompted(self, texts: Sequence[str], prompt_name: str | None) -> Sequence[str]:
        if prompt_name is None:
            return texts
        prompt = self.manifest.prompts.get(prompt_name)
        if prompt is None:
            known = ", ".join(sorted(self.manifest.prompts)) or "none"
            raise ValidationError(
                f"prompt_name {prompt_name!r} is not defined by this model (known: {known})",
                param="prompt_name",
            )
        return [prompt + text for text in texts]

    async def tokenize(
        self, texts: Sequence[str], options: EmbedOptions, with_offsets: bool = False
    ) -> Encoded:
        """Tokenize in a thread pool (Rust releases the GIL); too long and no truncation -> 413."""
        prompted = self._prompted(texts, options.prompt_name)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._tokenize_pool,
            lambda: self.tokenizer.encode(
                prompted, truncate=options.truncate, direction=options.direction, with_offsets=with_offsets
            ),
        )

    async def embed(
        self,
        texts: Sequence[str],
        options: EmbedOptions,
        *,
        timeout: float,
        disconnected: Callable[[], Awaitable[Any]] | None = None,
    ) -> Embedded:
        """Embed ``texts`` in order. Raises the errors of errors.py (429, 503, 413, 500)."""
        if options.dimensions is not None and not 1 <= options.dimensions <= self.manifest.dims:
            raise ValidationError(
                f"dimensions must be between 1 and {self.manifest.dims}", param="dimensions"
            )
        timings = Timings()
        start = time.perf_counter()
        encoded = await self.tokenize(texts, options)
        timings.tokenize = time.perf_counter() - start
        remaining = timeout - timings.tokenize
        if remaining <= 0:
            raise DeadlineExceeded("the request's deadline passed during tokenization", retry_after=1)
        loop = asyncio.get_running_loop()
        try:
            job = self.batcher.submit(encoded.ids, loop, timeout=remaining)
        except DeadlineExceeded:
            self.metrics.rejected.labels("deadline").inc()
            raise
        self.metrics.queue_requests.set(self.batcher.queued_requests)
        self.metrics.queue_tokens.set(self.batcher.queued_tokens)
        try:
            await self._wait(job.future, remaining, disconnected)
        except BaseException:
            self.batcher.cancel(job)
            raise
        finally:
            self.metrics.queue_requests.set(self.batcher.queued_requests)
        timings.queue, timings.inference = job.queue_seconds, job.inference_seconds
        post = time.perf_counter()
        vectors = pooling.finish(job.future.result(), options.dimensions, options.normalize)
        timings.postprocess = time.perf_counter() - post
        timings.total = time.perf_counter() - start
        self._record(timings, len(texts), encoded.total_tokens)
        return Embedded(vectors=vectors, tokens=encoded.total_tokens, timings=timings)

    async def _wait(
        self, future: asyncio.Future[F32], timeout: float, disconnected: Callable[[], Awaitable[Any]] | None
    ) -> None:
        watchers: set[asyncio.Future[Any]] = {future}
        gone: asyncio.Future[Any] | None = None
        if disconnected is not None:
            gone = asyncio.ensure_future(disconnected())
            watchers.add(gone)
        try:
            done, _ = await asyncio.wait(watchers, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if gone is not None and not gone.done():
                gone.cancel()
        if future in done:
            future.result()
            return
        if gone is not None and gone in done:
            raise Unavailable("the client disconnected before its request ran")
        self.metrics.rejected.labels("deadline").inc()
        raise DeadlineExceeded(
            f"the request waited longer than its deadline of {timeout:.1f}s in the queue; retry later "
            "or send a larger x-request-timeout",
            retry_after=max(1.0, self.batcher.estimated_wait()),
        )

    def _record(self, timings: Timings, texts: int, tokens: int) -> None:
        stage = self.metrics.stage_seconds
        stage.labels("tokenize").observe(timings.tokenize)
        stage.labels("queue").observe(timings.queue)
        stage.labels("inference").observe(timings.inference)
        stage.labels("postprocess").observe(timings.postprocess)
        stage.labels("total").observe(timings.total)
        self.metrics.texts.inc(texts)
        self.metrics.tokens.inc(tokens)

    def _observe(self, batch: Batch, seconds: float) -> None:
        if seconds < 0:
            self.metrics.batch_failures.inc()
            return
        lengths = batch.lengths
        self.metrics.batch_size.observe(len(lengths))
        self.metrics.batch_tokens.observe(len(lengths) * max(lengths))
        self.metrics.padding_ratio.observe(padding_ratio(lengths))
        self.metrics.queue_tokens.set(self.batcher.queued_tokens)

    def check_batch_size(self, n: int) -> None:
        if n > self.settings.max_client_batch_size:
            raise PayloadTooLarge(
                f"{n} inputs in one request; the limit is {self.settings.max_client_batch_size} "
                "(split the request)",
                param="inputs",
            )

    def info(self) -> dict[str, Any]:
        m = self.manifest
        variant = m.variants[self.variant]
        return {
            "model_id": self.model_name,
            "model_sha": m.revision,
            "revision": m.revision,
            "source": m.source,
            "model_dtype": self.variant,
            "model_type": {"embedding": {"pooling": m.pooling}},
            "dims": m.dims,
            "max_input_length": m.max_length,
            "pooling": m.pooling,
            "normalize": m.normalize,
            "prompts": m.prompts,
            "variant": self.variant,
            "variants": sorted(m.variants),
            "parity": {
                "cos_mean": variant.parity.cos_mean,
                "cos_min": variant.parity.cos_min,
                "recall_at_10": variant.parity.recall_at_10,
            },
            "provider": self.provider,
            "max_client_batch_size": self.settings.max_client_batch_size,
            "max_batch_tokens": self.limits.max_batch_tokens,
            "max_batch_requests": self.limits.max_batch_size,
            "max_concurrent_requests": self.limits.max_queue_requests,
            "max_queue_tokens": self.limits.max_queue_tokens,
            "tokenization_workers": 2,
            "version": __version__,
        }
