"""Open-loop arrival schedules.

An open-loop load generator sends each request at its scheduled time whether or not
earlier requests have finished, the way independent users behave. Latency is measured
from the *scheduled* send time, not from when the request actually left: if the
generator or the server falls behind, the backlog shows up as latency instead of being
silently absorbed (the "coordinated omission" of closed-loop tools).
"""

from __future__ import annotations

import random


def poisson_arrivals(rate: float, duration: float, seed: int) -> list[float]:
    """Send offsets in seconds from the start, a Poisson process of ``rate`` per second
    over ``[0, duration)``: exponential gaps with mean ``1 / rate``.

    The same ``(rate, duration, seed)`` always gives the same schedule.
    """
    if rate <= 0 or duration <= 0:
        raise ValueError(f"rate and duration must be positive, got rate={rate}, duration={duration}")
    rng = random.Random(seed)
    arrivals: list[float] = []
    t = rng.expovariate(rate)
    while t < duration:
        arrivals.append(t)
        t += rng.expovariate(rate)
    return arrivals
