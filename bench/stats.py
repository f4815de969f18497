"""Summary statistics of benchmark samples: percentiles, latency summaries, ratios.

Percentiles use linear interpolation between closest ranks (numpy's default ``linear``
method), so ``percentile(xs, 50)`` of an even-sized sample is the mean of the middle two.
Latencies are recorded in seconds and reported in milliseconds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


def percentile(samples: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) of ``samples``; NaN for an empty sample."""
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile must be between 0 and 100, got {q}")
    if not samples:
        return math.nan
    ordered = sorted(samples)
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(samples: Sequence[float]) -> float:
    return percentile(samples, 50.0)


def ratio(value: float | None, reference: float | None) -> float | None:
    """``value / reference``, or None when either is missing, not finite, or the reference is 0."""
    if value is None or reference is None:
        return None
    if not (math.isfinite(value) and math.isfinite(reference)) or reference == 0:
        return None
    return value / reference


@dataclass(frozen=True)
class LatencySummary:
    """Latency distribution of one phase, in milliseconds (``count`` successful requests)."""

    count: int
    mean_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float

    @classmethod
    def of(cls, seconds: Sequence[float]) -> LatencySummary:
        if not seconds:
            nan = math.nan
            return cls(0, nan, nan, nan, nan, nan)
        ms = [s * 1000.0 for s in seconds]
        return cls(
            count=len(ms),
            mean_ms=sum(ms) / len(ms),
            p50_ms=percentile(ms, 50),
            p90_ms=percentile(ms, 90),
            p99_ms=percentile(ms, 99),
            max_ms=max(ms),
        )


@dataclass(frozen=True)
class LengthStats:
    """Token-length distribution of a set of texts."""

    count: int
    total: int
    mean: float
    p10: float
    median: float
    p90: float
    max: int

    @classmethod
    def of(cls, lengths: Sequence[int]) -> LengthStats:
        if not lengths:
            return cls(0, 0, math.nan, math.nan, math.nan, math.nan, 0)
        values = [float(n) for n in lengths]
        return cls(
            count=len(lengths),
            total=sum(lengths),
            mean=sum(values) / len(values),
            p10=percentile(values, 10),
            median=percentile(values, 50),
            p90=percentile(values, 90),
            max=max(lengths),
        )
