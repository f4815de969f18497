"""Every Prometheus metric of the server, declared once; call sites import these objects.

Metrics live in a registry owned by one app instance, so tests can build many apps in
one process without duplicate-registration errors.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from server.scheduler import Lane

STAGES = ("tokenize", "queue", "inference", "postprocess", "total")
LANES = tuple(lane.label for lane in Lane)
"""The ``lane`` label: the priority class a request ran in (server/scheduler.py's Lane)."""
REJECT_REASONS = (
    "validation",
    "payload",
    "media_type",
    "timeout",
    "unauthorized",
    "queue_full",
    "tokenizer_busy",
    "deadline",
    "concurrency",
    "draining",
)
"""Every ``reason`` of server/errors.py's refusals (tests/unit/test_errors.py keeps them in step)."""
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass(frozen=True)
class Metrics:
    """The server's metrics, bound to one registry."""

    registry: CollectorRegistry
    requests: Counter
    stage_seconds: Histogram
    lane_seconds: Histogram
    lane_texts: Counter
    queue_requests: Gauge
    queue_tokens: Gauge
    inflight: Gauge
    batch_size: Histogram
    batch_tokens: Histogram
    padding_ratio: Histogram
    rejected: Counter
    texts: Counter
    tokens: Counter
    batch_failures: Counter

    @classmethod
    def create(cls) -> Metrics:
        r = CollectorRegistry(auto_describe=True)
        return cls(
            registry=r,
            requests=Counter(
                "embed_requests", "HTTP requests by route and status", ["route", "status"], registry=r
            ),
            stage_seconds=Histogram(
                "embed_stage_seconds",
                "Seconds spent per request stage",
                ["stage"],
                buckets=_LATENCY_BUCKETS,
                registry=r,
            ),
            lane_seconds=Histogram(
                "embed_lane_seconds",
                "Seconds per request by priority class: queue wait and total",
                ["lane", "stage"],
                buckets=_LATENCY_BUCKETS,
                registry=r,
            ),
            lane_texts=Counter("embed_lane_texts", "Texts embedded by priority class", ["lane"], registry=r),
            queue_requests=Gauge("embed_queue_requests", "Requests admitted and not finished", registry=r),
            queue_tokens=Gauge("embed_queue_tokens", "Tokens queued and not yet in a batch", registry=r),
            inflight=Gauge("embed_inflight_requests", "HTTP requests being served", registry=r),
            batch_size=Histogram(
                "embed_batch_size",
                "Texts per model batch",
                buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
                registry=r,
            ),
            batch_tokens=Histogram(
                "embed_batch_tokens",
                "Padded tokens per model batch",
                buckets=(64, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768),
                registry=r,
            ),
            padding_ratio=Histogram(
                "embed_padding_ratio",
                "Share of a batch's tokens that are padding",
                buckets=(0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0),
                registry=r,
            ),
            rejected=Counter("embed_rejected", "Requests refused, by reason", ["reason"], registry=r),
            texts=Counter("embed_texts", "Texts embedded", registry=r),
            tokens=Counter("embed_tokens", "Tokens embedded (no padding)", registry=r),
            batch_failures=Counter(
                "embed_batch_failures", "Model batches whose inference failed", registry=r
            ),
        )
