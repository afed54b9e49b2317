"""Progress off a terminal: a rate line at most every few seconds, a closing line, no bar."""

from __future__ import annotations

import io
import logging

from components.progress import Progress


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "components.progress"]


def test_off_a_terminal_lines_are_throttled_to_one_every_few_seconds(caplog):
    caplog.set_level(logging.INFO, logger="components.progress")
    clock, stream = FakeClock(), io.StringIO()
    with Progress(200, "generate", "answers", every_s=10.0, stream=stream, clock=clock) as progress:
        for _ in range(200):  # 200 updates over 100 s
            clock.now += 0.5
            progress.update(1, loss=0.25)
    lines = _lines(caplog)
    assert len(lines) == 11, lines  # one every 10 s (10) + the closing line, not 200
    assert lines[0] == "generate: 20/200 answers (10%), 2.00 answers/s, about 90 s left, loss=0.25"
    assert lines[-1] == "generate: 200 answers in 100.0 s (2.00 answers/s)"
    assert stream.getvalue() == ""  # no bar in a log


def test_an_unknown_total_and_fractional_units_read_plainly(caplog):
    caplog.set_level(logging.INFO, logger="components.progress")
    clock = FakeClock()
    with Progress(None, "upload", "MB", every_s=5.0, stream=io.StringIO(), clock=clock) as progress:
        clock.now = 6.0
        progress.update(12.5)
    assert _lines(caplog)[0] == "upload: 12.5 MB, 2.08 MB/s"


def test_on_a_terminal_a_bar_and_no_log_lines(caplog):
    caplog.set_level(logging.INFO, logger="components.progress")
    stream = Terminal()
    with Progress(10, "train lora", "steps", every_s=0.0, stream=stream) as progress:
        for _ in range(10):
            progress.update(1)
    assert "train lora" in stream.getvalue() and "10/10" in stream.getvalue()
    assert _lines(caplog) == []


def test_disabled_progress_says_nothing(caplog):
    caplog.set_level(logging.INFO, logger="components.progress")
    clock = FakeClock()
    with Progress(3, "embed", "chunks", every_s=0.0, stream=Terminal(), clock=clock, enabled=False) as progress:
        clock.now = 100.0
        progress.update(3)
    assert _lines(caplog) == []


def test_work_shorter_than_the_quiet_threshold_logs_nothing(caplog):
    """A latency pass answers one question at a time: a closing line per answer would flood the log."""
    caplog.set_level(logging.INFO, logger="components.progress")
    clock, stream = FakeClock(), io.StringIO()
    with Progress(1, "generate", "answers", stream=stream, clock=clock) as progress:
        clock.now += 0.5
        progress.update(1)
    with Progress(4, "generate", "answers", stream=stream, clock=clock) as progress:
        clock.now += 3.0
        progress.update(4)
    assert _lines(caplog) == ["generate: 4 answers in 3.0 s (1.33 answers/s)"]
