"""The threads around the batching policy: admission under a lock, the assembler, one
worker per session, and the futures that carry results back to the event loop.

Flow::

    event loop            assembler thread              worker thread (one per session)
    ----------            ----------------              -------------------------------
    submit(job) ──queue──> scheduler.next_batch(),  ──slot──> drop cancelled rows, run the
      (429 when full)      collate                           session, scatter rows into each
    await job.future <──────── call_soon_threadsafe ────── job; resolve it when complete

What is admitted and which texts form a batch is :class:`server.scheduler.Scheduler`'s
decision (pure, tested without threads); this module only runs it.

- Workers come in groups, each serving some lanes with its own assembler: with a dedicated
  interactive session (the default) one group runs only interactive batches and the other
  only bulk ones, whose threads run at a lower OS priority (``bulk_nice``): a query runs at
  once, beside the running bulk batch, and the kernel gives its threads the cores. Without
  one, a single group serves both lanes, and a prepared bulk batch that finds interactive
  work waiting goes back unless it was bulk's owed turn, so a query waits for at most the
  batch already running and bulk still gets its share.
- Each group's assembler prepares its next batch while a worker runs the current one (one
  prepared batch per session).
- Admission raises at once: :class:`Overloaded` (queue full, with a Retry-After from the
  measured throughput), :class:`DeadlineExceeded` (the work ahead outlasts the deadline) or
  :class:`Unavailable` (closing).
- Shutdown: :meth:`Batcher.close` stops admission; threads finish everything queued, then
  exit on a sentinel and are joined. No thread polls.
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt

from server.collate import collate
from server.errors import InferenceFailed, Unavailable
from server.scheduler import BOTH_LANES, Batch, Item, Lane, Limits, Scheduler

log = logging.getLogger("server.batcher")

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]

__all__ = ["Batch", "BatchObserver", "Batcher", "Job", "Lane", "Limits", "Session", "Throughput"]

INTERACTIVE_ONLY = frozenset({Lane.INTERACTIVE})
BULK_ONLY = frozenset({Lane.BULK})


class Session(Protocol):
    """What the batcher needs of a model session: padded int64 inputs -> [n, dims] float32."""

    input_names: Sequence[str]

    def run(self, inputs: dict[str, I64]) -> F32: ...


class Job:
    """One request's texts on their way through the queue; resolved with ``[n, dims]``."""

    def __init__(self, loop: asyncio.AbstractEventLoop, n: int, dims: int, lane: Lane) -> None:
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


class Throughput:
    """Measured tokens per second of the model, an exponentially weighted average of batch
    rates; written by every worker, read at admission (a lock keeps the update whole)."""

    def __init__(self, initial: float = 0.0) -> None:
        self._rate = initial
        self._lock = threading.Lock()

    @property
    def tokens_per_second(self) -> float:
        return self._rate

    def record(self, tokens: int, seconds: float) -> None:
        if seconds <= 0:
            return
        rate = tokens / seconds
        with self._lock:
            self._rate = rate if not self._rate else 0.8 * self._rate + 0.2 * rate


def lower_thread_priority(nice: int) -> None:
    """Add ``nice`` to the calling thread's nice value (Linux keeps one per thread, and
    threads it starts inherit it). Always allowed; where the OS refuses, say so and go on."""
    tid = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + nice))
    except (AttributeError, OSError) as exc:
        log.warning("cannot lower the priority of bulk threads (%s); queries share the CPU equally", exc)


class BatchObserver(Protocol):
    """Told about every model run (metrics)."""

    def ran(self, batch: Batch, seconds: float) -> None: ...

    def failed(self, batch: Batch) -> None: ...


@dataclass
class _Group:
    """Workers serving the same lanes: their sessions, the assembler that prepares their
    batches (at most one waiting per session) and the OS priority of their threads."""

    name: str
    sessions: Sequence[Session]
    lanes: frozenset[Lane]
    throughput: Throughput
    lock: threading.Lock
    """The batcher's one lock, shared by every group's condition."""
    nice: int = 0
    slot: queue.Queue[Batch | None] = field(default_factory=queue.Queue)
    credits: threading.Semaphore = field(init=False)
    work: threading.Condition = field(init=False)
    """Notified when work of the group's lanes is queued: only this group's assembler wakes
    (each wake-up takes the GIL from the event loop)."""

    def __post_init__(self) -> None:
        self.credits = threading.Semaphore(len(self.sessions))
        self.work = threading.Condition(self.lock)


class Batcher:
    """The scheduler plus its assemblers and worker threads."""

    def __init__(
        self,
        sessions: Sequence[Session],
        limits: Limits,
        pad_id: int,
        dims: int,
        observer: BatchObserver | None = None,
        throughput: Throughput | None = None,
        *,
        interactive: Sequence[Session] = (),
        bulk_nice: int = 0,
        lower_priority: Callable[[int], None] = lower_thread_priority,
    ) -> None:
        """``sessions`` run bulk work, and interactive work too unless ``interactive``
        sessions are given; then ``sessions``' worker threads call ``lower_priority(bulk_nice)``
        first (the caller made their runtime's own threads at that priority)."""
        if not sessions:
            raise ValueError("the batcher needs at least one session")
        self.limits = limits
        self.dims = dims
        self.throughput = throughput or Throughput()
        self._pad_id = pad_id
        self._input_names = list(sessions[0].input_names)
        self._observer = observer
        self._lower_priority = lower_priority
        self._scheduler = Scheduler(limits)
        self._lock = threading.Lock()
        self._jobs = 0
        self._closed = False
        if interactive:
            self._groups = [
                _Group("interactive", interactive, INTERACTIVE_ONLY, Throughput(), lock=self._lock),
                _Group("bulk", sessions, BULK_ONLY, self.throughput, nice=bulk_nice, lock=self._lock),
            ]
        else:
            self._groups = [_Group("shared", sessions, BOTH_LANES, self.throughput, lock=self._lock)]
        self._threads: list[threading.Thread] = []
        for group in self._groups:
            self._threads.append(
                threading.Thread(
                    target=self._assemble_loop, args=(group,), name=f"assembler-{group.name}", daemon=True
                )
            )
            self._threads += [
                threading.Thread(
                    target=self._work_loop, args=(group, s), name=f"worker-{group.name}-{i}", daemon=True
                )
                for i, s in enumerate(group.sessions)
            ]
        for thread in self._threads:
            thread.start()

    @property
    def dedicated_interactive(self) -> bool:
        """Whether interactive work has sessions of its own."""
        return len(self._groups) > 1

    def _rate(self, lane: Lane) -> float:
        """Measured tokens/s of the workers that serve ``lane``."""
        group = next(g for g in self._groups if lane in g.lanes)
        return group.throughput.tokens_per_second or self.throughput.tokens_per_second

    # ---- event-loop side -------------------------------------------------------------

    def submit(
        self,
        ids: Sequence[I64],
        loop: asyncio.AbstractEventLoop,
        timeout: float | None = None,
        lane: Lane | None = None,
    ) -> Job:
        """Admit a request's texts in ``lane`` (None: by size) or raise at once: Overloaded
        (queue full), Unavailable (closing), DeadlineExceeded (the work ahead, at the measured
        rate, outlasts ``timeout``)."""
        tokens = sum(len(row) for row in ids)
        lane = self._scheduler.lane_for(tokens, lane)
        job = Job(loop, len(ids), self.dims, lane)
        with self._lock:
            self._refuse_if_closed()
            self._scheduler.check_admission(lane, tokens, self._jobs, timeout, self._rate(lane))
            job.items = self._scheduler.admit(job, lane, ids)
            self._jobs += 1
            self._wake(lane)
        job.future.add_done_callback(lambda _f: self._finished())
        return job

    def precheck(self, lane: Lane, timeout: float | None) -> None:
        """Refuse at once what admission would refuse whatever the request's size: closing
        (Unavailable), or more work ahead of ``lane`` than ``timeout`` (DeadlineExceeded).
        Called before tokenizing, so that a refused request costs no tokenizer work."""
        with self._lock:
            self._refuse_if_closed()
            self._scheduler.check_wait(lane, self._jobs, timeout, self._rate(lane))

    def _refuse_if_closed(self) -> None:
        """Unavailable once :meth:`close` began (the lock is held)."""
        if self._closed:
            raise Unavailable("the server is shutting down; retry on another replica")

    def cancel(self, job: Job) -> None:
        """Drop a job's items that are still queued (client gone or deadline passed)."""
        with self._lock:
            if job.cancelled:
                return
            job.cancelled = True
            self._scheduler.drop(job.lane, job.items)
        if not job.future.done():
            job.future.cancel()

    def _finished(self) -> None:
        with self._lock:
            self._jobs -= 1

    @property
    def queued_requests(self) -> int:
        return self._jobs

    @property
    def queued_tokens(self) -> int:
        return self._scheduler.queued_tokens

    def estimated_wait(self) -> float:
        """Seconds to drain the queued tokens at the measured rate (0 before any batch ran)."""
        rate = self.throughput.tokens_per_second
        return self.queued_tokens / rate if rate > 0 else 0.0

    def abandon(self, error: Exception) -> int:
        """Fail every job that still has queued texts with ``error``; returns how many.

        Used when the drain grace period is about to end: those requests get a clear,
        retryable answer instead of being cut off. Batches already running finish.
        """
        with self._lock:
            jobs = self._scheduler.drop_all()
        for job in jobs:
            job._fail(error)
        return len(jobs)

    def close(self, timeout: float | None = None) -> None:
        """Stop admission, let the threads finish what is queued, and join them."""
        with self._lock:
            self._closed = True
            for group in self._groups:
                group.work.notify_all()
        for thread in self._threads:
            thread.join(timeout)

    # ---- assembler threads -----------------------------------------------------------

    def _assemble_loop(self, group: _Group) -> None:
        while group.credits.acquire() and (batch := self._take(group)) is not None:
            batch.inputs = collate([item.ids for item in batch.items], self._pad_id, self._input_names)
            group.slot.put(batch)
        for _ in group.sessions:
            group.slot.put(None)

    def _take(self, group: _Group) -> Batch | None:
        """Block until a batch of the group's lanes can be formed; None once closed and empty."""
        with self._lock:
            if Lane.BULK in group.lanes:  # the queue's pace is bulk's
                self._scheduler.pace(group.throughput.tokens_per_second)
            while (batch := self._scheduler.next_batch(group.lanes)) is None:
                if self._closed:
                    return None
                group.work.wait()
            return batch

    # ---- worker threads --------------------------------------------------------------

    def _work_loop(self, group: _Group, session: Session) -> None:
        if group.nice:
            self._lower_priority(group.nice)
        while (batch := group.slot.get()) is not None:
            group.credits.release()
            if self._requeue_if_interactive_waits(batch):
                continue
            live = [item for item in batch.items if not item.job.cancelled]
            if not live:
                continue
            if len(live) < len(batch.items):
                inputs = collate([i.ids for i in live], self._pad_id, self._input_names)
                batch = Batch(batch.lane, live, inputs)
            self._run(group, session, batch)

    def _requeue_if_interactive_waits(self, batch: Batch) -> bool:
        with self._lock:
            if self._closed or not self._scheduler.yields_to_interactive(batch):
                return False
            self._scheduler.requeue(batch, [item for item in batch.items if not item.job.cancelled])
            self._wake(batch.lane)
            return True

    def _wake(self, lane: Lane) -> None:
        """Wake the assemblers that serve ``lane`` (the lock is held)."""
        for group in self._groups:
            if lane in group.lanes:
                group.work.notify()

    def _run(self, group: _Group, session: Session, batch: Batch) -> None:
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
            if self._observer:
                self._observer.failed(batch)
            return
        elapsed = time.perf_counter() - started
        group.throughput.record(sum(batch.lengths), elapsed)
        by_job: dict[Job, list[tuple[int, F32]]] = {}
        for row, item in enumerate(batch.items):
            by_job.setdefault(item.job, []).append((item.index, vectors[row]))
        for job, rows in by_job.items():
            job._deliver(rows)
        if self._observer:
            self._observer.ran(batch, elapsed)
