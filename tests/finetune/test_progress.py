"""Progress lines for logs: step/total, fields, rate and ETA, every N steps or every 10 s."""

from __future__ import annotations

import io

from finetune import progress


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_lines_every_n_steps_with_rate_and_eta() -> None:
    stream, clock = io.StringIO(), Clock()
    lines = progress.Lines("fine-tune", 100, "step", every=10, stream=stream, clock=clock)
    for _ in range(25):
        clock.now += 0.4
        lines.update(1, loss="0.5000")
    lines.close()
    out = stream.getvalue().splitlines()
    assert out == [
        "fine-tune: step 10/100 (10%) loss 0.5000 | 2.5 steps/s | elapsed 4s | ETA 36s",
        "fine-tune: step 20/100 (20%) loss 0.5000 | 2.5 steps/s | elapsed 8s | ETA 32s",
        "fine-tune: step 25/100 (25%) loss 0.5000 | 2.5 steps/s | elapsed 10s | ETA 30s",
    ]


def test_slow_steps_report_every_ten_seconds_and_resumed_steps_do_not_count() -> None:
    stream, clock = io.StringIO(), Clock()
    slow = progress.Lines("fine-tune", 50, "step", every=10, stream=stream, clock=clock)
    for _ in range(3):
        clock.now += 6.0
        slow.update(1)
    assert stream.getvalue().splitlines() == [
        "fine-tune: step 2/50 (4%) | 6.00 s/step | elapsed 12s | ETA 4m48s"
    ]
    stream, clock = io.StringIO(), Clock()
    lines = progress.Lines("mining negatives", 1000, "text", 400, every=500, stream=stream, clock=clock)
    clock.now += 11.0
    lines.update(100)
    clock.now += 5.0
    lines.update(100)  # neither 500 texts nor 10 s since the last line
    assert stream.getvalue().splitlines() == [
        "mining negatives: text 500/1000 (50%) | 9.1 texts/s | elapsed 11s | ETA 55s"
    ]


def test_start_picks_lines_off_a_terminal_and_nothing_when_disabled() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert isinstance(progress.start("x", 3, stream=io.StringIO()), progress.Lines)
    assert isinstance(progress.start("x", 3, enabled=False), progress.Silent)
    assert isinstance(progress.start("x", 3, stream=Terminal()), progress.Bar)


def test_duration_format() -> None:
    got = [progress.duration(s) for s in (0, 59.4, 61, 3600, 7322)]
    assert got == ["0s", "59s", "1m01s", "1h00m", "2h02m"]
