from __future__ import annotations

import math

import numpy as np
import pytest

from bench.stats import LatencySummary, LengthStats, median, percentile, ratio


@pytest.mark.parametrize("q", [0, 10, 25, 50, 90, 99, 100])
def test_percentile_matches_numpy_linear(q: float) -> None:
    samples = [3.0, 1.0, 4.0, 1.5, 9.0, 2.6, 5.0, 3.5]
    assert percentile(samples, q) == pytest.approx(float(np.percentile(samples, q)))


def test_percentile_of_one_and_of_none() -> None:
    assert percentile([7.0], 99) == 7.0
    assert math.isnan(percentile([], 50))
    assert median([1.0, 2.0, 3.0, 4.0]) == 2.5


def test_percentile_rejects_out_of_range() -> None:
    with pytest.raises(ValueError, match="between 0 and 100"):
        percentile([1.0], 101)


def test_ratio_handles_missing_and_zero() -> None:
    assert ratio(3.0, 2.0) == 1.5
    assert ratio(None, 2.0) is None
    assert ratio(1.0, None) is None
    assert ratio(1.0, 0.0) is None
    assert ratio(math.nan, 1.0) is None


def test_latency_summary_is_in_milliseconds() -> None:
    summary = LatencySummary.of([0.001 * i for i in range(1, 101)])
    assert summary.count == 100
    assert summary.p50_ms == pytest.approx(50.5)
    assert summary.p99_ms == pytest.approx(99.01)
    assert summary.max_ms == pytest.approx(100.0)
    assert LatencySummary.of([]).count == 0


def test_length_stats() -> None:
    stats = LengthStats.of([10, 20, 30, 40, 50])
    assert (stats.count, stats.total, stats.max) == (5, 150, 50)
    assert stats.median == 30
    assert stats.p10 == pytest.approx(14.0)
