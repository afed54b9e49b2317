"""Progress of long work: a tqdm bar on a terminal, a throttled rate line in logs elsewhere.

On a terminal (stderr is a TTY) a bar redraws in place. In CI logs, under Prefect or DVC, a bar would
print a line per redraw, so there one log line appears at most every ``every_s`` seconds (done, rate,
remaining time), plus a closing line with the total: a few lines per minute of work, not thousands.
Work shorter than ``QUIET_BELOW_S`` logs nothing at all.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from typing import TextIO

logger = logging.getLogger(__name__)

LINE_EVERY_S = 10.0  # seconds between rate lines when not on a terminal
QUIET_BELOW_S = 2.0  # work done faster than this logs no closing line (a latency pass's one-answer calls)


class Progress:
    """Count work done toward ``total`` (``None``: unknown) in ``unit`` s; use as a context manager.

    Args:
        desc: what is being done, first word of every line (``"train lora-r8-qv"``).
        every_s: the shortest time between two rate lines when not on a terminal.
        stream: where the bar goes, and whose ``isatty`` picks bar or lines (default stderr).
        clock: seconds, monotonic (tests pass a fake one).
        enabled: False shows nothing (short work that would only add noise).
    """

    def __init__(
        self,
        total: int | float | None,
        desc: str,
        unit: str,
        every_s: float = LINE_EVERY_S,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
        enabled: bool = True,
    ) -> None:
        self.total, self.desc, self.unit, self.every_s, self.clock = total, desc, unit, every_s, clock
        self.done: float = 0
        self.enabled = enabled
        self.start = self.last_line = clock()
        stream = stream or sys.stderr
        self.bar = None
        if enabled and stream.isatty():
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc=desc, unit=unit, file=stream, dynamic_ncols=True)

    def update(self, n: float = 1, **postfix: object) -> None:
        """``n`` more units done; ``postfix`` (``loss=0.41``) is shown beside the count."""
        self.done += n
        if self.bar is not None:
            if postfix:
                self.bar.set_postfix(postfix, refresh=False)
            self.bar.update(n)
            return
        now = self.clock()
        if self.enabled and now - self.last_line >= self.every_s:
            self.last_line = now
            logger.info("%s", self.line(now, postfix))

    def line(self, now: float, postfix: dict | None = None) -> str:
        """``desc: 32/89 answers (36%), 5.10 answers/s, about 11 s left, loss=0.41``."""
        elapsed = max(now - self.start, 1e-9)
        rate = self.done / elapsed
        text = f"{self.desc}: {_num(self.done)}"
        if self.total:
            text += f"/{_num(self.total)} {self.unit} ({100 * self.done / self.total:.0f}%)"
        else:
            text += f" {self.unit}"
        text += f", {rate:.2f} {self.unit}/s"
        if self.total and rate > 0 and self.done < self.total:
            text += f", about {(self.total - self.done) / rate:.0f} s left"
        if postfix:
            text += ", " + ", ".join(f"{k}={_num(v)}" for k, v in postfix.items())
        return text

    def close(self) -> None:
        """Close the bar, or log the closing line: total, time and rate."""
        if self.bar is not None:
            self.bar.close()
            return
        if not self.enabled:
            return
        elapsed = self.clock() - self.start
        if elapsed < QUIET_BELOW_S:
            return
        logger.info(
            "%s: %s %s in %.1f s (%.2f %s/s)",
            self.desc,
            _num(self.done),
            self.unit,
            elapsed,
            self.done / max(elapsed, 1e-9),
            self.unit,
        )

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _num(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.0f}" if value.is_integer() else f"{value:.3g}"
    return str(value)
