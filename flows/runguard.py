"""What keeps pipeline runs apart and bounded: one run per repository at a time, and stage timeouts.

- :func:`pipeline_lock`: an exclusive ``flock`` on ``.dvc/tmp/ragtune-pipeline.lock`` around the
  whole flow. A second run (a schedule firing while CI or a test runs in the same checkout) says it
  is waiting, names the holder, and waits up to a bound. The kernel releases the lock when the
  holder's process ends, however it ends, so a killed run never leaves a stale lock.
- :class:`StageWatchdog`: kills a stage's process tree when it runs past its ``meta.timeout_s``
  (the stage command is a subprocess of DVC; a Prefect task timeout cannot stop a blocked
  subprocess, so the watchdog finds it by the ``DVC_STAGE`` and ``DVC_ROOT`` variables DVC sets).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

logger = logging.getLogger(__name__)

LOCK_FILE = ".dvc/tmp/ragtune-pipeline.lock"  # DVC's own git-ignored scratch folder


class PipelineBusyError(RuntimeError):
    """Another pipeline run kept the repository's lock for longer than this run would wait."""


class StageTimeoutError(RuntimeError):
    """A stage ran past its ``meta.timeout_s`` and was killed."""


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        return "holder unknown"
    return ", ".join(f"{k} {v}" for k, v in info.items()) or "holder unknown"


@contextlib.contextmanager
def pipeline_lock(
    root: Path,
    wait_s: float | None,
    on_wait: Callable[[str], None],
    name: str = "",
    poll_s: float = 2.0,
) -> Iterator[None]:
    """Hold the repository's pipeline lock for the duration of the block.

    Args:
        wait_s: how long to wait for another run to finish (None: as long as it takes).
        on_wait: called once with a message naming the holder when the lock is taken.
        name: this run's name, recorded for the next waiter's message.

    Raises:
        PipelineBusyError: the lock was still held after ``wait_s`` seconds.
        FileNotFoundError: ``root`` is not a DVC repository (creating ``.dvc/`` would make it look like one).
    """
    if not (root / ".dvc").is_dir():
        raise FileNotFoundError(f"{root} is not a DVC repository (no .dvc/): run `dvc init` there first")
    path = root / LOCK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        start, told = time.monotonic(), False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                waited = time.monotonic() - start
                if wait_s is not None and waited >= wait_s:
                    raise PipelineBusyError(
                        f"another pipeline run still holds {path} after {waited:.0f} s ({_holder(path)})"
                    ) from None
                if not told:
                    limit = "" if wait_s is None else f" (up to {wait_s:.0f} s)"
                    on_wait(f"another pipeline run holds {path} ({_holder(path)}): waiting for it to finish{limit}")
                    told = True
                time.sleep(poll_s)
        if told:
            on_wait(f"got the pipeline lock after {time.monotonic() - start:.0f} s")
        info = {"run": name, "pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%H:%M:%S")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        yield
    finally:
        os.close(fd)  # closing the last descriptor releases the flock


def _stage_processes(root: str, stage: str) -> list:
    """This process's descendants that run ``stage`` of the DVC repository ``root`` (their whole trees)."""
    import psutil

    found = []
    for proc in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            env = proc.environ()
            if env.get("DVC_ROOT") == root and env.get("DVC_STAGE", "").rpartition(":")[2] == stage:
                found += [proc, *proc.children(recursive=True)]
    return found


class StageWatchdog:
    """Kill ``stage``'s process tree once ``timeout_s`` has passed (None: never); ``fired`` says it did."""

    def __init__(self, root: str, stage: str, timeout_s: float | None) -> None:
        self.root, self.stage, self.timeout_s = root, stage, timeout_s
        self.fired = False
        self._timer = None if timeout_s is None else threading.Timer(timeout_s, self._fire)

    def _fire(self) -> None:
        import psutil

        procs = _stage_processes(self.root, self.stage)
        self.fired = True
        logger.error("stage %s ran past %.0f s: killing %d processes", self.stage, self.timeout_s, len(procs))
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                proc.kill()

    def __enter__(self) -> StageWatchdog:
        if self._timer is not None:
            self._timer.daemon = True
            self._timer.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._timer is not None:
            self._timer.cancel()
