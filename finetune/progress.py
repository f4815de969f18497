"""Progress of a long loop (training steps, texts embedded for mining): a bar or plain lines.

On a terminal, a tqdm bar. Anywhere else (a log file, a CI job, ``kubectl logs``) a bar is
unreadable, so :class:`Lines` prints one line every ``every`` units or every
``LINE_SECONDS`` seconds, whichever comes first, and a last one at the end::

    fine-tune: step 40/122 (33%) loss 0.4123 | 1.62 s/step | elapsed 1m05s | ETA 2m13s

The rate counts only this process's work (a resumed run's earlier steps took unknown time),
and the ETA is the remaining units at that rate.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any, Protocol, TextIO

LINE_SECONDS = 10.0


class Progress(Protocol):
    """Counts work done; ``fields`` (e.g. ``loss``) are shown with the next report."""

    def update(self, n: int = 1, **fields: str) -> None: ...

    def close(self) -> None: ...


def duration(seconds: float) -> str:
    """``45s``, ``3m05s`` or ``2h07m``."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class Lines:
    """Plain progress lines on ``stream`` (see the module docstring); ``clock`` is injectable."""

    def __init__(
        self,
        label: str,
        total: int,
        unit: str = "step",
        initial: int = 0,
        every: int = 10,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label, self.total, self.unit = label, total, unit
        self.done = self.initial = initial
        self.every = max(1, every)
        self.stream = stream if stream is not None else sys.stderr
        self.clock = clock
        self.started = self.last_time = clock()
        self.last_done = initial
        self.fields: dict[str, str] = {}

    def update(self, n: int = 1, **fields: str) -> None:
        self.done += n
        self.fields.update(fields)
        now = self.clock()
        if self.done - self.last_done >= self.every or now - self.last_time >= LINE_SECONDS:
            self._emit(now)

    def close(self) -> None:
        if self.done != self.last_done:
            self._emit(self.clock())

    def line(self, now: float) -> str:
        """The report at time ``now``."""
        share = f" ({100 * self.done // self.total}%)" if self.total else ""
        text = f"{self.label}: {self.unit} {self.done}/{self.total}{share}"
        text += "".join(f" {key} {value}" for key, value in self.fields.items())
        elapsed = now - self.started
        done_here = self.done - self.initial
        if done_here > 0 and elapsed > 0:
            rate = done_here / elapsed
            speed = f"{1 / rate:.2f} s/{self.unit}" if rate < 1 else f"{rate:.1f} {self.unit}s/s"
            eta = duration(max(0, self.total - self.done) / rate)
            text += f" | {speed} | elapsed {duration(elapsed)} | ETA {eta}"
        return text

    def _emit(self, now: float) -> None:
        print(self.line(now), file=self.stream, flush=True)
        self.last_time, self.last_done = now, self.done


class Bar:
    """A tqdm bar (for a terminal)."""

    def __init__(self, label: str, total: int, unit: str = "step", initial: int = 0) -> None:
        from tqdm.auto import tqdm

        self.bar: Any = tqdm(total=total, initial=initial, desc=label, unit=unit, dynamic_ncols=True)

    def update(self, n: int = 1, **fields: str) -> None:
        self.bar.update(n)
        if fields:
            self.bar.set_postfix(fields)

    def close(self) -> None:
        self.bar.close()


class Silent:
    """No output (``--no-progress``)."""

    def update(self, n: int = 1, **fields: str) -> None:
        return

    def close(self) -> None:
        return


def start(
    label: str,
    total: int,
    *,
    enabled: bool = True,
    unit: str = "step",
    initial: int = 0,
    every: int = 10,
    stream: TextIO | None = None,
) -> Progress:
    """A bar when ``stream`` (default stderr) is a terminal, lines when not, nothing when disabled."""
    stream = stream if stream is not None else sys.stderr
    if not enabled:
        return Silent()
    if stream.isatty():
        return Bar(label, total, unit, initial)
    return Lines(label, total, unit, initial, every, stream)
