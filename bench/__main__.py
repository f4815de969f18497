"""``python -m bench``: parse flags -> settings -> run the suite -> write JSON, markdown, plots.

Exit codes: 0 done, 2 bad flags or an unusable model/corpus, 1 failure while running.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from bench.corpus import CorpusError
from bench.model import ModelError
from bench.progress import Progress
from bench.report import render, write_json
from bench.server_process import ServerError
from bench.settings import BenchSettings, SettingsError, from_sources
from bench.suite import BenchError, run


def execute(settings: BenchSettings, progress: Progress) -> list[Path]:
    """Run the suite and write ``results.json``, ``summary.md`` and the plots; returns the files."""
    results = run(settings, progress)
    out = settings.out
    files = [write_json(results, out / "results.json")]
    plots: list[Path] = []
    if settings.plots:
        from bench.plots import draw_all

        plots = draw_all(results, out)
    summary = out / "summary.md"
    summary.write_text(render(results, [p.name for p in plots]))
    return [*files, summary, *plots]


def main(argv: Sequence[str] | None = None) -> int:
    try:
        settings = from_sources(argv)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    progress = Progress()
    # SIGTERM unwinds like Ctrl-C, so the servers the run started are stopped too.
    previous = signal.signal(signal.SIGTERM, lambda _sig, _frame: sys.exit(143))
    try:
        files = execute(settings, progress)
    except (ModelError, CorpusError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (BenchError, ServerError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)
    progress.log("wrote " + ", ".join(str(f) for f in files))
    return 0


if __name__ == "__main__":
    sys.exit(main())
