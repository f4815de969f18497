"""A progress bar on stderr with rate and ETA: redrawn in place on a terminal after every step;
elsewhere a line at every 10 % and at least every ``every`` seconds of work."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO


def duration(seconds: float) -> str:
    """``42 s``, ``3 min 05 s``, ``1 h 02 min``."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


class Progress:
    """Counts ``done`` of ``total`` ``unit`` of ``label``; ``close`` ends the line."""

    def __init__(
        self,
        label: str,
        total: int,
        stream: TextIO | None = None,
        unit: str = "",
        width: int = 30,
        every: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = label
        self.total = max(total, 0)
        self.unit = unit
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.every = every
        self.clock = clock
        self.done = 0
        self.failed = 0
        self.started = clock()
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._last_decile = -1
        self._last_line = self.started
        self._drawn = False

    def advance(self, n: int = 1, failed: int = 0) -> None:
        self.done += n
        self.failed += failed
        self._draw()

    def line(self) -> str:
        """``label [####......] done/total unit, rate unit/s, ETA`` (and failures)."""
        fraction = self.done / self.total if self.total else 1.0
        filled = int(self.width * min(fraction, 1.0))
        elapsed = self.clock() - self.started
        rate = self.done / elapsed if elapsed > 0 else 0.0
        unit = f" {self.unit}" if self.unit else ""
        left = self.total - self.done
        if left <= 0:
            eta = f"took {duration(elapsed)}"
        elif rate > 0:
            eta = f"ETA {duration(left / rate)}"
        else:
            eta = "ETA --"
        failed = f", {self.failed} failed" if self.failed else ""
        bar = "#" * filled + "." * (self.width - filled)
        per = f"{self.unit}/s" if self.unit else "/s"
        return f"{self.label} [{bar}] {self.done}/{self.total}{unit}, {rate:.1f} {per}, {eta}{failed}"

    def _draw(self) -> None:
        if self._tty:
            self.stream.write("\r" + self.line() + "\x1b[K")
            self.stream.flush()
            self._drawn = True
            return
        decile = int(10 * self.done / self.total) if self.total else 10
        now = self.clock()
        if decile != self._last_decile or now - self._last_line >= self.every:
            self._last_decile = decile
            self._last_line = now
            self.stream.write(self.line() + "\n")
            self.stream.flush()

    def close(self) -> None:
        if self._tty and self._drawn:
            self.stream.write("\r" + self.line() + "\x1b[K\n")
            self.stream.flush()
