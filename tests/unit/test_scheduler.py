"""The batching policy alone: no threads, no sleeps, no clocks.

Properties checked over generated mixes of requests (hypothesis): every admitted text is
batched exactly once; a batch respects the token budget (padding counted) and the size cap
unless one text alone exceeds it; a batch starts with the oldest text of its lane; when both
lanes wait, bulk waits behind at most ``bulk_share - 1`` interactive batches (no
starvation) and interactive work behind at most one bulk batch.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.errors import DeadlineExceeded, Overloaded
from server.scheduler import Batch, ItemState, Lane, Scheduler
from tests.unit.test_batcher import limits


def ids(*lengths: int) -> list[np.ndarray]:
    return [np.ones(n, dtype=np.int64) for n in lengths]


def admit(scheduler: Scheduler, job: object, *lengths: int) -> Lane:
    lane = scheduler.lane_for(sum(lengths))
    scheduler.admit(job, lane, ids(*lengths))
    return lane


def drain(scheduler: Scheduler) -> list[Batch]:
    batches = []
    while (batch := scheduler.next_batch()) is not None:
        batches.append(batch)
    return batches


requests = st.lists(st.lists(st.integers(1, 80), min_size=1, max_size=6), min_size=1, max_size=25)


@settings(max_examples=200, deadline=None)
@given(requests)
def test_every_text_is_batched_once_within_the_budget(lengths: list[list[int]]) -> None:
    scheduler = Scheduler(limits())
    items = []
    for job, request in enumerate(lengths):
        lane = scheduler.lane_for(sum(request))
        items += scheduler.admit(job, lane, ids(*request))
    batches = drain(scheduler)
    batched = [item for batch in batches for item in batch.items]
    assert sorted(map(id, batched)) == sorted(map(id, items))
    assert all(item.state is ItemState.TAKEN for item in items)
    for batch in batches:
        padded = len(batch.items) * max(batch.lengths)
        assert len(batch.items) <= 8
        assert padded <= 64 or len(batch.items) == 1
    assert scheduler.queued_tokens == 0


@settings(max_examples=200, deadline=None)
@given(requests)
def test_a_batch_starts_with_the_oldest_text_of_its_lane(lengths: list[list[int]]) -> None:
    scheduler = Scheduler(limits())
    waiting: dict[Lane, set[int]] = {Lane.INTERACTIVE: set(), Lane.BULK: set()}
    for job, request in enumerate(lengths):
        lane = scheduler.lane_for(sum(request))
        waiting[lane].update(item.seq for item in scheduler.admit(job, lane, ids(*request)))
    for batch in drain(scheduler):
        assert batch.items[0].seq == min(waiting[batch.lane])
        waiting[batch.lane] -= {item.seq for item in batch.items}


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 20), st.integers(1, 20), st.integers(2, 6))
def test_neither_lane_starves(queries: int, bulk: int, share: int) -> None:
    scheduler = Scheduler(limits(bulk_share=share, max_batch_size=1))
    for k in range(queries):
        admit(scheduler, ("q", k), 3)
    for k in range(bulk):
        admit(scheduler, ("b", k), 20)
    left = {Lane.INTERACTIVE: queries, Lane.BULK: bulk}
    queries_in_a_row = 0
    previous: Lane | None = None
    for batch in drain(scheduler):
        if all(left.values()):
            # Both wait: bulk waits behind at most share - 1 query batches, and a bulk batch
            # is never followed by another while queries wait.
            if batch.lane is Lane.INTERACTIVE:
                queries_in_a_row += 1
                assert queries_in_a_row <= share - 1
            else:
                assert previous is not Lane.BULK
                queries_in_a_row = 0
        left[batch.lane] -= 1
        previous = batch.lane
    assert left == {Lane.INTERACTIVE: 0, Lane.BULK: 0}


def test_within_a_lane_requests_are_served_in_arrival_order() -> None:
    scheduler = Scheduler(limits(max_batch_size=1))
    for job in range(5):
        admit(scheduler, job, 20)
    assert [batch.items[0].job for batch in drain(scheduler)] == [0, 1, 2, 3, 4]


def test_admission_bounds_keep_a_reserve_for_interactive_work() -> None:
    scheduler = Scheduler(limits(max_queue_requests=10, max_queue_tokens=1000))
    assert scheduler.admission_bounds(Lane.INTERACTIVE) == (10, 1000)
    assert scheduler.admission_bounds(Lane.BULK) == (9, 900)
    with pytest.raises(Overloaded):
        scheduler.check_admission(Lane.BULK, 20, 9, None, 0.0)
    scheduler.check_admission(Lane.INTERACTIVE, 3, 9, None, 0.0)


def test_the_deadline_check_counts_only_the_work_ahead_of_the_lane() -> None:
    scheduler = Scheduler(limits())
    admit(scheduler, "bulk", 30, 30)
    with pytest.raises(DeadlineExceeded) as err:
        scheduler.check_admission(Lane.BULK, 40, 1, timeout=5.0, tokens_per_second=10.0)
    assert float(err.value.headers()["retry-after"]) >= 1
    scheduler.check_admission(Lane.INTERACTIVE, 3, 1, timeout=5.0, tokens_per_second=10.0)


def test_a_bulk_batch_yields_to_waiting_queries_unless_it_is_owed() -> None:
    scheduler = Scheduler(limits(max_batch_size=1, bulk_share=2))
    admit(scheduler, "b1", 20)
    admit(scheduler, "b2", 20)
    prepared = scheduler.next_batch()
    assert prepared is not None and prepared.lane is Lane.BULK and not prepared.owed
    admit(scheduler, "q", 3)
    assert scheduler.yields_to_interactive(prepared)
    scheduler.requeue(prepared, prepared.items)
    first = scheduler.next_batch()
    assert first is not None and first.lane is Lane.INTERACTIVE
    admit(scheduler, "q2", 3)
    owed = scheduler.next_batch()
    assert owed is not None and owed.lane is Lane.BULK and owed.owed
    assert not scheduler.yields_to_interactive(owed)
    assert owed.items[0].job == "b1"  # the requeued text kept its place


def test_dropped_items_are_never_batched() -> None:
    scheduler = Scheduler(limits())
    items = scheduler.admit("gone", Lane.BULK, ids(20, 20))
    admit(scheduler, "kept", 20)
    scheduler.drop(Lane.BULK, items)
    assert [item.job for batch in drain(scheduler) for item in batch.items] == ["kept"]
    assert scheduler.drop_all() == set()
