"""The embedding engine: tokenize -> submit -> wait -> post-process, with stage timings.

The engine knows nothing of HTTP. It owns the tokenizer, the sessions and the batcher,
and is built once per process by :meth:`Engine.load` (blocking: call it off the event
loop). :meth:`Engine.embed` is what every embedding route calls.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from server import __version__, pooling
from server.batcher import Batch, Batcher, Job, Lane, Limits, Session, Throughput
from server.collate import padding_ratio
from server.errors import (
    ClientGone,
    DeadlineExceeded,
    EmbedError,
    PayloadTooLarge,
    TokenizerBusy,
    ValidationError,
)
from server.manifest import Manifest
from server.metrics import Metrics
from server.settings import Settings
from server.tokenizer import Direction, Encoded, Tokenizer

log = logging.getLogger("server.engine")

F32 = npt.NDArray[np.float32]
_T = TypeVar("_T")
TOKENIZE_WORKERS = 2
INLINE_TOKENIZE_CHARS = 4096
"""Requests of at most this many characters are tokenized on the event loop (tens of
microseconds): a query never waits behind bulk tokenization in the pool."""
TOKENIZE_BACKLOG_BODIES = 4
"""Characters waiting for or in the tokenizer pool are bounded by this many maximum-size
bodies; past that a request is refused with 429 before any work is done for it."""
MAX_TOKENIZE_TOKENS = 16384
"""Most tokens one ``/tokenize`` response lists (about 1 MB of JSON); more is a 413."""


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


@dataclass(slots=True)
class Token:
    """One token of a ``/tokenize`` answer; ``start``/``stop`` are character offsets
    (None for special tokens). orjson renders it as an object."""

    id: int
    text: str
    special: bool
    start: int | None
    stop: int | None


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
        interactive: Sequence[Session] = (),
        variant: str,
        provider: str,
        max_batch_tokens: int,
        throughput: Throughput | None = None,
    ) -> None:
        self.settings = settings
        self.manifest = manifest
        self.tokenizer = tokenizer
        self.metrics = metrics
        self.variant = variant
        self.provider = provider
        self.model_name = settings.served_model_name or manifest.name
        self.interactive_sessions = len(interactive)
        self.limits = Limits(
            max_batch_tokens=max(max_batch_tokens, manifest.max_length),
            max_batch_size=settings.max_batch_size,
            max_queue_requests=settings.max_queue_requests,
            max_queue_tokens=settings.max_queue_tokens,
            interactive_max_tokens=settings.interactive_max_tokens,
            bulk_share=settings.bulk_share,
        )
        self.batcher = Batcher(
            sessions,
            self.limits,
            tokenizer.pad_id,
            manifest.dims,
            observer=self,
            throughput=throughput,
            interactive=interactive,
            bulk_nice=settings.bulk_nice,
        )
        metrics.queue_requests.set_function(lambda: self.batcher.queued_requests)
        metrics.queue_tokens.set_function(lambda: self.batcher.queued_tokens)
        self._tokenize_pool = ThreadPoolExecutor(max_workers=TOKENIZE_WORKERS, thread_name_prefix="tokenize")
        self._backlog_chars = 0
        self._max_backlog_chars = TOKENIZE_BACKLOG_BODIES * settings.max_payload_bytes

    @property
    def queued_requests(self) -> int:
        """Requests admitted and not finished."""
        return self.batcher.queued_requests

    def abandon_queued(self, error: EmbedError) -> int:
        """Answer every request that still has queued texts with ``error`` (the end of a
        drain); batches already running finish. Returns how many were answered."""
        return self.batcher.abandon(error)

    def close(self) -> None:
        """Finish queued work and stop the threads."""
        self.batcher.close()
        self._tokenize_pool.shutdown(wait=True)

    def _prompted(self, texts: Sequence[str], prompt_name: str | None) -> Sequence[str]:
        """``texts`` with the named prompt prefixed; with none named, the model's default
        prompt (sentence-transformers' ``default_prompt_name``), if it has one."""
        prompt_name = prompt_name if prompt_name is not None else self.manifest.default_prompt_name
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
        self,
        texts: Sequence[str],
        options: EmbedOptions,
        *,
        deadline: float | None = None,
        gone: asyncio.Future[Any] | None = None,
    ) -> Encoded:
        """Token ids of ``texts``: small requests inline, large ones in the bounded pool.

        Raises PayloadTooLarge (too long and no truncation), TokenizerBusy (pool backlog
        full), DeadlineExceeded (``deadline``, a ``time.monotonic()`` value, passed before
        the work began) and ClientGone (``gone`` resolved first).
        """
        prompted = self._prompted(texts, options.prompt_name)

        def work() -> Encoded:
            return self.tokenizer.encode(prompted, truncate=options.truncate, direction=options.direction)

        chars = sum(len(text) for text in prompted)
        if chars <= INLINE_TOKENIZE_CHARS:
            return work()
        return await self._offload(work, chars, deadline, gone)

    async def tokens(
        self,
        texts: Sequence[str],
        options: EmbedOptions,
        *,
        add_special_tokens: bool,
    ) -> list[list[Token]]:
        """Per input, its tokens with text and character offsets (``/tokenize``), built in the
        pool; 413 past :data:`MAX_TOKENIZE_TOKENS` tokens in all."""
        prompted = self._prompted(texts, options.prompt_name)

        def work() -> list[list[Token]]:
            encoded = self.tokenizer.encode(
                prompted, truncate=options.truncate, direction=options.direction, with_offsets=True
            )
            if encoded.total_tokens > MAX_TOKENIZE_TOKENS:
                raise PayloadTooLarge(
                    f"the inputs have {encoded.total_tokens} tokens; /tokenize lists at most "
                    f"{MAX_TOKENIZE_TOKENS} per request (split the request)",
                    param="inputs",
                )
            assert encoded.offsets is not None and encoded.special is not None
            text_of = self.tokenizer.id_to_token
            return [
                [
                    Token(i, text_of(i), bool(s), None if s else start, None if s else stop)
                    for i, (start, stop), s in zip(ids.tolist(), offsets, special, strict=True)
                    if add_special_tokens or not s
                ]
                for ids, offsets, special in zip(encoded.ids, encoded.offsets, encoded.special, strict=True)
            ]

        return await self._offload(work, sum(len(text) for text in prompted), None, None)

    async def _offload(
        self,
        work: Callable[[], _T],
        chars: int,
        deadline: float | None,
        gone: asyncio.Future[Any] | None,
    ) -> _T:
        """Run ``work`` in the tokenizer pool, within the backlog bound; skip it if the client
        left or the deadline passed before a worker picked it up."""
        if self._backlog_chars and self._backlog_chars + chars > self._max_backlog_chars:
            raise TokenizerBusy(
                f"{self._backlog_chars} characters are waiting to be tokenized; retry shortly",
                retry_after=1,
            )
        abandoned = threading.Event()

        def guarded() -> _T:
            if abandoned.is_set():
                raise ClientGone("abandoned before tokenization")
            if deadline is not None and time.monotonic() > deadline:
                raise DeadlineExceeded("the request's deadline passed before it was tokenized", retry_after=1)
            return work()

        loop = asyncio.get_running_loop()
        self._backlog_chars += chars

        def release(_: object) -> None:
            loop.call_soon_threadsafe(self._release_backlog, chars)

        pending = self._tokenize_pool.submit(guarded)
        pending.add_done_callback(release)
        result = asyncio.wrap_future(pending)
        watched: set[asyncio.Future[Any]] = {result} if gone is None else {result, gone}
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        done, _ = await asyncio.wait(watched, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if result in done:
            return result.result()
        abandoned.set()
        pending.cancel()
        result.cancel()
        if gone is not None and gone in done:
            raise ClientGone("the client disconnected before its request was tokenized")
        raise DeadlineExceeded("the request's deadline passed before it was tokenized", retry_after=1)

    def _release_backlog(self, chars: int) -> None:
        self._backlog_chars -= chars

    async def embed(
        self,
        texts: Sequence[str],
        options: EmbedOptions,
        *,
        timeout: float,
        disconnected: Callable[[], Awaitable[Any]] | None = None,
        lane: Lane | None = None,
    ) -> Embedded:
        """Embed ``texts`` in order. Raises the errors of errors.py (429, 503, 413, 500, 499).

        ``timeout`` bounds the wait before the work starts (tokenizer pool and queue);
        ``disconnected`` resolves when the client goes away, and its work is then dropped;
        ``lane`` is the class the caller stated (None: chosen by size).
        """
        if options.dimensions is not None and not 1 <= options.dimensions <= self.manifest.dims:
            raise ValidationError(
                f"dimensions must be between 1 and {self.manifest.dims}", param="dimensions"
            )
        gone = asyncio.ensure_future(disconnected()) if disconnected is not None else None
        try:
            return await self._embed(texts, options, timeout, gone, lane)
        finally:
            if gone is not None and not gone.done():
                gone.cancel()

    async def _embed(
        self,
        texts: Sequence[str],
        options: EmbedOptions,
        timeout: float,
        gone: asyncio.Future[Any] | None,
        lane: Lane | None,
    ) -> Embedded:
        timings = Timings()
        start = time.perf_counter()
        deadline = time.monotonic() + timeout
        # The queue's wait, checked before tokenizing (an unstated class is checked as a query,
        # the lenient side; the full check follows admission with the token count).
        self.batcher.precheck(lane or Lane.INTERACTIVE, timeout)
        encoded = await self.tokenize(texts, options, deadline=deadline, gone=gone)
        timings.tokenize = time.perf_counter() - start
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise DeadlineExceeded("the request's deadline passed during tokenization", retry_after=1)
        job = self.batcher.submit(encoded.ids, asyncio.get_running_loop(), timeout=remaining, lane=lane)
        try:
            await self._wait(job, remaining, gone)
        except BaseException:
            self.batcher.cancel(job)
            raise
        timings.queue, timings.inference = job.queue_seconds, job.inference_seconds
        post = time.perf_counter()
        vectors = pooling.finish(job.future.result(), options.dimensions, options.normalize)
        timings.postprocess = time.perf_counter() - post
        timings.total = time.perf_counter() - start
        self._record(timings, len(texts), encoded.total_tokens, job.lane)
        return Embedded(vectors=vectors, tokens=encoded.total_tokens, timings=timings)

    async def _wait(self, job: Job, timeout: float, gone: asyncio.Future[Any] | None) -> None:
        """Wait for ``job``. Its deadline bounds the wait before its texts start, never a
        running request: work that has begun is finished, not thrown away and redone on retry."""
        future = job.future
        watchers: set[asyncio.Future[Any]] = {future} if gone is None else {future, gone}
        done, _ = await asyncio.wait(watchers, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if not done and job.started_at is not None:
            done, _ = await asyncio.wait(watchers, return_when=asyncio.FIRST_COMPLETED)
        if future in done:
            future.result()
            return
        if gone is not None and gone in done:
            raise ClientGone("the client disconnected before its request ran")
        raise DeadlineExceeded(
            f"the request waited longer than its deadline of {timeout:.1f}s in the queue; retry later "
            "or send a larger x-request-timeout",
            retry_after=max(1.0, self.batcher.estimated_wait()),
        )

    def _record(self, timings: Timings, texts: int, tokens: int, lane: Lane) -> None:
        self.metrics.lane_seconds.labels(lane.label, "queue").observe(timings.queue)
        self.metrics.lane_seconds.labels(lane.label, "total").observe(timings.total)
        self.metrics.lane_texts.labels(lane.label).inc(texts)
        stage = self.metrics.stage_seconds
        stage.labels("tokenize").observe(timings.tokenize)
        stage.labels("queue").observe(timings.queue)
        stage.labels("inference").observe(timings.inference)
        stage.labels("postprocess").observe(timings.postprocess)
        stage.labels("total").observe(timings.total)
        self.metrics.texts.inc(texts)
        self.metrics.tokens.inc(tokens)

    def ran(self, batch: Batch, seconds: float) -> None:
        """One model run finished (worker thread): batch metrics."""
        lengths = batch.lengths
        self.metrics.batch_size.observe(len(lengths))
        self.metrics.batch_tokens.observe(len(lengths) * max(lengths))
        self.metrics.padding_ratio.observe(padding_ratio(lengths))

    def failed(self, batch: Batch) -> None:
        """One model run raised (worker thread); its requests got a 500."""
        self.metrics.batch_failures.inc()

    def info(self) -> dict[str, Any]:
        """What ``/info`` shows: the model, the served variant (its parity and whether it is
        batch-invariant, as the manifest records them), the provider and the limits."""
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
            "default_prompt_name": m.default_prompt_name,
            "variant": self.variant,
            "variants": sorted(m.variants),
            "parity": {
                "cos_mean": variant.parity.cos_mean,
                "cos_min": variant.parity.cos_min,
                "recall_at_10": variant.parity.recall_at_10,
                "domains": {name: asdict(figures) for name, figures in variant.domains.items()},
                "eval": variant.eval,
                "eval_data": m.eval_data,
            },
            "batch_invariant": variant.batch_invariant,
            "batch_max_abs_diff": variant.batch_max_abs_diff,
            "provider": self.provider,
            "max_client_batch_size": self.settings.max_client_batch_size,
            "max_batch_tokens": self.limits.max_batch_tokens,
            "max_batch_requests": self.limits.max_batch_size,
            "max_concurrent_requests": self.limits.max_queue_requests,
            "max_queue_tokens": self.limits.max_queue_tokens,
            "interactive_max_tokens": self.limits.interactive_max_tokens,
            "interactive_sessions": self.interactive_sessions,
            "tokenization_workers": TOKENIZE_WORKERS,
            "version": __version__,
        }
