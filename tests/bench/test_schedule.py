"""The open-loop schedule and the load generator's loops, against a tiny local HTTP server."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator

import orjson
import pytest

from bench.client import Endpoint, Pool
from bench.loadgen import Target, closed_loop, open_loop, prepare, summarize
from bench.schedule import poisson_arrivals


def test_poisson_arrivals_are_deterministic_with_a_seed() -> None:
    a = poisson_arrivals(50.0, 10.0, seed=7)
    assert a == poisson_arrivals(50.0, 10.0, seed=7)
    assert a != poisson_arrivals(50.0, 10.0, seed=8)


def test_poisson_arrivals_have_the_rate_and_stay_in_the_window() -> None:
    arrivals = poisson_arrivals(100.0, 100.0, seed=1)
    assert all(0 <= x < 100.0 for x in arrivals)
    assert arrivals == sorted(arrivals)
    assert len(arrivals) == pytest.approx(10_000, rel=0.05)
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert sum(gaps) / len(gaps) == pytest.approx(0.01, rel=0.05)


@pytest.mark.parametrize(("rate", "duration"), [(0.0, 1.0), (1.0, 0.0), (-1.0, 1.0)])
def test_poisson_arrivals_reject_bad_parameters(rate: float, duration: float) -> None:
    with pytest.raises(ValueError, match="positive"):
        poisson_arrivals(rate, duration, seed=0)


SERVICE_S = 0.02


@pytest.fixture
async def serial_server() -> AsyncIterator[tuple[Endpoint, list[int]]]:
    """An HTTP server that answers one request at a time after SERVICE_S, like a busy
    single-worker server; every response is a TEI vector list, sent chunked for odd counts."""
    lock = asyncio.Lock()
    seen: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(
                    next(
                        line.split(b":")[1]
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length")
                    )
                )
                body = orjson.loads(await reader.readexactly(length))
                texts = body["inputs"] if isinstance(body["inputs"], list) else [body["inputs"]]
                async with lock:
                    await asyncio.sleep(SERVICE_S)
                    seen.append(len(texts))
                payload = orjson.dumps([[1.0, 0.0]] * len(texts))
                if len(seen) % 2:
                    size = f"{len(payload):x}".encode()
                    writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nx-total-time: 1.5\r\n\r\n"
                                 + size + b"\r\n" + payload + b"\r\n0\r\n\r\n")  # fmt: skip
                else:
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(payload) + payload)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield Endpoint("127.0.0.1", port, ""), seen
    finally:
        server.close()
        await server.wait_closed()


async def test_open_loop_measures_latency_from_the_scheduled_time(
    serial_server: tuple[Endpoint, list[int]],
) -> None:
    endpoint, _ = serial_server
    target = Target("tei", "/embed")
    requests = prepare(target, ["a text"], [3], 1, single=True)
    pool = Pool(endpoint, limit=1)
    try:
        # Ten requests due at once on a server that serves one at a time: the k-th waits
        # for the k-1 before it, and that wait must show in its latency.
        records = await open_loop(pool, target, requests, [0.0] * 10)
    finally:
        await pool.close()
    assert [r.status for r in records] == [200] * 10
    latencies = sorted(r.latency for r in records)
    for k, latency in enumerate(latencies):
        assert latency >= (k + 1) * SERVICE_S * 0.999
    assert len({r.scheduled for r in records}) == 1


async def test_closed_loop_pass_sends_every_request_once(serial_server: tuple[Endpoint, list[int]]) -> None:
    endpoint, seen = serial_server
    target = Target("tei", "/embed")
    texts = [f"text {i}" for i in range(45)]
    requests = prepare(target, texts, [2] * len(texts), 20)
    assert [r.texts for r in requests] == [20, 20, 5]
    pool = Pool(endpoint, limit=3)
    try:
        records = await closed_loop(pool, target, requests, concurrency=3)
    finally:
        await pool.close()
    assert sorted(seen) == [5, 20, 20]
    phase = summarize("pass", "ingest", "closed", records, concurrency=3)
    assert phase.ok == 3 and phase.errors == 0
    assert phase.texts_per_s * phase.wall_s == pytest.approx(45)
    assert phase.server_ms.count >= 1


async def test_a_wrong_row_count_is_an_error(serial_server: tuple[Endpoint, list[int]]) -> None:
    endpoint, _ = serial_server
    target = Target("tei", "/embed")
    lying = [r.__class__(r.body, r.texts + 1, r.tokens) for r in prepare(target, ["x"], [1], 1)]
    pool = Pool(endpoint, limit=1)
    try:
        records = await closed_loop(pool, target, lying, concurrency=1)
    finally:
        await pool.close()
    assert [r.status for r in records] == [-1]
    assert summarize("x", "ingest", "closed", records).errors == 1
