"""The batching policy as properties, driven directly (no threads) through random interleavings.

:class:`SchedulerMachine` admits requests (random lane, 1-8 texts of 1..``max_length``
tokens, through ``check_admission``), asks for batches with a random lane set (both lanes,
interactive only, bulk only) as the batcher's assemblers do, finishes prepared batches as the
batcher's workers do (a batch that ``yields_to_interactive`` is requeued without its cancelled
texts, any other runs), cancels requests (``drop``), drains and abandons (``drop_all``). It
keeps its own account of what is queued and checks the scheduler against it after every step:

1. Conservation: every admitted text ends exactly once as run, dropped (cancelled while
   queued) or discarded (cancelled while in a prepared batch), never two of them, never
   twice; ``waiting`` and ``queued_tokens`` equal the count and token sum of the texts still
   queued; ``drop_all`` returns the requests that had queued texts and empties both lanes.
2. A batch holds only queued texts of one lane, one the worker asked for; at most
   ``max_batch_size`` of them; ``n x longest <= max_batch_tokens`` unless it is one text;
   real tokens ``>= MIN_EFFICIENCY x n x longest``.
3. A query waits for a bounded number of batches. A dedicated interactive worker (asking for
   INTERACTIVE only) gets an interactive batch whenever one is queued. A both-lanes worker,
   with ``bulk_share >= 2``, is given at most one bulk batch (bulk's owed turn) while queries
   wait before it is given an interactive one; a bulk batch prepared before the query came
   goes back (``yields_to_interactive``) exactly when it was not owed.
4. Bulk keeps its share: a both-lanes worker gets at most ``bulk_share - 1`` interactive
   batches in a row while bulk waits.
5. Arrival order within a lane: a batch holds its lane's oldest queued text, and no text
   further than the horizon (``HORIZON_BATCHES x max_batch_tokens``, or ``HORIZON_SECONDS``
   of work at the rate given to ``pace``) in admitted tokens of that lane after it
   (``Item.position`` counts every token admitted to the lane before the text, taken and
   dropped ones included), so no text is passed over by texts admitted that far after it.
6. No starvation: with admissions stopped, asking a both-lanes worker for batches empties
   both lanes in at most as many batches as texts were queued.
7. Admission: an empty queue (no request in flight) admits any request; otherwise
   DeadlineExceeded exactly when ``ahead / rate > timeout`` (the deadline bounds the wait
   before a request's texts start, not their run; ``ahead``: the
   interactive tokens queued for a query, all queued tokens for bulk), and Overloaded exactly
   when the lane's bounds are full, where bulk may not use the interactive reserve; so a query
   is still admitted when bulk work has filled its share.

Hypothesis runs derandomized without an example database, so CI sees the same cases on every
run; nothing here reads a clock. The three bugs the properties found (a yielded bulk batch
lost bulk's turn; ``drop_all`` counted a requeued text twice; a requeued text lost its place
among texts of its length) have a test of their own at the end.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from server.errors import DeadlineExceeded, Overloaded
from server.scheduler import (
    BOTH_LANES,
    HORIZON_BATCHES,
    HORIZON_SECONDS,
    INTERACTIVE_RESERVE,
    MIN_EFFICIENCY,
    Batch,
    Item,
    ItemState,
    Lane,
    Limits,
    Scheduler,
)
from tests.unit.test_batcher import limits, texts

INTERACTIVE_ONLY = frozenset({Lane.INTERACTIVE})
BULK_ONLY = frozenset({Lane.BULK})
LANE_SETS = (BOTH_LANES, INTERACTIVE_ONLY, BULK_ONLY)
MAX_PREPARED = 3
"""Batches prepared and not yet finished at once (one per session of a small server)."""
CLEAR_AFTER = 6
"""Admissions between two drains or abandons, so the queue grows between them."""

Outcome = Literal["run", "dropped", "discarded"]

POLICIES = st.builds(
    Limits,
    max_batch_tokens=st.integers(4, 256),
    max_batch_size=st.integers(1, 16),
    max_queue_requests=st.integers(1, 40),
    max_queue_tokens=st.integers(8, 4000),
    interactive_max_tokens=st.integers(1, 32),
    bulk_share=st.integers(1, 5),
)

DETERMINISTIC = settings(
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@dataclass(eq=False)
class Request:
    """The model's view of one admitted request (the scheduler's opaque ``job``)."""

    lane: Lane
    items: list[Item] = field(default_factory=list)
    unfinished: int = 0
    done: bool = False
    cancelled: bool = False
    """Cancelled by its client or failed by ``drop_all``: its prepared texts are discarded."""


def reserve_bounds(limits: Limits, lane: Lane) -> tuple[int, int]:
    """Queue bounds (requests, tokens) of ``lane``: bulk leaves the interactive reserve free,
    at least one request and one query's worth of tokens."""
    requests, tokens = limits.max_queue_requests, limits.max_queue_tokens
    if lane is Lane.INTERACTIVE:
        return requests, tokens
    return (
        requests - max(1, math.ceil(INTERACTIVE_RESERVE * requests)),
        tokens - max(limits.interactive_max_tokens, math.ceil(INTERACTIVE_RESERVE * tokens)),
    )


class SchedulerMachine(RuleBasedStateMachine):
    """One scheduler against a model of what it holds; see the module docstring."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[Request] = []
        self.queued: dict[Lane, set[Item]] = {lane: set() for lane in Lane}
        self.admitted_tokens = dict.fromkeys(Lane, 0)
        self.position: dict[Item, int] = {}
        self.prepared: list[Batch] = []
        self.outcome: dict[Item, Outcome] = {}
        self.admitted_since_clear = 0
        self.bulk_while_queries_wait = 0
        self.queries_while_bulk_waits = 0

    @initialize(policy=POLICIES, max_length=st.integers(1, 64))
    def configure(self, policy: Limits, max_length: int) -> None:
        self.limits = policy
        self.max_length = max_length
        self.scheduler = Scheduler(policy)

    # ---- the model -----------------------------------------------------------------------

    def live(self) -> list[Request]:
        return [r for r in self.requests if not r.done]

    def queued_tokens(self, lane: Lane | None = None) -> int:
        lanes = Lane if lane is None else [lane]
        return sum(item.length for each in lanes for item in self.queued[each])

    def end(self, item: Item, outcome: Outcome) -> None:
        assert item not in self.outcome, f"text {item.seq} ended twice: {self.outcome[item]}, {outcome}"
        self.outcome[item] = outcome

    def expected_refusal(
        self, lane: Lane, tokens: int, timeout: float | None, rate: float
    ) -> type[Exception] | None:
        requests = len(self.live())
        if not requests:
            return None
        queued = self.queued_tokens()
        ahead = self.queued_tokens(Lane.INTERACTIVE) if lane is Lane.INTERACTIVE else queued
        ahead += self.scheduler.horizon if ahead else 0
        if timeout is not None and rate > 0 and ahead / rate > timeout:
            return DeadlineExceeded
        max_requests, max_tokens = reserve_bounds(self.limits, lane)
        if requests + 1 > max_requests or queued + tokens > max_tokens:
            return Overloaded
        return None

    # ---- rules ---------------------------------------------------------------------------

    @rule(
        lane=st.sampled_from(Lane),
        data=st.data(),
        timeout=st.none() | st.floats(0.01, 100.0),
        rate=st.sampled_from([0.0, 1.0, 10.0, 100.0, 1000.0]),
    )
    def admit(self, lane: Lane, data: st.DataObject, timeout: float | None, rate: float) -> None:
        lengths = data.draw(st.lists(st.integers(1, self.max_length), min_size=1, max_size=8))
        tokens = sum(lengths)
        expected = self.expected_refusal(lane, tokens, timeout, rate)
        try:
            self.scheduler.check_admission(lane, tokens, len(self.live()), timeout, rate)
        except (DeadlineExceeded, Overloaded) as refusal:
            assert type(refusal) is expected
            return
        assert expected is None
        request = Request(lane)
        request.items = self.scheduler.admit(request, lane, texts(*lengths))
        request.unfinished = len(request.items)
        self.requests.append(request)
        self.admitted_since_clear += 1
        for item in request.items:
            assert item.position == self.admitted_tokens[lane]
            self.position[item] = self.admitted_tokens[lane]
            self.admitted_tokens[lane] += item.length
            self.queued[lane].add(item)

    @rule(rate=st.sampled_from([0.0, 1.0, 50.0, 1e6]) | st.floats(0.0, 1e5))
    def pace(self, rate: float) -> None:
        """The batcher tells the scheduler the measured rate: the horizon follows it."""
        self.scheduler.pace(rate)
        most = HORIZON_BATCHES * self.limits.max_batch_tokens
        assert 0 <= self.scheduler.horizon <= most
        assert self.scheduler.horizon == (most if rate <= 0 else min(most, int(rate * HORIZON_SECONDS)))

    @precondition(lambda self: len(self.prepared) < MAX_PREPARED and any(self.queued.values()))
    @rule(lanes=st.sampled_from(LANE_SETS))
    def prepare(self, lanes: frozenset[Lane]) -> None:
        batch = self.take(lanes)
        if batch is not None:
            self.prepared.append(batch)

    @precondition(lambda self: self.prepared)
    @rule(data=st.data())
    def finish(self, data: st.DataObject) -> None:
        index = data.draw(st.integers(0, len(self.prepared) - 1))
        self.finish_batch(self.prepared.pop(index))

    @precondition(lambda self: self.live())
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        request = data.draw(st.sampled_from(self.live()))
        self.scheduler.drop(request.lane, request.items)
        request.done = request.cancelled = True
        for item in request.items:
            if item in self.queued[request.lane]:
                self.queued[request.lane].remove(item)
                self.end(item, "dropped")

    @precondition(lambda self: self.admitted_since_clear >= CLEAR_AFTER)
    @rule()
    def drain(self) -> None:
        self.drain_all()

    @precondition(lambda self: self.admitted_since_clear >= CLEAR_AFTER)
    @rule()
    def abandon(self) -> None:
        """``drop_all``, also after requeues (:func:`test_drop_all_after_a_requeue_empties_the_queue`)."""
        had_queued = {item.job for lane in Lane for item in self.queued[lane]}
        assert self.scheduler.drop_all() == had_queued
        for request in had_queued:
            request.done = request.cancelled = True
        for lane in Lane:
            for item in self.queued[lane]:
                self.end(item, "dropped")
            self.queued[lane].clear()
        assert self.scheduler.queued_tokens == 0
        assert all(self.scheduler.next_batch(lanes) is None for lanes in LANE_SETS)
        self.admitted_since_clear = 0

    def teardown(self) -> None:
        if not hasattr(self, "scheduler"):
            return
        self.drain_all()
        for request in self.requests:
            for item in request.items:
                outcome = self.outcome.get(item)
                assert outcome is not None, f"text {item.seq} neither ran nor was dropped"
                assert item.state is (ItemState.DROPPED if outcome == "dropped" else ItemState.TAKEN)
                assert outcome == "run" or request.cancelled

    # ---- what the batcher's threads do -----------------------------------------------------

    def take(self, lanes: frozenset[Lane]) -> Batch | None:
        """``next_batch(lanes)``, checked against properties 2 to 5."""
        waiting = {lane: lane in lanes and bool(self.queued[lane]) for lane in Lane}
        batch = self.scheduler.next_batch(lanes)
        if batch is None:
            assert not any(waiting.values()), f"{lanes} has queued texts but no batch came"
            return None
        lane = batch.lane
        assert waiting[lane], f"a {lane.name} batch for a worker of {sorted(lanes)} with none queued"
        queries_wait, bulk_waits = (bool(self.queued[each]) for each in Lane)
        assert batch.owed is (lane is Lane.BULK and (Lane.INTERACTIVE not in lanes or queries_wait))
        if lanes == BOTH_LANES:
            self.check_turns(lane, queries_wait, bulk_waits)
        self.check_window(batch)
        for item in batch.items:
            self.queued[lane].remove(item)
        return batch

    def check_turns(self, lane: Lane, queries_wait: bool, bulk_waits: bool) -> None:
        """Properties 3 and 4 for a both-lanes worker's batch of ``lane``."""
        if lane is Lane.INTERACTIVE:
            self.bulk_while_queries_wait = 0
            if bulk_waits:
                self.queries_while_bulk_waits += 1
                assert self.queries_while_bulk_waits <= self.limits.bulk_share - 1, "bulk lost its turn"
            return
        self.queries_while_bulk_waits = 0
        if queries_wait:
            self.bulk_while_queries_wait += 1
            if self.limits.bulk_share >= 2:
                assert self.bulk_while_queries_wait <= 1, "a query waited behind two bulk batches"

    def check_window(self, batch: Batch) -> None:
        """Properties 2 and 5 for a batch just taken (the model still counts it queued)."""
        queued = self.queued[batch.lane]
        n, longest = len(batch.items), max(batch.lengths)
        assert len(set(batch.items)) == n
        assert all(item in queued for item in batch.items), "a batch took a text that was not queued"
        assert n <= self.limits.max_batch_size
        assert n == 1 or n * longest <= self.limits.max_batch_tokens
        assert sum(batch.lengths) / (n * longest) >= MIN_EFFICIENCY
        oldest = min(queued, key=lambda item: item.seq)
        assert batch.items[0] is oldest, "a batch did not start from its lane's oldest text"
        furthest = max(self.position[item] for item in batch.items)
        assert furthest - self.position[oldest] <= self.scheduler.horizon

    def finish_batch(self, batch: Batch) -> None:
        """A worker's turn: put the batch back if it yields to queries, else run it."""
        yields = batch.lane is Lane.BULK and not batch.owed and bool(self.queued[Lane.INTERACTIVE])
        assert self.scheduler.yields_to_interactive(batch) is yields
        live = [item for item in batch.items if not item.job.cancelled]
        for item in batch.items:
            if item.job.cancelled:
                self.end(item, "discarded")
        if yields:
            self.scheduler.requeue(batch, live)
            self.queued[batch.lane].update(live)
            return
        for item in live:
            self.end(item, "run")
            item.job.unfinished -= 1
            item.job.done = item.job.unfinished == 0

    def drain_all(self) -> None:
        """Property 6: finish what is prepared, then a both-lanes worker empties the queue in
        at most one batch per queued text."""
        while self.prepared:
            self.finish_batch(self.prepared.pop(0))
        bound = sum(len(self.queued[lane]) for lane in Lane)
        for _ in range(bound):
            batch = self.take(BOTH_LANES)
            if batch is None:
                break
            self.finish_batch(batch)
        assert not any(self.queued.values()), f"{bound} batches left texts queued"
        assert all(self.scheduler.next_batch(lanes) is None for lanes in LANE_SETS)
        self.admitted_since_clear = 0

    # ---- property 1 after every step -------------------------------------------------------

    @invariant()
    def counts_match_the_queued_texts(self) -> None:
        if not hasattr(self, "scheduler"):
            return
        for lane in Lane:
            assert self.scheduler.waiting(lane) == len(self.queued[lane])
            assert all(item.state is ItemState.QUEUED for item in self.queued[lane])
        assert self.scheduler.queued_tokens == self.queued_tokens()
        assert all(item.state is ItemState.TAKEN for batch in self.prepared for item in batch.items)


SchedulerMachine.TestCase.settings = settings(DETERMINISTIC, max_examples=300, stateful_step_count=50)
TestSchedulerMachine = SchedulerMachine.TestCase


# ---- property 7: admission ---------------------------------------------------------------


@DETERMINISTIC
@given(
    lane=st.sampled_from(Lane),
    tokens=st.integers(1, 10**7),
    timeout=st.none() | st.floats(1e-6, 1.0),
    rate=st.floats(0.0, 1e6),
)
def test_an_empty_queue_admits_any_request(
    lane: Lane, tokens: int, timeout: float | None, rate: float
) -> None:
    """No request in flight: admitted whatever its size, deadline and the measured rate, even
    past every bound."""
    scheduler = Scheduler(limits(max_queue_requests=1, max_queue_tokens=8))
    scheduler.check_admission(lane, tokens, 0, timeout, rate)


@DETERMINISTIC
@given(
    max_requests=st.integers(2, 30),
    max_tokens=st.integers(100, 3000),
    interactive_max=st.integers(1, 64),
    bulk=st.lists(st.integers(1, 400), min_size=1, max_size=40),
    queries=st.lists(st.integers(1, 64), max_size=3),
)
def test_a_query_is_admitted_when_bulk_has_filled_its_share(
    max_requests: int, max_tokens: int, interactive_max: int, bulk: list[int], queries: list[int]
) -> None:
    """Bulk requests (each within bulk's token bound) are admitted until one is refused or
    none is left; then a query of up to ``interactive_max_tokens`` tokens is still admitted, and
    with a deadline it only has to outlast the queued queries, not the bulk work, while a bulk
    request whose deadline is shorter than the bulk work ahead is refused."""
    scheduler = Scheduler(
        limits(
            max_queue_requests=max_requests,
            max_queue_tokens=max_tokens,
            interactive_max_tokens=interactive_max,
        )
    )
    _, bulk_tokens = reserve_bounds(scheduler.limits, Lane.BULK)
    admitted = 0
    for size in (min(size, bulk_tokens) for size in bulk):
        try:
            scheduler.check_admission(Lane.BULK, size, admitted, None, 0.0)
        except Overloaded:
            break
        scheduler.admit(admitted, Lane.BULK, texts(size))
        admitted += 1
    query = min(interactive_max, *queries) if queries else interactive_max
    scheduler.check_admission(Lane.INTERACTIVE, query, admitted, None, 0.0)
    scheduler.check_admission(Lane.INTERACTIVE, query, admitted, 0.001, 1.0)  # no query ahead
    with pytest.raises(DeadlineExceeded):  # the bulk work ahead outlasts the deadline
        scheduler.check_admission(Lane.BULK, query, admitted, scheduler.queued_tokens - 0.5, 1.0)


# ---- the bugs these properties found, fixed -----------------------------------------------


def test_bulk_runs_while_queries_arrive_one_at_a_time() -> None:
    """A both-lanes worker prepares its next batch while the current one runs; if a query
    comes in meanwhile, a bulk batch prepared when none waited goes back. Bulk waits the whole
    time, so it should still run one batch in ``bulk_share``."""
    share = 2
    scheduler = Scheduler(limits(max_batch_size=1, bulk_share=share))
    scheduler.admit("ingest", Lane.BULK, texts(*[20] * 10))
    ran = []
    for query in range(3 * share):
        prepared = scheduler.next_batch()
        assert prepared is not None
        scheduler.admit(query, Lane.INTERACTIVE, texts(3))
        if scheduler.yields_to_interactive(prepared):
            scheduler.requeue(prepared, prepared.items)
            prepared = scheduler.next_batch()
            assert prepared is not None
        ran.append(prepared.lane)
    assert Lane.BULK in ran, f"{len(ran)} batches ran, all interactive, while bulk waited"


def test_a_requeued_text_keeps_its_place_among_texts_of_its_length() -> None:
    """``requeue`` puts texts back "in their old places": of two queued texts of one lane and
    one length, the older goes first."""
    scheduler = Scheduler(limits(max_batch_size=2, bulk_share=2))
    a, b, _ = scheduler.admit("ingest", Lane.BULK, texts(10, 10, 10))
    prepared = scheduler.next_batch()
    assert prepared is not None and prepared.items == [a, b]
    scheduler.admit("query", Lane.INTERACTIVE, texts(3))
    assert scheduler.yields_to_interactive(prepared)
    scheduler.requeue(prepared, prepared.items)
    query = scheduler.next_batch()
    assert query is not None and query.lane is Lane.INTERACTIVE
    again = scheduler.next_batch()
    assert again is not None
    assert again.items == [a, b], f"took {[i.seq for i in again.items]}, text {b.seq} passed over"


def test_drop_all_after_a_requeue_empties_the_queue() -> None:
    """``drop_all`` leaves nothing queued, also after a batch went back; later texts batch."""
    scheduler = Scheduler(limits())
    scheduler.admit("ingest", Lane.BULK, texts(20))
    prepared = scheduler.next_batch()
    assert prepared is not None
    scheduler.admit("query", Lane.INTERACTIVE, texts(3))
    assert scheduler.yields_to_interactive(prepared)
    scheduler.requeue(prepared, prepared.items)
    assert scheduler.drop_all() == {"ingest", "query"}
    assert (scheduler.waiting(Lane.BULK), scheduler.queued_tokens) == (0, 0)
    scheduler.admit("later", Lane.BULK, texts(20))
    assert scheduler.next_batch() is not None
