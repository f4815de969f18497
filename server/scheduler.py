"""The batching policy: what is admitted, and which queued texts form the next batch.

Pure: no threads, no locks, no clocks, no futures. :class:`server.batcher.Batcher` owns the
threads and calls every method here under its one lock; tests drive it directly.

- Each text of a request is an :class:`Item` that knows its token count. Items wait in one of
  two lanes, :attr:`Lane.INTERACTIVE` (small requests such as RAG queries) and
  :attr:`Lane.BULK`; interactive goes first, but when both wait at least one batch in
  ``bulk_share`` goes to bulk, so neither starves.
- A batch starts from the lane's oldest item (no item waits forever) and grows greedily with
  the neighbouring lengths that keep the padded batch most efficient, within the token budget
  (``n x longest``, padding counted) and the size cap, and stops before the batch's real-token
  share falls under :data:`MIN_EFFICIENCY`. Only items admitted within the horizon after the
  oldest are candidates (:data:`HORIZON_BATCHES` budgets, or :data:`HORIZON_SECONDS` of work
  on a slow model), so requests complete roughly in arrival order.
- Admission is bounded in requests and in queued tokens, of which bulk work may take all but
  :data:`INTERACTIVE_RESERVE`; a request whose deadline the work ahead of it (plus the horizon
  of newer work that may pass it) would outlast at the measured rate is refused at once
  instead of timing out later.
- Workers ask for batches of the lanes they serve (:meth:`Scheduler.next_batch`). With a
  dedicated interactive session, its worker takes only interactive batches and the other
  workers only bulk ones, so a query never waits for a bulk batch. Where one worker serves
  both lanes, a prepared bulk batch that finds interactive work waiting is put back
  (:meth:`Scheduler.yields_to_interactive`) unless it was bulk's owed turn.
"""

from __future__ import annotations

import bisect
import enum
import heapq
import itertools
import math
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from server.errors import DeadlineExceeded, Overloaded

MIN_EFFICIENCY = 0.8
HORIZON_BATCHES = 4
"""Batches draw from at most this many budgets' worth of the oldest queued tokens, so that
requests finish roughly in arrival order instead of all at once when the queue drains."""
HORIZON_SECONDS = 1.0
"""...and from at most this many seconds of work at the measured rate: on a slow model a
text may be passed over by newer ones for about this long, not for four budgets (16 s of
MPNet on two cores)."""
INTERACTIVE_RESERVE = 0.1
"""Share of the queue bounds kept for interactive requests (bulk is refused before it)."""

I64 = npt.NDArray[np.int64]


class Lane(enum.IntEnum):
    INTERACTIVE = 0
    BULK = 1

    @property
    def label(self) -> str:
        """The class's name on the wire (``?priority=``) and in metrics (``lane``)."""
        return self.name.lower()


BOTH_LANES = frozenset(Lane)


class ItemState(enum.Enum):
    QUEUED = enum.auto()
    TAKEN = enum.auto()
    DROPPED = enum.auto()


@dataclass(frozen=True)
class Limits:
    """Batching and admission limits (from Settings)."""

    max_batch_tokens: int
    max_batch_size: int
    max_queue_requests: int
    max_queue_tokens: int
    interactive_max_tokens: int
    bulk_share: int


@dataclass(eq=False)
class Item:
    """One text of a request: its token ids, its index in the request, and the request
    (``job``, opaque here)."""

    job: Any
    index: int
    ids: I64
    seq: int
    position: int = 0
    """Tokens admitted to the lane before this item: its place in the lane's token stream."""
    state: ItemState = ItemState.QUEUED

    @property
    def length(self) -> int:
        return len(self.ids)


@dataclass
class Batch:
    """Items chosen for one model run, with their collated inputs (filled by the batcher)."""

    lane: Lane
    items: list[Item]
    inputs: dict[str, I64] = field(default_factory=dict)
    owed: bool = False
    """Never put back: a bulk batch chosen while interactive work waited (bulk's turn), or
    one for a worker that serves no interactive work."""
    turns_before: int = 0
    """Interactive batches since bulk's last turn, before this batch was chosen."""
    bulk_pick: int = 0
    """Which bulk pick this batch was (a bulk batch put back undoes its pick, if no later
    bulk batch was picked: it did not run, so bulk's turn is still owed)."""

    @property
    def lengths(self) -> list[int]:
        return [item.length for item in self.items]


@dataclass
class _LaneQueue:
    """Waiting items of one lane, indexed by arrival and by length."""

    arrival: list[tuple[int, int, Item]] = field(default_factory=list)
    by_length: dict[int, deque[Item]] = field(default_factory=dict)
    lengths: list[int] = field(default_factory=list)
    count: int = 0
    tokens: int = 0
    admitted_tokens: int = 0
    pushes: itertools.count[int] = field(default_factory=itertools.count)

    def admit(self, item: Item) -> None:
        item.position = self.admitted_tokens
        self.admitted_tokens += item.length
        self.push(item)

    def push(self, item: Item) -> None:
        # A requeued item is pushed again, in arrival order within its length; its stale
        # entries are skipped by state.
        item.state = ItemState.QUEUED
        heapq.heappush(self.arrival, (item.seq, next(self.pushes), item))
        bucket = self.by_length.get(item.length)
        if bucket is None:
            bucket = self.by_length[item.length] = deque()
            bisect.insort(self.lengths, item.length)
        if bucket and bucket[-1].seq > item.seq:
            bucket.insert(bisect.bisect_right(bucket, item.seq, key=lambda queued: queued.seq), item)
        else:
            bucket.append(item)
        self.count += 1
        self.tokens += item.length

    def oldest(self) -> Item | None:
        while self.arrival and self.arrival[0][2].state is not ItemState.QUEUED:
            heapq.heappop(self.arrival)
        return self.arrival[0][2] if self.arrival else None

    def pop_length(self, length: int, horizon: int) -> Item | None:
        """The oldest queued item of exactly ``length`` tokens whose position is at most
        ``horizon``, taken out of the lane; None if there is none."""
        bucket = self.by_length.get(length)
        while bucket and bucket[0].state is not ItemState.QUEUED:
            bucket.popleft()
        if not bucket:
            self._forget(length)
            return None
        if bucket[0].position > horizon:
            return None
        item = bucket.popleft()
        if not bucket:
            self._forget(length)
        self.take(item)
        return item

    def take(self, item: Item) -> None:
        self._leave(item, ItemState.TAKEN)

    def drop(self, item: Item) -> None:
        self._leave(item, ItemState.DROPPED)

    def queued(self) -> Iterator[Item]:
        """Each queued item once (a requeued one may have a stale entry in ``arrival`` too)."""
        unique = {id(item): item for _, _, item in self.arrival if item.state is ItemState.QUEUED}
        return iter(unique.values())

    def _leave(self, item: Item, state: ItemState) -> None:
        item.state = state
        self.count -= 1
        self.tokens -= item.length

    def _forget(self, length: int) -> None:
        if length in self.by_length and not self.by_length[length]:
            del self.by_length[length]
            self.lengths.pop(bisect.bisect_left(self.lengths, length))


class Scheduler:
    """Queue structure and policy. Every method must be called under the caller's lock."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._lanes = {lane: _LaneQueue() for lane in Lane}
        self._seq = itertools.count()
        self._since_bulk = 0
        self._bulk_picks = 0
        self.horizon = 0
        """Tokens admitted after a batch's anchor that may join it (see :meth:`pace`)."""
        self.pace(0.0)

    def pace(self, tokens_per_second: float) -> None:
        """Follow the measured rate (0: not measured yet): the horizon becomes
        :data:`HORIZON_SECONDS` of work, at most :data:`HORIZON_BATCHES` budgets."""
        most = HORIZON_BATCHES * self.limits.max_batch_tokens
        self.horizon = most if tokens_per_second <= 0 else min(most, int(tokens_per_second * HORIZON_SECONDS))

    # ---- admission --------------------------------------------------------------------

    def lane_for(self, tokens: int, stated: Lane | None = None) -> Lane:
        """The lane the caller stated, else the one its size suggests."""
        if stated is not None:
            return stated
        return Lane.INTERACTIVE if tokens <= self.limits.interactive_max_tokens else Lane.BULK

    def check_admission(
        self, lane: Lane, tokens: int, requests: int, timeout: float | None, tokens_per_second: float
    ) -> None:
        """Raise if a request of ``tokens`` in ``lane`` may not join ``requests`` admitted ones:
        DeadlineExceeded when the work ahead of it outlasts ``timeout`` at the measured rate
        (the deadline bounds the wait before its texts start, not their run), Overloaded when
        the lane's share of the queue bounds is full. An empty queue always admits."""
        if not requests:
            return
        self.check_wait(lane, requests, timeout, tokens_per_second)
        queued = self.queued_tokens
        rate = tokens_per_second
        max_requests, max_tokens = self.admission_bounds(lane)
        if requests + 1 > max_requests or queued + tokens > max_tokens:
            raise Overloaded(
                f"the queue is full ({requests} requests, {queued} tokens waiting); retry later",
                retry_after=min(60.0, max(1.0, queued / rate)) if rate > 0 else 1.0,
            )

    def check_wait(self, lane: Lane, requests: int, timeout: float | None, tokens_per_second: float) -> None:
        """Raise DeadlineExceeded when the work ahead of a new request of ``lane`` outlasts
        ``timeout`` at the measured rate. It needs no token count of the request itself (the
        deadline bounds the wait before its texts start), so it runs before tokenization too:
        a refused request costs no tokenizer work."""
        if not requests:
            return
        ahead = self._lanes[Lane.INTERACTIVE].tokens if lane is Lane.INTERACTIVE else self.queued_tokens
        # Newer texts within the horizon may be taken before this one's first text.
        ahead += self.horizon if ahead else 0
        rate = tokens_per_second
        if timeout is not None and rate > 0 and ahead / rate > timeout:
            wait = ahead / rate
            raise DeadlineExceeded(
                f"the queue holds about {wait:.0f}s of work, more than this request's deadline of "
                f"{timeout:.1f}s; retry later",
                retry_after=min(60.0, max(1.0, wait - timeout)),
            )

    def admission_bounds(self, lane: Lane) -> tuple[int, int]:
        """Queue bounds (requests, tokens) for a new request of ``lane``: bulk work may fill
        all but :data:`INTERACTIVE_RESERVE` of the queue, so a query is still admitted when
        ingest has filled it."""
        requests, tokens = self.limits.max_queue_requests, self.limits.max_queue_tokens
        if lane is Lane.INTERACTIVE:
            return requests, tokens
        return (
            requests - max(1, math.ceil(INTERACTIVE_RESERVE * requests)),
            tokens - max(self.limits.interactive_max_tokens, math.ceil(INTERACTIVE_RESERVE * tokens)),
        )

    def admit(self, job: Any, lane: Lane, ids: Iterable[I64]) -> list[Item]:
        """Queue the texts of an admitted request; returns its items in input order."""
        items = [Item(job, index, row, next(self._seq)) for index, row in enumerate(ids)]
        for item in items:
            self._lanes[lane].admit(item)
        return items

    def drop(self, lane: Lane, items: Iterable[Item]) -> None:
        """Take items that are still queued out (their request was cancelled)."""
        for item in items:
            if item.state is ItemState.QUEUED:
                self._lanes[lane].drop(item)

    def drop_all(self) -> set[Any]:
        """Drop every queued item; returns the requests that had some."""
        jobs = set()
        for queue in self._lanes.values():
            for item in list(queue.queued()):
                queue.drop(item)
                jobs.add(item.job)
        return jobs

    @property
    def queued_tokens(self) -> int:
        return sum(queue.tokens for queue in self._lanes.values())

    def waiting(self, lane: Lane) -> int:
        return self._lanes[lane].count

    # ---- batch assembly ---------------------------------------------------------------

    def next_batch(self, lanes: frozenset[Lane] = BOTH_LANES) -> Batch | None:
        """The next batch of ``lanes`` (those the asking worker serves), or None when
        nothing of them is queued."""
        turns = self._since_bulk
        lane = self._pick_lane(lanes)
        if lane is None:
            return None
        owed = lane is Lane.BULK and (
            Lane.INTERACTIVE not in lanes or self._lanes[Lane.INTERACTIVE].count > 0
        )
        batch = Batch(lane, self._window(self._lanes[lane]), owed=owed, turns_before=turns)
        if lane is Lane.BULK and lanes == BOTH_LANES:  # a pick that took bulk's turn
            self._bulk_picks += 1
            batch.bulk_pick = self._bulk_picks
        return batch

    def yields_to_interactive(self, batch: Batch) -> bool:
        """Whether a prepared batch should go back: bulk, not owed, with interactive waiting."""
        return batch.lane is Lane.BULK and not batch.owed and self._lanes[Lane.INTERACTIVE].count > 0

    def requeue(self, batch: Batch, items: Iterable[Item]) -> None:
        """Put ``items`` of a prepared batch back in their lane, in their old places; a bulk
        batch put back gives bulk's turn back."""
        queue = self._lanes[batch.lane]
        for item in items:
            queue.push(item)
        if batch.bulk_pick and batch.bulk_pick == self._bulk_picks:
            # Undo the pick: the turns counted before it, plus the interactive ones since.
            self._since_bulk += batch.turns_before

    def _pick_lane(self, lanes: frozenset[Lane]) -> Lane | None:
        interactive, bulk = (lane in lanes and self._lanes[lane].count > 0 for lane in Lane)
        if lanes != BOTH_LANES:
            # A dedicated worker: no turns to keep.
            return Lane.INTERACTIVE if interactive else Lane.BULK if bulk else None
        if interactive and (not bulk or self._since_bulk < self.limits.bulk_share - 1):
            self._since_bulk += 1
            return Lane.INTERACTIVE
        if bulk:
            self._since_bulk = 0
            return Lane.BULK
        return None

    def _window(self, queue: _LaneQueue) -> list[Item]:
        """Items for one batch: the oldest, then the lengths that pad least around it, taken
        only from items admitted within :attr:`horizon` tokens after it (positions count every
        token admitted to the lane)."""
        anchor = queue.oldest()
        assert anchor is not None
        queue.take(anchor)
        batch, longest, real = [anchor], anchor.length, anchor.length
        budget, cap = self.limits.max_batch_tokens, self.limits.max_batch_size
        horizon = anchor.position + self.horizon
        lengths = list(queue.lengths)
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
            item = queue.pop_length(length, horizon)
            if item is None:
                lengths.remove(length)
                continue
            batch.append(item)
            real += length
            longest = new_longest
        return batch
