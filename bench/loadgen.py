"""HTTP load generation: request shapes, closed and open loops, per-phase results.

- **Closed loop**: ``concurrency`` clients, each sending its next request as soon as the
  previous one answered. Either one pass over a fixed list of requests (throughput on a
  known amount of work, comparable with the in-process systems) or cycling for a duration.
- **Open loop**: requests start at the times of a Poisson schedule (:mod:`bench.schedule`)
  regardless of earlier ones; a request's latency runs from its *scheduled* time, so any
  backlog in the generator, the connection pool or the server counts.

A request succeeds when the status is 200 and the body holds one vector per text; any
other status is counted by code (429 and 503 are the server's admission control) and a
transport failure counts as status 0. The generator runs in the bench process, separate
from the server's process, but on a small machine the two share the CPU: each phase
records the generator's own CPU seconds so a reader can see what it took.

It sends through :mod:`bench.client`, not :class:`embedclient.Client` (which the rest of the
bench, rag and finetune use): the generator shares the CPU with the server it measures, and
every microsecond it spends per request is taken from the server, so it needs a client that
does nothing but send ready-made bodies on reused connections (httpx costs several times
more CPU per request). It must also *count* 429, 503 and 413 answers and transport failures,
which the shared client would retry, wait out or halve away.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import orjson

from bench.client import Endpoint, HttpError, Pool
from bench.stats import LatencySummary

Api = Literal["tei", "openai"]
F32 = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Target:
    """How to ask one server for embeddings.

    ``tei``: ``POST path {"inputs": [...]}`` answered ``[[...], ...]`` (our ``/embed``, TEI);
    ``openai``: ``POST path {"input": [...], "model": model}`` answered ``{"data": [...]}``
    (our ``/v1/embeddings``, infinity-emb's ``/embeddings``).
    """

    api: Api
    path: str
    model: str = ""
    headers: dict[str, str] = field(default_factory=dict)

    def body(self, texts: Sequence[str] | str) -> bytes:
        payload = list(texts) if not isinstance(texts, str) else texts
        if self.api == "tei":
            return orjson.dumps({"inputs": payload})
        return orjson.dumps({"input": payload, "model": self.model, "encoding_format": "float"})

    def vectors(self, body: bytes) -> F32:
        """The response's vectors as ``[n, d]``; ValueError when the body is not that shape."""
        data = orjson.loads(body)
        rows = data if self.api == "tei" else [item["embedding"] for item in data["data"]]
        array = np.asarray(rows, dtype=np.float32)
        if array.ndim != 2:
            raise ValueError(f"expected a list of vectors, got an array of shape {array.shape}")
        return array


@dataclass(frozen=True)
class Request:
    """One prepared request: its body and the work it carries."""

    body: bytes
    texts: int
    tokens: int


def prepare(
    target: Target, texts: Sequence[str], tokens: Sequence[int], per_request: int, single: bool = False
) -> list[Request]:
    """Bodies of ``per_request`` texts each, in corpus order; ``single`` sends a bare string."""
    out = []
    for start in range(0, len(texts), per_request):
        chunk = texts[start : start + per_request]
        payload: Sequence[str] | str = chunk[0] if single and len(chunk) == 1 else chunk
        out.append(Request(target.body(payload), len(chunk), sum(tokens[start : start + per_request])))
    return out


@dataclass
class Record:
    """One request's fate; times are ``time.perf_counter()`` seconds."""

    scheduled: float
    sent: float
    finished: float
    status: int
    texts: int
    tokens: int
    index: int = 0
    server_ms: float | None = None
    queue_ms: float | None = None

    @property
    def ok(self) -> bool:
        return self.status == 200

    @property
    def latency(self) -> float:
        return self.finished - self.scheduled


async def _send(pool: Pool, target: Target, request: Request, index: int, scheduled: float) -> Record:
    sent = time.perf_counter()
    server_ms = queue_ms = None
    try:
        reply = await pool.request("POST", target.path, request.body, target.headers)
        status = reply.status
        server_ms = _header_ms(reply.headers, "x-total-time")
        queue_ms = _header_ms(reply.headers, "x-queue-time")
        if status == 200:
            try:
                if len(target.vectors(reply.body)) != request.texts:
                    status = -1
            except (ValueError, KeyError, TypeError, orjson.JSONDecodeError):
                status = -1
    except HttpError:
        status = 0
    finished = time.perf_counter()
    return Record(
        scheduled, sent, finished, status, request.texts, request.tokens, index, server_ms, queue_ms
    )


def _header_ms(headers: dict[str, str], name: str) -> float | None:
    try:
        return float(headers[name])
    except (KeyError, ValueError):
        return None


async def closed_loop(
    pool: Pool,
    target: Target,
    requests: Sequence[Request],
    concurrency: int,
    duration: float | None = None,
) -> list[Record]:
    """``concurrency`` clients; one pass over ``requests`` or, with ``duration``, cycle
    through them until that many seconds have passed (requests in flight then finish)."""
    if concurrency < 1 or not requests:
        raise ValueError("a closed loop needs at least one client and one request")
    records: list[Record] = []
    counter = iter(range(1 << 62))
    deadline = None if duration is None else time.perf_counter() + duration

    async def client() -> None:
        while True:
            i = next(counter)
            if deadline is None and i >= len(requests):
                return
            if deadline is not None and time.perf_counter() >= deadline:
                return
            now = time.perf_counter()
            records.append(await _send(pool, target, requests[i % len(requests)], i, now))

    await asyncio.gather(*(client() for _ in range(concurrency)))
    return records


async def open_loop(
    pool: Pool, target: Target, requests: Sequence[Request], arrivals: Sequence[float]
) -> list[Record]:
    """Start request ``i`` (cycling through ``requests``) at ``start + arrivals[i]``;
    latency is measured from that scheduled time."""
    if not requests:
        raise ValueError("an open loop needs at least one request")
    loop = asyncio.get_running_loop()
    start = time.perf_counter()
    tasks: list[asyncio.Task[Record]] = []
    for i, offset in enumerate(arrivals):
        scheduled = start + offset
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(loop.create_task(_send(pool, target, requests[i % len(requests)], i, scheduled)))
    return list(await asyncio.gather(*tasks))


@dataclass(frozen=True)
class Phase:
    """The outcome of one load phase, in the units the report prints."""

    name: str
    profile: str
    mode: Literal["closed", "open"]
    concurrency: int
    target_rate: float | None
    wall_s: float
    requests: int
    ok: int
    statuses: dict[str, int]
    texts_per_s: float
    tokens_per_s: float
    requests_per_s: float
    latency: LatencySummary
    server_ms: LatencySummary
    queue_ms: LatencySummary
    late_sends: int
    client_cpu_s: float
    latencies_ms: list[float] = field(repr=False, default_factory=list)

    @property
    def errors(self) -> int:
        return self.requests - self.ok


def summarize(
    name: str,
    profile: str,
    mode: Literal["closed", "open"],
    records: Sequence[Record],
    *,
    concurrency: int = 0,
    target_rate: float | None = None,
    client_cpu_s: float = 0.0,
) -> Phase:
    """Throughput over the phase's wall time (first scheduled send to last answer) and the
    latency distribution of the successful requests, as the client saw it and as the server
    reported it (``x-total-time`` and ``x-queue-time`` headers, where the server sends them)."""
    if not records:
        raise ValueError(f"phase {name} sent no requests")
    begin = min(r.scheduled for r in records)
    end = max(r.finished for r in records)
    wall = max(end - begin, 1e-9)
    good = [r for r in records if r.ok]
    statuses = Counter(str(r.status) for r in records)
    latencies = [r.latency for r in good]
    return Phase(
        name=name,
        profile=profile,
        mode=mode,
        concurrency=concurrency,
        target_rate=target_rate,
        wall_s=wall,
        requests=len(records),
        ok=len(good),
        statuses=dict(sorted(statuses.items())),
        texts_per_s=sum(r.texts for r in good) / wall,
        tokens_per_s=sum(r.tokens for r in good) / wall,
        requests_per_s=len(good) / wall,
        latency=LatencySummary.of(latencies),
        server_ms=LatencySummary.of([r.server_ms / 1000.0 for r in good if r.server_ms is not None]),
        queue_ms=LatencySummary.of([r.queue_ms / 1000.0 for r in good if r.queue_ms is not None]),
        late_sends=sum(1 for r in records if r.sent - r.scheduled > 0.010),
        client_cpu_s=client_cpu_s,
        latencies_ms=sorted(round(s * 1000.0, 3) for s in latencies),
    )


async def scrape(pool: Pool, settle: float = 0.0) -> dict[str, float]:
    """Our server's unlabelled Prometheus samples (``embed_*``); empty if /metrics is absent.

    ``settle`` waits first: the server records a batch just after answering it, so a scrape
    right after the last answer can miss the last batch.
    """
    if settle > 0:
        await asyncio.sleep(settle)
    try:
        reply = await pool.request("GET", "/metrics")
    except HttpError:
        return {}
    if reply.status != 200:
        return {}
    samples: dict[str, float] = {}
    for line in reply.body.decode("utf-8", "replace").splitlines():
        if line.startswith("embed_") and "{" not in line:
            name, _, value = line.partition(" ")
            try:
                samples[name] = float(value)
            except ValueError:
                continue
    return samples


def server_batches(before: dict[str, float], after: dict[str, float]) -> dict[str, float] | None:
    """Batches the server ran between two scrapes: count, mean size, padding share."""

    def delta(key: str) -> float:
        return after.get(key, 0.0) - before.get(key, 0.0)

    batches = delta("embed_batch_size_count")
    padded = delta("embed_batch_tokens_sum")
    if not after or batches <= 0 or padded <= 0:
        return None
    return {
        "batches": batches,
        "mean_batch_size": delta("embed_batch_size_sum") / batches,
        "mean_batch_tokens": padded / batches,
        "padding_ratio": 1.0 - delta("embed_tokens_total") / padded,
    }


Body = Callable[[Pool], Awaitable[list[Record]]]
"""A phase's load: sends through the pool it is given and returns every request's fate."""


def phase_line(phase: Phase) -> str:
    """One progress line for a finished phase."""
    lat = phase.latency
    return (
        f"{phase.name}: {phase.requests_per_s:,.1f} req/s, {phase.texts_per_s:,.1f} texts/s, "
        f"{phase.tokens_per_s:,.0f} tokens/s, p50 {lat.p50_ms:.1f} ms, p99 {lat.p99_ms:.1f} ms "
        f"(server p50 {phase.server_ms.p50_ms:.1f}, queue p50 {phase.queue_ms.p50_ms:.1f}), "
        f"errors {phase.errors} {phase.statuses}, client CPU {phase.client_cpu_s / phase.wall_s:.0%}"
    )


def phase_json(phase: Phase, batches: dict[str, float] | None) -> dict[str, Any]:
    data = asdict(phase)
    data["errors"] = phase.errors
    data["server_batches"] = batches
    return data


async def run_phase(
    endpoint: Endpoint,
    name: str,
    profile: str,
    mode: Literal["closed", "open"],
    body: Body,
    log: Callable[[str], None],
    *,
    concurrency: int = 0,
    rate: float | None = None,
) -> dict[str, Any]:
    """Run one load phase; its summary with the server's batch statistics over it."""
    pool = Pool(endpoint, limit=max(concurrency, 1) if mode == "closed" else 1024)
    metrics_pool = Pool(endpoint, limit=1)
    try:
        before = await scrape(metrics_pool)
        cpu = time.process_time()
        records = await body(pool)
        cpu = time.process_time() - cpu
        after = await scrape(metrics_pool, settle=0.2)
    finally:
        await pool.close()
        await metrics_pool.close()
    phase = summarize(
        name, profile, mode, records, concurrency=concurrency, target_rate=rate, client_cpu_s=cpu
    )
    log(phase_line(phase))
    return phase_json(phase, server_batches(before, after))
