"""Graceful drain: what clients get when the server is told to stop with work in flight.

The model is a scripted session whose gate the test holds, so "still running" and "still
queued" are states the test sets up and ends, not a bet on how fast the machine is:

- SIGTERM flips readiness to 503 and refuses new work with a retryable 503 during the
  drain delay, while every admitted request waits and then completes with 200;
- after the drain delay the listener closes, and admitted requests still complete with 200;
- requests still queued when the grace period ends get a retryable 503, the batch still
  running is cut off, and the server stops;
- ``python -m server`` (a real process and a real signal) exits with code 0 after a drain.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx

from tests.reliability.conftest import HANG_GUARD_S, DrainingThread, ProcessServer, until

TEXTS = [f"passage {i} " + "about graceful shutdown " * (1 + i % 6) for i in range(20)]
NEVER_S = 600.0
"""A delay or deadline no test reaches: the test, not the clock, ends that phase."""


def post(client: httpx.AsyncClient, url: str, texts: list[str]) -> asyncio.Future[httpx.Response]:
    return asyncio.ensure_future(client.post(url + "/embed", json={"inputs": texts}))


async def admit(
    client: httpx.AsyncClient, server: DrainingThread, n: int
) -> list[asyncio.Future[httpx.Response]]:
    """``n`` admitted requests: the first running in the held session, the rest queued behind it."""
    running = post(client, server.url, ["the request the model is running"])
    assert await asyncio.to_thread(server.session.entered.wait, HANG_GUARD_S), "the session never ran"
    queued = [post(client, server.url, TEXTS) for _ in range(n - 1)]
    await until(lambda: server.admitted == n, f"{n} admitted requests")
    return [running, *queued]


def refuses_connections(url: str) -> bool:
    try:
        httpx.get(url + "/health/live", timeout=HANG_GUARD_S)
    except httpx.ConnectError:
        return True
    return False


def test_sigterm_refuses_new_work_during_the_drain_delay_and_finishes_admitted_work(
    draining_server: Callable[..., DrainingThread],
) -> None:
    server = draining_server(drain_delay=NEVER_S, request_timeout=NEVER_S)

    async def scenario() -> tuple[int, httpx.Response, httpx.Response, int, list[int]]:
        async with httpx.AsyncClient(timeout=HANG_GUARD_S) as client:
            admitted = await admit(client, server, 8)
            server.signal()
            ready = (await client.get(server.url + "/health/ready")).status_code
            late = await client.post(server.url + "/embed", json={"inputs": ["too late"]})
            async with httpx.AsyncClient(timeout=HANG_GUARD_S) as newcomer:  # a new connection
                fresh = await newcomer.post(server.url + "/embed", json={"inputs": ["too late"]})
            waiting = sum(not r.done() for r in admitted)
            server.session.gate.set()
            statuses = [r.status_code for r in await asyncio.gather(*admitted)]
        return ready, late, fresh, waiting, statuses

    ready, late, fresh, waiting, statuses = asyncio.run(scenario())
    assert ready == 503
    for refused in (late, fresh):
        assert refused.status_code == 503 and int(refused.headers["retry-after"]) >= 1, refused.text
    assert waiting == 8, "an admitted request was answered before the model ran it"
    assert statuses == [200] * 8


def test_after_the_drain_delay_the_listener_closes_and_admitted_work_still_completes(
    draining_server: Callable[..., DrainingThread],
) -> None:
    server = draining_server(drain_delay=0.2, drain_timeout=NEVER_S, request_timeout=NEVER_S)

    async def scenario() -> tuple[int, list[int]]:
        async with httpx.AsyncClient(timeout=HANG_GUARD_S) as client:
            admitted = await admit(client, server, 8)
            server.signal()
            await until(lambda: refuses_connections(server.url), "the listener to close")
            waiting = sum(not r.done() for r in admitted)
            server.session.gate.set()
            statuses = [r.status_code for r in await asyncio.gather(*admitted)]
        return waiting, statuses

    waiting, statuses = asyncio.run(scenario())
    assert waiting == 8, "an admitted request was answered before the model ran it"
    assert statuses == [200] * 8
    assert server.stopped()


def test_work_left_at_the_end_of_the_grace_period_gets_a_retryable_503(
    draining_server: Callable[..., DrainingThread],
) -> None:
    # Batches of at most 4 texts: every queued request of 20 keeps texts in the queue even
    # when the batcher has prefetched the next batch.
    server = draining_server(drain_timeout=2, request_timeout=NEVER_S, max_batch_size=4)

    async def scenario() -> tuple[list[httpx.Response], httpx.Response | BaseException]:
        async with httpx.AsyncClient(timeout=HANG_GUARD_S) as client:
            running, *queued = await admit(client, server, 6)
            server.signal()
            left = list(await asyncio.gather(*queued))
            (cut,) = await asyncio.gather(running, return_exceptions=True)
            # The grace period is over (the running request was cut off): let the model
            # thread go so that the server can stop.
            server.session.gate.set()
        return left, cut

    left, cut = asyncio.run(scenario())
    assert [r.status_code for r in left] == [503] * 5, [r.text for r in left]
    assert all(int(r.headers["retry-after"]) >= 1 for r in left)
    assert isinstance(cut, httpx.TransportError) or (
        isinstance(cut, httpx.Response) and cut.status_code >= 500
    ), cut
    assert server.stopped()


def test_python_m_server_exits_0_after_a_drain(process_server: Callable[..., ProcessServer]) -> None:
    server = process_server("--drain-delay", "0.2")
    r = httpx.post(server.url + "/embed", json={"inputs": TEXTS}, timeout=HANG_GUARD_S)
    assert r.status_code == 200
    server.terminate()
    assert server.proc.wait(HANG_GUARD_S) == 0, server.output()[-2000:]
