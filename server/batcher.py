"""Bounded admission, token-budget batch assembly, and the threads that own the sessions.

Flow::

    event loop            assembler thread              worker thread (one per session)
    ----------            ----------------              -------------------------------
    submit(job) ──queue──> take(): pick lane, pick ──slot──> drop cancelled rows, run the
      (429 when full)      a length window, collate      session, scatter rows into each
    await job.future <──────── call_soon_threadsafe ────── job; resolve it when complete

- A request is a :class:`Job`; each of its texts is an :class:`Item` that knows its token
  count. Items wait in one of two lanes: *interactive* (small requests such as RAG queries)
  and *bulk*; interactive goes first, but when both wait at least one batch in
  ``bulk_share`` goes to bulk, so neither starves.
- A batch starts from the lane's oldest item (no item waits forever) and grows greedily
  with the neighbouring lengths that keep the padded batch most efficient, within the
  token budget (``n x longest``, padding counted) and the size cap, and stops before the
  batch's real-token share falls under :data:`MIN_EFFICIENCY`. Only items within
  :data:`HORIZON_BATCHES` token budgets of the oldest are candidates, so a request is not
  spread across the whole queue and requests complete roughly in arrival order. Large
  requests are split across batches and reassembled by index.
- The assembler prepares the next batch while a worker runs the current one (one prepared
  batch per session). A prefetched bulk batch that finds interactive work waiting goes back
  to the queue, unless it was bulk's owed turn, so a query waits for at most the batch
  already running and bulk still gets its share.
- Admission is bounded in requests and in queued tokens, of which bulk work may take all
  but :data:`INTERACTIVE_RESERVE`; a full queue raises
  :class:`Overloaded` at once with a Retry-After estimate from the measured throughput, and
  a request whose deadline the work ahead of it would outlast (queued tokens / measured
  tokens per second) gets :class:`DeadlineExceeded` at once instead of timing out later.
- Shutdown: :meth:`Batcher.close` stops admission; threads finish everything queued, then
  exit on a sentinel and are joined. No thread polls.
"""

from __future__ import annotations

import asyncio
import bisect
import heapq
import itertools
import logging
import math
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt

from server.collate import collate
from server.errors import DeadlineExceeded, InferenceFailed, Overloaded, Unavailable

log = logging.getLogger("server.batcher")

MIN_EFFICIENCY = 0.8
# Batches draw from at most this many budgets' worth of the oldest queued tokens, so that
# requests finish roughly in arrival order instead of all at once when the queue drains.
HORIZON_BATCHES = 4
INTERACTIVE_RESERVE = 0.1
"""Share of the queue bounds kept for interactive requests (bulk is refused before it)."""
INTERACTIVE, BULK = 0, 1
_QUEUED, _TAKEN, _DROPPED = 0, 1, 2

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]


class Session(Protocol):
    """What the batcher needs of a model session: padded int64 inputs -> [n, dims] float32."""

    input_names: Sequence[str]

    def run(self, inputs: dict[str, I64]) -> F32: ...


class Job:
    """One request's texts on their way through the queue; resolved with ``[n, dims]``."""

    def __init__(self, loop: asyncio.AbstractEventLoop, n: int, dims: int, lane: int) -> None:
        self.loop = loop
        self.future: asyncio.Future[F32] = loop.create_future()
        self.output = np.empty((n, dims), dtype=np.float32)
        self.lane = lane
        self.remaining = n
        self.items: list[Item] = []
        self.submitted_at = time.perf_counter()
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self.cancelled = False
        self._lock = threading.Lock()

    @property
    def queue_seconds(self) -> float:
        return (self.started_at or self.submitted_at) - self.submitted_at

    @property
    def inference_seconds(self) -> float:
        if self.started_at is None or self.finished_at is None:
            return 0.0
        return self.finished_at - self.started_at

    def _deliver(self, rows: Sequence[tuple[int, F32]]) -> None:
        """Scatter result rows (worker thread); resolve the future on the last one."""
        with self._lock:
            for index, row in rows:
                self.output[index] = row
            self.remaining -= len(rows)
            done = self.remaining == 0
        if done:
            self.finished_at = time.perf_counter()
            self.loop.call_soon_threadsafe(_resolve, self.future, self.output)

    def _fail(self, error: Exception) -> None:
        with self._lock:
            if self.remaining <= 0:
                return
            self.remaining = 0
        self.loop.call_soon_threadsafe(_reject, self.future, error)


def _resolve(future: asyncio.Future[F32], value: F32) -> None:
    if not future.done():
        future.set_result(value)


def _reject(future: asyncio.Future[F32], error: Exception) -> None:
    if not future.done():
        future.set_exception(error)


@dataclass(eq=False)
class Item:
    """One text of a job: its token ids and where its vector goes."""

    job: Job
    index: int
    ids: I64
    seq: int
    position: int = 0
    """Tokens admitted to the lane before this item: its place in the lane's token stream."""
    state: int = _QUEUED

    @property
    def length(self) -> int:
        return len(self.ids)


@dataclass
class _Lane:
    """Waiting items of one priority class, indexed by arrival and by length."""

    arrival: list[tuple[int, int, Item]] = field(default_factory=list)
    by_length: dict[int, deque[Item]] = field(default_factory=dict)
    lengths: list[int] = field(default_factory=list)
    count: int = 0
    tokens: int = 0
    admitted_tokens: int = 0
    pushes: itertools.count[int] = field(default_factory=itertools.count)

    def admit(self, item: Item) -> None:
        """Queue a new item, stamping its position in the lane's token stream."""
        item.position = self.admitted_tokens
        self.admitted_tokens += item.length
        self.push(item)

    def push(self, item: Item) -> None:
        # A requeued item is pushed again; its stale entries are skipped by state.
        heapq.heappush(self.arrival, (item.seq, next(self.pushes), item))
        bucket = self.by_length.get(item.length)
        if bucket is None:
            bucket = self.by_length[item.length] = deque()
            bisect.insort(self.lengths, item.length)
        bucket.append(item)
        self.count += 1
        self.tokens += item.length

    def oldest(self) -> Item | None:
        while self.arrival and self.arrival[0][2].state != _QUEUED:
            heapq.heappop(self.arrival)
        return self.arrival[0][2] if self.arrival else None

    def pop_length(self, length: int, horizon: int) -> Item | None:
        """The oldest queued item of exactly ``length`` tokens whose position is at most
        ``horizon``, taken out of the lane; None if there is none."""
        bucket = self.by_length.get(length)
        while bucket and bucket[0].state != _QUEUED:
            bucket.popleft()
        if not bucket:
            self._forget(length)
            return None
        if bucket[0].position > horizon:
            return None
        item = bucket.popleft()
        if not bucket:
            self._forget(length)
        self._take(item)
        return item

    def remove(self, item: Item) -> None:
        """Take a specific item out (the anchor); its bucket entry is skipped later."""
        self._take(item)

    def _take(self, item: Item) -> None:
        item.state = _TAKEN
        self.count -= 1
        self.tokens -= item.length

    def drop(self, item: Item) -> None:
        item.state = _DROPPED
        self.count -= 1
        self.tokens -= item.length

    def _forget(self, length: int) -> None:
        if length in self.by_length and not self.by_length[length]:
            del self.by_length[length]
            self.lengths.pop(bisect.bisect_left(self.lengths, length))


@dataclass
class Batch:
    """Items chosen for one model run, with their collated inputs."""

    lane: int
    items: list[Item]
    inputs: dict[str, I64] = field(default_factory=dict)
    owed: bool = False
    """A bulk batch chosen while interactive work waited (bulk's turn); never put back."""

    @property
    def lengths(self) -> list[int]:
        return [item.length for item in self.items]


@dataclass(frozen=True)
class Limits:
    """Batching and admission limits (from Settings)."""

    max_batch_tokens: int
    max_batch_size: int
    max_queue_requests: int
    max_queue_tokens: int
    interactive_max_tokens: int
    bulk_share: int


BatchObserver = Callable[[Batch, float], None]


class Batcher:
    """The queue plus its assembler and worker threads."""

    def __init__(
        self,
        sessions: Sequence[Session],
        limits: Limits,
        pad_id: int,
        dims: int,
        observe: BatchObserver | None = None,
    ) -> None:
        if not sessions:
            raise ValueError("the batcher needs at least one session")
        self.limits = limits
        self.dims = dims
        self._pad_id = pad_id
        self._input_names = list(sessions[0].input_names)
        self._observe = observe
        self._lanes = (_Lane(), _Lane())
        self._cond = threading.Condition()
        self._seq = itertools.count()
        self._jobs = 0
        self._closed = False
        self._since_bulk = 0
        self._tokens_per_second = 0.0
        # One prepared batch per session at most: the assembler takes a credit before it
        # forms a batch and a worker returns it when it picks the batch up.
        self._slot: queue.Queue[Batch | None] = queue.Queue()
        self._credits = threading.Semaphore(len(sessions))
        self._threads = [threading.Thread(target=self._assemble_loop, name="batch-assembler", daemon=True)]
        self._threads += [
            threading.Thread(target=self._work_loop, args=(s,), name=f"session-worker-{i}", daemon=True)
            for i, s in enumerate(sessions)
        ]
        for thread in self._threads:
            thread.start()

    # ---- event-loop side -------------------------------------------------------------

    def submit(
        self, ids: Sequence[I64], loop: asyncio.AbstractEventLoop, timeout: float | None = None
    ) -> Job:
        """Admit a request's texts or raise at once: Overloaded (queue full), Unavailable
        (closing), DeadlineExceeded (the work ahead, at the measured rate, outlasts ``timeout``)."""
        tokens = sum(len(row) for row in ids)
        lane = INTERACTIVE if tokens <= self.limits.interactive_max_tokens else BULK
        job = Job(loop, len(ids), self.dims, lane)
        with self._cond:
            if self._closed:
                raise Unavailable("the server is shutting down; retry on another replica")
            queued = self.queued_tokens
            ahead = self._lanes[INTERACTIVE].tokens if lane == INTERACTIVE else queued
            rate = self._tokens_per_second
            if timeout is not None and self._jobs and rate > 0 and (ahead + tokens) / rate > timeout:
                wait = (ahead + tokens) / rate
                raise DeadlineExceeded(
                    f"the queue holds about {wait:.0f}s of work, more than this request's deadline of "
                    f"{timeout:.1f}s; retry later",
                    retry_after=min(60.0, max(1.0, wait - timeout)),
                )
            max_requests, max_tokens = self._admission_bounds(lane)
            if self._jobs and (self._jobs + 1 > max_requests or queued + tokens > max_tokens):
                raise Overloaded(
                    f"the queue is full ({self._jobs} requests, {queued} tokens waiting); retry later",
                    retry_after=self._retry_after(queued),
                )
            for index, row in enumerate(ids):
                item = Item(job, index, row, next(self._seq))
                job.items.append(item)
                self._lanes[lane].admit(item)
            self._jobs += 1
            self._cond.notify()
        job.future.add_done_callback(lambda _f: self._finished(job))
        return job

    def _admission_bounds(self, lane: int) -> tuple[int, int]:
        """Queue bounds (requests, tokens) for a new request of ``lane``: bulk work may fill
        all but :data:`INTERACTIVE_RESERVE` of the queue, so a query is still admitted when
        ingest has filled it."""
        requests, tokens = self.limits.max_queue_requests, self.limits.max_queue_tokens
        if lane == INTERACTIVE:
            return requests, tokens
        return (
            requests - max(1, math.ceil(INTERACTIVE_RESERVE * requests)),
            tokens - max(self.limits.interactive_max_tokens, math.ceil(INTERACTIVE_RESERVE * tokens)),
        )

    def cancel(self, job: Job) -> None:
        """Drop a job's items that are still queued (client gone or deadline passed)."""
        with self._cond:
            if job.cancelled:
                return
            job.cancelled = True
            lane = self._lanes[job.lane]
            for item in job.items:
                if item.state == _QUEUED:
                    lane.drop(item)
        if not job.future.done():
            job.future.cancel()

    def _finished(self, job: Job) -> None:
        with self._cond:
            self._jobs -= 1

    @property
    def queued_requests(self) -> int:
        return self._jobs

    @property
    def queued_tokens(self) -> int:
        return self._lanes[INTERACTIVE].tokens + self._lanes[BULK].tokens

    def estimated_wait(self) -> float:
        """Seconds to drain the queued tokens at the measured rate (0 before any batch ran)."""
        rate = self._tokens_per_second
        return self.queued_tokens / rate if rate > 0 else 0.0

    def _retry_after(self, queued_tokens: int) -> float:
        rate = self._tokens_per_second
        return min(60.0, max(1.0, queued_tokens / rate)) if rate > 0 else 1.0

    def abandon(self, error: Exception) -> int:
        """Fail every job that still has queued texts with ``error``; returns how many.

        Used when the drain grace period is about to end: those requests get a clear,
        retryable answer instead of being cut off. Batches already running finish.
        """
        jobs: set[Job] = set()
        with self._cond:
            for lane in self._lanes:
                for _, _, item in lane.arrival:
                    if item.state == _QUEUED:
                        lane.drop(item)
                        jobs.add(item.job)
        for job in jobs:
            job._fail(error)
        return len(jobs)

    def close(self, timeout: float | None = None) -> None:
        """Stop admission, let the threads finish what is queued, and join them."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout)

    # ---- assembler thread ------------------------------------------------------------

    def _assemble_loop(self) -> None:
        while self._credits.acquire() and (batch := self._take()) is not None:
            batch.inputs = collate([item.ids for item in batch.items], self._pad_id, self._input_names)
            self._slot.put(batch)
        for _ in range(len(self._threads) - 1):
            self._slot.put(None)

    def _take(self) -> Batch | None:
        """Block until a batch can be formed; None once closed and empty."""
        with self._cond:
            while True:
                lane = self._pick_lane()
                if lane is not None:
                    owed = lane == BULK and self._lanes[INTERACTIVE].count > 0
                    return Batch(lane, self._window(self._lanes[lane]), owed=owed)
                if self._closed:
                    return None
                self._cond.wait()

    def _pick_lane(self) -> int | None:
        interactive, bulk = (lane.count > 0 for lane in self._lanes)
        if interactive and (not bulk or self._since_bulk < self.limits.bulk_share - 1):
            self._since_bulk += 1
            return INTERACTIVE
        if bulk:
            self._since_bulk = 0
            return BULK
        return None

    def _window(self, lane: _Lane) -> list[Item]:
        """Items for one batch: the oldest, then the lengths that pad least around it,
        taken only from the next :data:`HORIZON_BATCHES` budgets' worth of queued tokens."""
        anchor = lane.oldest()
        assert anchor is not None
        lane.remove(anchor)
        batch, longest, real = [anchor], anchor.length, anchor.length
        budget, cap = self.limits.max_batch_tokens, self.limits.max_batch_size
        horizon = anchor.position + HORIZON_BATCHES * budget
        lengths = list(lane.lengths)
        while len(batch) < cap and lengths:
            n = len(batch) + 1
            split = bisect.bisect_right(lengths, longest)
            options: list[tuple[float, int, int]] = []
            if split > 0 and n * longest <= budget:
                shorter = lengths[split - 1]
                options.append(((real + shorter) / (n * longest), shorter, longest))
            if split < len(lengths) and n * lengths[split] <= budget:
                longer = lengths[split]
                options.append(((real + longer) / (n * longer), longer, longer))
            if not options:
                break
            efficiency, length, new_longest = max(options)
            if efficiency < MIN_EFFICIENCY:
                break
            item = lane.pop_length(length, horizon)
            if item is None:
                lengths.remove(length)
                continue
            batch.append(item)
            real += length
            longest = new_longest
        return batch

    # ---- worker threads --------------------------------------------------------------

    def _work_loop(self, session: Session) -> None:
        while (batch := self._slot.get()) is not None:
            self._credits.release()
            if batch.lane == BULK and not batch.owed and self._requeue_if_interactive_waits(batch):
                continue
            live = [item for item in batch.items if not item.job.cancelled]
            if not live:
                continue
            if len(live) < len(batch.items):
                batch = Batch(
                    batch.lane, live, collate([i.ids for i in live], self._pad_id, self._input_names)
                )
            self._run(session, batch)

    def _requeue_if_interactive_waits(self, batch: Batch) -> bool:
        with self._cond:
            if self._lanes[INTERACTIVE].count == 0 or self._closed:
                return False
            lane = self._lanes[batch.lane]
            for item in batch.items:
                if not item.job.cancelled:
                    item.state = _QUEUED
                    lane.push(item)
            self._cond.notify()
            return True

    def _run(self, session: Session, batch: Batch) -> None:
        started = time.perf_counter()
        for item in batch.items:
            if item.job.started_at is None:
                item.job.started_at = started
        try:
            vectors = session.run(batch.inputs)
            if vectors.shape != (len(batch.items), self.dims):
                raise RuntimeError(
                    f"model returned shape {vectors.shape}, expected ({len(batch.items)}, {self.dims})"
                )
        except Exception as exc:
            log.exception("inference failed for a batch of %d texts", len(batch.items))
            error = InferenceFailed(
                f"inference failed: {type(exc).__name__}; the batch was dropped, retry the request"
            )
            for job in {item.job for item in batch.items}:
                job._fail(error)
            if self._observe:
                self._observe(batch, -1.0)
            return
        elapsed = time.perf_counter() - started
        tokens = sum(batch.lengths)
        rate = tokens / elapsed if elapsed > 0 else 0.0
        self._tokens_per_second = (
            rate if not self._tokens_per_second else (0.8 * self._tokens_per_second + 0.2 * rate)
        )
        by_job: dict[Job, list[tuple[int, F32]]] = {}
        for row, item in enumerate(batch.items):
            by_job.setdefault(item.job, []).append((item.index, vectors[row]))
        for job, rows in by_job.items():
            job._deliver(rows)
        if self._observe:
            self._observe(batch, elapsed)
