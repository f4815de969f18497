"""Live progress on stderr: one timestamped line per step, so a long run shows where it is."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    def __init__(self, stream: TextIO | None = None, quiet: bool = False) -> None:
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.started = time.perf_counter()

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def log(self, message: str) -> None:
        if not self.quiet:
            print(f"[{self.elapsed:7.1f}s] {message}", file=self.stream, flush=True)
