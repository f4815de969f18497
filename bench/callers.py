"""The server's real callers as load profiles, alone and together.

- **ES pipeline**: Elasticsearch's ingest ``inference`` processor sends one chunk per request
  from many ingest threads, to the endpoint ``url`` that ``rag setup`` gives it (carrying
  ``?priority=bulk``): closed loops of 8, 32 and 128 keep-alive connections, and open loops
  at Elasticsearch's default ``rate_limit`` (3,000 requests/min) and at 80 % of the
  measured capacity, as the endpoint's rate limiter paces it.
- **semantic_text**: Elasticsearch's ``semantic_text`` field sends up to 20 chunks per
  request (``?priority=bulk`` too).
- **client bulk**: ``rag ingest``'s own shape, 32 chunks per request with
  ``X-Embed-Priority: bulk``, two ingests at once.
- **RAG queries**: one short query per request with ``X-Embed-Priority: interactive``, open
  loop at :data:`QUERY_RATE` per second: alone, then during each ingest shape.

- **burst**: many 20-text requests at once with a short deadline, each retried after
  Retry-After: the goodput (texts over the time to the last answer) against the steady rate
  shows whether admitted work is ever thrown away and redone.

From these come the issue's ratios (:func:`ratios`): the query p99 under saturating
ES-pipeline ingest over the idle query p99, ingest texts/s with the queries over ingest
alone, texts/s of one-chunk requests over 20-chunk requests of the same texts, and the
burst's goodput over the steady rate.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from bench.client import Endpoint, Pool
from bench.loadgen import (
    Body,
    Request,
    Target,
    closed_loop,
    open_loop,
    phase_json,
    phase_line,
    prepare,
    run_phase,
    summarize,
)
from bench.schedule import poisson_arrivals
from bench.stats import ratio

Json = dict[str, Any]
QUERY_RATE = 4.0
"""Queries per second during ingest (the issue's mixed load)."""
ES_DEFAULT_RATE = 3000 / 60
"""Elasticsearch's default ``rate_limit`` of an inference endpoint, in requests per second."""
WARM_S = 1.0
"""Seconds an ingest load runs before the queries start, so they meet it saturated."""


@dataclass(frozen=True)
class Shape:
    """One ingest caller: texts per request, connections, and how it states its class."""

    name: str
    per_request: int
    concurrency: int
    query: str = ""
    headers: tuple[tuple[str, str], ...] = ()

    def target(self, auth: dict[str, str]) -> Target:
        return Target("tei", "/embed" + self.query, headers={**auth, **dict(self.headers)})


ES_PIPELINE = [Shape(f"es-pipeline c={c}", 1, c, "?priority=bulk") for c in (8, 32, 128)]
SATURATING = ES_PIPELINE[1]
"""The ES-pipeline shape the isolation ratio is measured under."""
SEMANTIC_TEXT = Shape("semantic_text c=8", 20, 8, "?priority=bulk")
CLIENT_BULK = Shape("client bulk c=2", 32, 2, headers=(("x-embed-priority", "bulk"),))
MIXED = (SATURATING, SEMANTIC_TEXT, CLIENT_BULK)


def profiles(
    endpoint: Endpoint,
    auth: dict[str, str],
    passages: Sequence[str],
    passage_tokens: Sequence[int],
    queries: Sequence[str],
    query_tokens: Sequence[int],
    seconds: float,
    seed: int,
    log: Callable[[str], None],
    run: Callable[[Any], Any],
) -> Json:
    """Every caller alone, then the queries during each ingest shape; ``run`` runs a
    coroutine to completion (the bench's event loop runner)."""
    query_target = Target("tei", "/embed", headers={**auth, "x-embed-priority": "interactive"})
    query_reqs = prepare(query_target, queries, query_tokens, 1, single=True)
    arrivals = _arrivals(QUERY_RATE, seconds, seed + 200)
    out: Json = {"query_rate": QUERY_RATE, "seconds": seconds, "alone": [], "mixed": []}

    def ingest_reqs(shape: Shape) -> tuple[Target, list[Request]]:
        target = shape.target(auth)
        return target, prepare(target, passages, passage_tokens, shape.per_request)

    def closed(target: Target, reqs: list[Request], c: int) -> Body:
        return lambda pool: closed_loop(pool, target, reqs, c, seconds)

    def opened(target: Target, reqs: list[Request], arrivals: list[float]) -> Body:
        return lambda pool: open_loop(pool, target, reqs, arrivals)

    def phase(
        name: str, profile: str, body: Body, *, concurrency: int = 0, rate: float | None = None
    ) -> Json:
        mode: Literal["closed", "open"] = "closed" if rate is None else "open"
        result: Json = run(
            run_phase(endpoint, name, profile, mode, body, log, concurrency=concurrency, rate=rate)
        )
        out["alone"].append(result)
        return result

    idle = phase("query alone", "query", opened(query_target, query_reqs, arrivals), rate=QUERY_RATE)
    capacity = 0.0
    for shape in [*ES_PIPELINE, SEMANTIC_TEXT, CLIENT_BULK]:
        target, reqs = ingest_reqs(shape)
        result = phase(
            shape.name, "ingest", closed(target, reqs, shape.concurrency), concurrency=shape.concurrency
        )
        if shape is SATURATING:
            capacity = result["requests_per_s"]
    target, reqs = ingest_reqs(SATURATING)
    for label, rate in (("ES default rate_limit", ES_DEFAULT_RATE), ("80% of capacity", 0.8 * capacity)):
        if rate <= 0:
            continue
        schedule = _arrivals(rate, seconds, seed + 300)
        phase(
            f"es-pipeline open {rate:.0f}/s ({label})",
            "ingest-open",
            opened(target, reqs, schedule),
            rate=rate,
        )
    alone = {p["name"]: p for p in out["alone"]}
    for shape in MIXED:
        target, reqs = ingest_reqs(shape)
        under, ingest = run(
            _together(endpoint, shape, target, reqs, query_target, query_reqs, arrivals, seconds)
        )
        log(phase_line(under))
        log(phase_line(ingest))
        out["mixed"].append(
            {
                "shape": shape.name,
                "query_under_ingest": phase_json(under, None),
                "ingest_with_queries": phase_json(ingest, None),
                "ingest_alone_texts_per_s": alone[shape.name]["texts_per_s"],
            }
        )
    out["ratios"] = ratios(idle, alone, out["mixed"])
    steady = alone[SEMANTIC_TEXT.name]["texts_per_s"]
    out["burst"] = run(_burst(SEMANTIC_TEXT.target(auth), passages, steady, max(2.0, seconds / 5), endpoint))
    out["ratios"]["burst_goodput_over_steady"] = ratio(out["burst"]["goodput_texts_per_s"], steady)
    log(
        f"burst: {out['burst']['requests']} x {SEMANTIC_TEXT.per_request} texts at once, deadline "
        f"{out['burst']['request_timeout_s']:.0f}s: done in {out['burst']['wall_s']:.1f}s, "
        f"{out['burst']['attempts']} attempts {out['burst']['statuses']}, goodput "
        f"{out['burst']['goodput_texts_per_s']:.1f} texts/s (steady {steady:.1f})"
    )
    return out


async def _together(
    endpoint: Endpoint,
    shape: Shape,
    target: Target,
    reqs: Sequence[Request],
    query_target: Target,
    query_reqs: Sequence[Request],
    arrivals: Sequence[float],
    seconds: float,
) -> tuple[Any, Any]:
    """``shape``'s ingest, saturating, with the open-loop queries running through it."""
    ingest_pool = Pool(endpoint, limit=shape.concurrency)
    query_pool = Pool(endpoint, limit=1024)
    cpu = time.process_time()
    try:
        ingest_task = asyncio.ensure_future(
            closed_loop(ingest_pool, target, reqs, shape.concurrency, seconds + WARM_S)
        )
        await asyncio.sleep(WARM_S)
        query_records = await open_loop(query_pool, query_target, query_reqs, arrivals)
        ingest_records = await ingest_task
    finally:
        await ingest_pool.close()
        await query_pool.close()
    cpu = time.process_time() - cpu
    under = summarize(
        f"query under {shape.name}", "mixed", "open", query_records, target_rate=QUERY_RATE, client_cpu_s=cpu
    )
    ingest = summarize(
        f"{shape.name} with queries", "mixed", "closed", ingest_records, concurrency=shape.concurrency
    )
    return under, ingest


async def _burst(
    target: Target, passages: Sequence[str], steady: float, timeout: float, endpoint: Endpoint
) -> Json:
    """A burst of 20-text requests sent at once, holding about four deadlines' worth of work
    at the steady rate, each retried after Retry-After until answered (as Elasticsearch and
    ``embedclient`` do). Goodput: texts over the time until the last answer."""
    per = SEMANTIC_TEXT.per_request
    n = max(6, math.ceil(4 * timeout * steady / per))
    bodies = [target.body([passages[(i * per + j) % len(passages)] for j in range(per)]) for i in range(n)]
    headers = {**target.headers, "x-request-timeout": f"{timeout:g}"}
    pool = Pool(endpoint, limit=n)
    statuses: Counter[str] = Counter()

    async def client(body: bytes) -> None:
        while True:
            reply = await pool.request("POST", target.path, body, headers)
            statuses[str(reply.status)] += 1
            if reply.status == 200:
                return
            if reply.status not in (429, 503):
                raise RuntimeError(f"the burst got {reply.status}: {reply.body[:200]!r}")
            await asyncio.sleep(float(reply.headers.get("retry-after", "1")))

    start = time.perf_counter()
    try:
        await asyncio.gather(*(client(b) for b in bodies))
    finally:
        await pool.close()
    wall = time.perf_counter() - start
    return {
        "requests": n,
        "request_timeout_s": timeout,
        "wall_s": wall,
        "attempts": sum(statuses.values()),
        "statuses": dict(sorted(statuses.items())),
        "goodput_texts_per_s": n * per / wall,
    }


def ratios(idle: Json, alone: dict[str, Json], mixed: Sequence[Json]) -> Json:
    """The issue's figures: per mixed shape, query p99 over the idle p99 and ingest texts/s
    with queries over alone; one-chunk over 20-chunk texts/s per ES-pipeline concurrency."""
    idle_p99 = idle["latency"]["p99_ms"]
    semantic = alone[SEMANTIC_TEXT.name]["texts_per_s"]
    return {
        "idle_query_p50_ms": idle["latency"]["p50_ms"],
        "idle_query_p99_ms": idle_p99,
        "isolation": {
            m["shape"]: {
                "query_p50_ms": m["query_under_ingest"]["latency"]["p50_ms"],
                "query_p99_ms": m["query_under_ingest"]["latency"]["p99_ms"],
                "p99_over_idle": ratio(m["query_under_ingest"]["latency"]["p99_ms"], idle_p99),
                "ingest_share": ratio(m["ingest_with_queries"]["texts_per_s"], m["ingest_alone_texts_per_s"]),
            }
            for m in mixed
        },
        "one_chunk_over_twenty": {s.name: ratio(alone[s.name]["texts_per_s"], semantic) for s in ES_PIPELINE},
    }


def _arrivals(rate: float, seconds: float, seed: int) -> list[float]:
    """A Poisson schedule, or one request at once where a short phase drew none."""
    return poisson_arrivals(rate, seconds, seed) or [0.0]
