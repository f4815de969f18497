"""An embedding server over HTTP: ours or a peer (infinity-emb), started by the bench or not.

One pass sends the texts as requests of ``per_request`` texts (the size Elasticsearch's
ingest sends) from ``concurrency`` closed-loop clients; the server is saturated when
enough requests are in flight for its batcher to fill batches. For our server the padding
share and batch sizes come from a ``/metrics`` scrape before and after the pass.

The timed pass runs on the load generator's own client (:mod:`bench.loadgen`); the vectors
for the agreement check come through :class:`embedclient.Client`, with its retries.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import numpy as np

from bench.client import Endpoint, Pool
from bench.loadgen import Target, closed_loop, prepare, scrape, server_batches
from bench.systems import F32, Pass, Role, Transport
from embedclient import Client, ClientError

EMBED_TIMEOUT_S = 300.0
"""Per request of the agreement check: a hang guard (a pass saturates the same server)."""


class PassFailed(RuntimeError):
    """Requests of a throughput pass failed; a pass must embed every text to count."""


class HttpServer:
    def __init__(
        self,
        key: str,
        label: str,
        role: Role,
        variant: str,
        endpoint: Endpoint,
        target: Target,
        concurrency: int,
        per_request: int = 20,
        ours: bool = True,
    ) -> None:
        self.key = key
        self.label = label
        self.role = role
        self.transport: Transport = "http"
        self.variant = variant
        self.endpoint = endpoint
        self.target = target
        self.concurrency = concurrency
        self.per_request = per_request
        self.ours = ours

    async def _pass(self, texts: Sequence[str]) -> Pass:
        requests = prepare(self.target, texts, [0] * len(texts), self.per_request)
        pool = Pool(self.endpoint, limit=self.concurrency + 1)
        try:
            before = await scrape(pool) if self.ours else {}
            start = time.perf_counter()
            records = await closed_loop(pool, self.target, requests, self.concurrency)
            seconds = time.perf_counter() - start
            after = await scrape(pool, settle=0.2) if self.ours else {}
        finally:
            await pool.close()
        failed = [r.status for r in records if not r.ok]
        if failed:
            raise PassFailed(
                f"{self.label}: {len(failed)} of {len(records)} requests failed "
                f"(statuses {sorted(set(failed))})"
            )
        batches = server_batches(before, after)
        padding = batches.pop("padding_ratio") if batches else None
        return Pass(seconds, padding, batches or {})

    def run(self, texts: Sequence[str]) -> Pass:
        return asyncio.run(self._pass(texts))

    def embed(self, texts: Sequence[str]) -> F32:
        with Client(self.endpoint.url, headers=self.target.headers, timeout=EMBED_TIMEOUT_S) as client:
            try:
                rows = client.embed(
                    texts,
                    batch_size=self.per_request,
                    api=self.target.api,
                    path=self.target.path,
                    model=self.target.model or None,
                )
            except ClientError as exc:
                raise PassFailed(f"{self.label}: {exc}") from exc
        return np.asarray(rows, dtype=np.float32)

    def close(self) -> None:
        return None
