"""Overload: about 10x capacity, open loop, on the real server process (loopback, bounded time).

Only 200/429/503 may come back, every 429 carries Retry-After, admitted requests finish
within their deadline, memory stays bounded, and the server serves normally afterwards.
Figures are printed for docs/RELIABILITY.md (run with -s).
"""

from __future__ import annotations

import asyncio
import random
import time

import httpx
import psutil
import pytest

TEXTS = [f"document {i}: " + "words of an ingest batch " * (1 + i % 8) for i in range(200)]


async def closed_loop_rps(url: str, seconds: float, clients: int = 2) -> float:
    done = 0
    stop = time.monotonic() + seconds
    async with httpx.AsyncClient(timeout=60) as c:

        async def client() -> None:
            nonlocal done
            while time.monotonic() < stop:
                r = await c.post(url + "/embed", json={"inputs": random.sample(TEXTS, 20)})
                assert r.status_code == 200, r.text
                done += 1

        start = time.monotonic()
        await asyncio.gather(*(client() for _ in range(clients)))
        return done / (time.monotonic() - start)


async def open_loop(
    url: str, rate: float, seconds: float, peak_rss: list[int], pid: int
) -> list[tuple[int, float, bool]]:
    rng = random.Random(7)
    results: list[tuple[int, float, bool]] = []
    proc = psutil.Process(pid)
    limits = httpx.Limits(max_connections=400, max_keepalive_connections=400)
    async with httpx.AsyncClient(timeout=60, limits=limits) as c:

        async def one(scheduled: float) -> None:
            try:
                r = await c.post(url + "/embed", json={"inputs": rng.sample(TEXTS, 20)})
                results.append((r.status_code, time.monotonic() - scheduled, "retry-after" in r.headers))
            except httpx.HTTPError:
                results.append((-1, time.monotonic() - scheduled, False))

        tasks = []
        start = time.monotonic()
        t = start
        while t - start < seconds:
            t += rng.expovariate(rate)
            await asyncio.sleep(max(0.0, t - time.monotonic()))
            tasks.append(asyncio.ensure_future(one(t)))
            peak_rss[0] = max(peak_rss[0], proc.memory_info().rss)
        await asyncio.gather(*tasks)
    return results


@pytest.mark.slow
def test_ten_times_capacity_only_sheds_load(process_server) -> None:
    server = process_server(
        "--max-queue-requests", "24", "--request-timeout", "15", "--limit-concurrency", "512"
    )
    capacity = asyncio.run(closed_loop_rps(server.url, 3.0))
    peak = [0]
    results = asyncio.run(
        open_loop(server.url, rate=max(10 * capacity, 20.0), seconds=6.0, peak_rss=peak, pid=server.proc.pid)
    )
    statuses = {}
    for status, _, _ in results:
        statuses[status] = statuses.get(status, 0) + 1
    admitted = sorted(latency for status, latency, _ in results if status == 200)
    p99 = admitted[int(0.99 * (len(admitted) - 1))] if admitted else 0.0
    after = asyncio.run(closed_loop_rps(server.url, 3.0))
    print(
        f"\noverload: capacity {capacity:.1f} req/s (20 texts each), "
        f"offered {10 * capacity:.0f} req/s for 6 s, "
        f"{len(results)} requests, statuses {sorted(statuses.items())}, admitted p99 {p99:.2f} s, "
        f"peak RSS {peak[0] / 2**20:.0f} MiB, throughput after {after:.1f} req/s ({after / capacity:.2f}x)"
    )
    assert set(statuses) <= {200, 429, 503}, statuses
    assert statuses.get(429, 0) + statuses.get(503, 0) > 0, (
        "10x capacity shed nothing: the test is not overloading"
    )
    assert statuses.get(200, 0) > 0
    assert all(has_retry for status, _, has_retry in results if status in (429, 503))
    assert p99 <= 15.0 + 5.0  # the queue deadline plus the batch already running
    assert peak[0] < 2 * 2**30
    assert httpx.get(server.url + "/health/ready").status_code == 200
    metrics = httpx.get(server.url + "/metrics").text
    assert "embed_queue_requests 0.0" in metrics
