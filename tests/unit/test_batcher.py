"""Batch packing, admission, priorities, cancellation and failure isolation, with a fake session."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import pytest

from server.batcher import Batcher, Limits, Throughput
from server.errors import DeadlineExceeded, InferenceFailed, Overloaded, Unavailable
from server.scheduler import Lane

DIMS = 3
HANG_GUARD_S = 60.0
"""How long a test waits for something that must happen before it calls it a hang."""


class FakeSession:
    """Returns [first id, length, row count] per row; can block until released; can fail.

    Records each batch it ran as its rows' lengths (``batches``) and first token ids (``firsts``).
    """

    input_names: Sequence[str] = ("input_ids", "attention_mask")

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.firsts: list[list[int]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.fail_when_first_id: int | None = None

    def run(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        self.entered.set()
        self.gate.wait()
        lengths = inputs["attention_mask"].sum(axis=1)
        self.batches.append([int(n) for n in lengths])
        ids = inputs["input_ids"]
        self.firsts.append([int(i) for i in ids[:, 0]])
        if self.fail_when_first_id is not None and self.fail_when_first_id in ids[:, 0]:
            raise RuntimeError("boom")
        out = np.stack([ids[:, 0], lengths, np.full(len(ids), len(ids))], axis=1)
        return out.astype(np.float32)


def limits(**overrides: int) -> Limits:
    values = dict(
        max_batch_tokens=64,
        max_batch_size=8,
        max_queue_requests=100,
        max_queue_tokens=10_000,
        interactive_max_tokens=8,
        bulk_share=3,
    )
    values.update(overrides)
    return Limits(**values)


def texts(*lengths: int, first: int = 1) -> list[np.ndarray]:
    return [np.full(n, first + i, dtype=np.int64) for i, n in enumerate(lengths)]


@pytest.fixture
def session() -> FakeSession:
    return FakeSession()


@pytest.fixture
def make_batcher(session: FakeSession) -> Iterator[object]:
    made: list[Batcher] = []

    def make(throughput: Throughput | None = None, **overrides: int) -> Batcher:
        b = Batcher([session], limits(**overrides), pad_id=0, dims=DIMS, throughput=throughput)
        made.append(b)
        return b

    yield make
    session.gate.set()
    for b in made:
        b.close(timeout=5)


async def until(condition: Callable[[], bool], what: str) -> None:
    """Wait for ``condition`` to hold; polled, and only a hang fails it."""
    deadline = time.monotonic() + HANG_GUARD_S
    while not condition():
        assert time.monotonic() < deadline, f"still waiting for {what} after {HANG_GUARD_S:.0f} s"
        await asyncio.sleep(0.001)


async def hold(session: FakeSession, batcher: Batcher) -> asyncio.Future[np.ndarray]:
    """Occupy the worker with a one-text job until session.gate is set."""
    session.gate.clear()
    session.entered.clear()
    job = batcher.submit(texts(1, first=900), asyncio.get_running_loop())
    await asyncio.to_thread(session.entered.wait)
    return job.future


async def test_results_come_back_in_input_order(make_batcher) -> None:
    batcher = make_batcher()
    lengths = [7, 2, 30, 2, 15, 7, 1]
    job = batcher.submit(texts(*lengths), asyncio.get_running_loop())
    out = await job.future
    np.testing.assert_array_equal(out[:, 0], np.arange(1, len(lengths) + 1))
    np.testing.assert_array_equal(out[:, 1], lengths)


async def test_batches_respect_budget_size_and_group_lengths(make_batcher, session) -> None:
    batcher = make_batcher()
    blocker = await hold(session, batcher)
    loop = asyncio.get_running_loop()
    jobs = [batcher.submit(texts(*([4] * 5 + [16] * 5), first=10 * k), loop) for k in range(4)]
    session.gate.set()
    await asyncio.gather(blocker, *(j.future for j in jobs))
    for batch in session.batches[1:]:
        assert len(batch) <= 8
        assert len(batch) * max(batch) <= 64
        assert min(batch) / max(batch) >= 0.25
    mixed = [b for b in session.batches[1:] if len(set(b)) > 1]
    assert not mixed, f"short and long texts were padded together: {mixed}"


async def test_a_text_longer_than_budget_still_runs_alone(make_batcher) -> None:
    batcher = make_batcher(max_batch_tokens=10)
    out = await batcher.submit(texts(40, 3), asyncio.get_running_loop()).future
    np.testing.assert_array_equal(out[:, 1], [40, 3])


async def test_interactive_goes_first_but_bulk_is_not_starved(make_batcher, session) -> None:
    batcher = make_batcher(max_batch_size=1)
    blocker = await hold(session, batcher)
    loop = asyncio.get_running_loop()
    bulk = batcher.submit(texts(9, 9, 9, first=100), loop)
    assert bulk.lane is Lane.BULK
    queries = [batcher.submit(texts(3, first=200 + k), loop) for k in range(6)]
    assert all(q.lane is Lane.INTERACTIVE for q in queries)
    session.gate.set()
    await asyncio.gather(blocker, bulk.future, *(q.future for q in queries))
    order = [b for b in session.batches[1:]]
    kinds = ["b" if b == [9] else "q" for b in order]
    # The bulk batch prepared before the queries arrived may run once; after that, while both
    # wait, bulk waits behind at most bulk_share - 1 = 2 query batches, and a query behind at
    # most one bulk batch.
    assert kinds.count("q") == 6 and kinds.count("b") == 3
    both_waiting = "".join(kinds[1 : len(kinds) - kinds[::-1].index("q")])
    assert "qqq" not in both_waiting and "bb" not in both_waiting


async def test_full_queue_is_a_fast_429_with_retry_after(make_batcher, session) -> None:
    batcher = make_batcher(max_queue_requests=2)
    blocker = await hold(session, batcher)
    loop = asyncio.get_running_loop()
    batcher.submit(texts(2), loop)
    with pytest.raises(Overloaded) as err:
        batcher.submit(texts(2), loop)
    assert err.value.headers()["retry-after"] >= "1"
    session.gate.set()
    await blocker


async def test_token_admission_bound(make_batcher, session) -> None:
    # Bulk may fill 30 - 8 tokens (the reserve is the interactive size, more than 10 %).
    batcher = make_batcher(max_queue_tokens=30)
    blocker = await hold(session, batcher)
    loop = asyncio.get_running_loop()
    batcher.submit(texts(15), loop)
    with pytest.raises(Overloaded, match="tokens waiting"):
        batcher.submit(texts(10), loop)
    session.gate.set()
    await blocker


async def test_interactive_work_is_admitted_into_the_reserve_that_bulk_cannot_fill(
    make_batcher, session
) -> None:
    batcher = make_batcher(max_queue_requests=10, max_queue_tokens=10_000)
    blocker = await hold(session, batcher)
    loop = asyncio.get_running_loop()
    bulk = []
    with pytest.raises(Overloaded):
        while True:
            bulk.append(batcher.submit(texts(9), loop))
    assert batcher.queued_requests == 9  # the blocker and 8 bulk: one request of 10 is reserved
    query = batcher.submit(texts(3), loop)
    with pytest.raises(Overloaded):
        batcher.submit(texts(3), loop)
    session.gate.set()
    await asyncio.gather(blocker, query.future, *(job.future for job in bulk))


async def test_cancelled_jobs_never_reach_the_model(make_batcher, session) -> None:
    batcher = make_batcher()
    blocker = await hold(session, batcher)
    loop = asyncio.get_running_loop()
    doomed = batcher.submit(texts(5, 5, first=500), loop)
    kept = batcher.submit(texts(6, first=600), loop)
    batcher.cancel(doomed)
    assert doomed.future.cancelled()
    session.gate.set()
    await asyncio.gather(blocker, kept.future)
    assert all(5 not in batch for batch in session.batches)
    assert batcher.queued_tokens == 0


async def test_inference_failure_fails_only_that_batch(make_batcher, session) -> None:
    batcher = make_batcher()
    session.fail_when_first_id = 666
    loop = asyncio.get_running_loop()
    bad = batcher.submit(texts(2, first=666), loop)
    with pytest.raises(InferenceFailed):
        await bad.future
    good = await batcher.submit(texts(2, first=1), loop).future
    assert good[0, 0] == 1


async def test_close_finishes_admitted_work_then_refuses(make_batcher, session) -> None:
    batcher = make_batcher()
    blocker = await hold(session, batcher)
    loop = asyncio.get_running_loop()
    pending = [batcher.submit(texts(3, 4, first=10 * k), loop) for k in range(5)]
    closer = asyncio.ensure_future(asyncio.to_thread(batcher.close))
    # close() runs in a thread: a submit that comes before it takes effect is admitted work
    # like the rest, and must complete too; once refused, every later submit is refused.
    while True:
        try:
            pending.append(batcher.submit(texts(1, first=7000 + len(pending)), loop))
        except Unavailable:
            break
        await asyncio.sleep(0.001)
    with pytest.raises(Unavailable):
        batcher.submit(texts(1), loop)
    session.gate.set()
    await asyncio.wait_for(closer, HANG_GUARD_S)
    assert all(p.future.done() for p in pending), "close() returned before admitted work finished"
    results = await asyncio.gather(blocker, *(p.future for p in pending))
    assert len(results) == 1 + len(pending)


async def test_abandon_fails_queued_jobs_but_not_the_running_batch(make_batcher, session) -> None:
    batcher = make_batcher()
    running = await hold(session, batcher)
    loop = asyncio.get_running_loop()
    queued = [batcher.submit(texts(40, first=10 * k), loop) for k in range(3)]  # one per batch
    # The assembler prefetches the oldest while the model is busy; the other two stay queued.
    await until(lambda: batcher.queued_tokens == 80, "the prefetch of the oldest request")
    abandoned = batcher.abandon(Unavailable("shutting down"))
    session.gate.set()
    assert (await running)[0, 0] == 900
    outcomes = await asyncio.gather(*(q.future for q in queued), return_exceptions=True)
    assert abandoned == 2
    assert isinstance(outcomes[0], np.ndarray) and outcomes[0][0, 0] == 0  # prefetched: it runs
    assert all(isinstance(o, Unavailable) for o in outcomes[1:]), outcomes
    assert batcher.queued_tokens == 0


async def test_work_that_would_outlast_the_deadline_is_refused_at_admission(make_batcher, session) -> None:
    batcher = make_batcher(throughput=Throughput(10.0))  # as if measured: 10 tokens/s
    running = await hold(session, batcher)
    loop = asyncio.get_running_loop()
    batcher.submit(texts(30, 30), loop, timeout=100)  # 6 s of work ahead of the next one
    with pytest.raises(DeadlineExceeded) as err:
        batcher.submit(texts(20, 20), loop, timeout=5.0)  # bulk: (60 + 40) / 10 = 10 s > 5 s
    assert int(err.value.headers()["retry-after"]) >= 1
    quick = batcher.submit(texts(3), loop, timeout=5.0)  # interactive: only interactive work is ahead
    assert quick.lane is Lane.INTERACTIVE
    session.gate.set()
    await asyncio.gather(running, quick.future)


async def mean_completion(batcher: Batcher, session: FakeSession) -> float:
    """Twelve requests of eight lengths each; when each finishes, as a share of all batches."""
    running = await hold(session, batcher)
    loop = asyncio.get_running_loop()
    jobs = [batcher.submit(texts(4, 8, 12, 16, 20, 24, 28, 32, first=100 * k), loop) for k in range(12)]
    session.gate.set()
    await asyncio.gather(running, *(j.future for j in jobs))
    # A request finishes with the last batch that holds one of its texts (ids 100k..100k+7),
    # counted from the model's own record: the event loop may see completions late.
    done = [
        1
        + max(b for b, firsts in enumerate(session.firsts) if any(100 * k <= i < 100 * k + 8 for i in firsts))
        for k in range(len(jobs))
    ]
    return sum(done) / len(done) / len(session.batches)


async def test_requests_finish_roughly_in_arrival_order(make_batcher, session, monkeypatch) -> None:
    with_horizon = await mean_completion(make_batcher(max_batch_tokens=64, max_batch_size=8), session)
    session.batches.clear()
    monkeypatch.setattr("server.scheduler.HORIZON_BATCHES", 10**9)
    without = await mean_completion(make_batcher(max_batch_tokens=64, max_batch_size=8), session)
    # Without the horizon every batch takes one length from all requests, and they finish
    # together near the end; with it, early requests finish early.
    assert with_horizon < without, (with_horizon, without)


# ---- a dedicated interactive session -------------------------------------------------------


async def test_a_query_runs_on_its_own_session_while_a_bulk_batch_holds_the_other() -> None:
    bulk, dedicated = FakeSession(), FakeSession()
    lowered: list[tuple[str, int]] = []

    def lower(nice: int) -> None:
        lowered.append((threading.current_thread().name, nice))

    batcher = Batcher(
        [bulk], limits(), pad_id=0, dims=DIMS, interactive=[dedicated], bulk_nice=7, lower_priority=lower
    )
    try:
        assert batcher.dedicated_interactive
        loop = asyncio.get_running_loop()
        bulk.gate.clear()
        held = batcher.submit(texts(30), loop)  # over interactive_max_tokens: bulk
        await asyncio.to_thread(bulk.entered.wait, HANG_GUARD_S)
        queued_bulk = batcher.submit(texts(20, first=50), loop)
        query = batcher.submit(texts(3, first=70), loop)
        out = await asyncio.wait_for(query.future, HANG_GUARD_S)
        assert out[0, 0] == 70 and dedicated.batches == [[3]]
        assert not held.future.done() and not queued_bulk.future.done()
        bulk.gate.set()
        await asyncio.gather(held.future, queued_bulk.future)
        assert [len(b) for b in bulk.batches] == [1, 1] and dedicated.batches == [[3]]
        assert lowered == [("worker-bulk-0", 7)]  # the bulk worker only, before its first batch
    finally:
        bulk.gate.set()
        batcher.close(timeout=5)


async def test_a_stated_lane_overrides_the_size() -> None:
    bulk, dedicated = FakeSession(), FakeSession()
    batcher = Batcher(
        [bulk], limits(), pad_id=0, dims=DIMS, interactive=[dedicated], lower_priority=lambda n: None
    )
    try:
        loop = asyncio.get_running_loop()
        long_query = batcher.submit(texts(40, first=10), loop, lane=Lane.INTERACTIVE)
        short_bulk = batcher.submit(texts(2, first=20), loop, lane=Lane.BULK)
        await asyncio.wait_for(asyncio.gather(long_query.future, short_bulk.future), HANG_GUARD_S)
        assert dedicated.firsts == [[10]] and bulk.firsts == [[20]]
        assert (long_query.lane, short_bulk.lane) == (Lane.INTERACTIVE, Lane.BULK)
    finally:
        batcher.close(timeout=5)


async def test_without_a_dedicated_session_no_thread_is_reniced(session: FakeSession) -> None:
    lowered: list[int] = []
    batcher = Batcher([session], limits(), pad_id=0, dims=DIMS, bulk_nice=10, lower_priority=lowered.append)
    try:
        job = batcher.submit(texts(30, 2), asyncio.get_running_loop())
        await asyncio.wait_for(job.future, HANG_GUARD_S)
        assert not batcher.dedicated_interactive and lowered == []
    finally:
        batcher.close(timeout=5)
