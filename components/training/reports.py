"""Training progress on the driver, from the reports Ray Train's workers send.

Ray Train runs its callbacks in the run's controller (an actor, maybe on another node), so a
callback forwards each report through a small Ray queue, and a thread of the driver turns them
into a :class:`components.progress.Progress`: a bar of steps on a terminal, a rate line every
few seconds in logs.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from components.progress import Progress


def _forwarder(queue):
    """A Ray Train ``UserCallback`` that puts rank 0's step and loss of each report on ``queue``."""
    from ray.train import UserCallback

    class ForwardReports(UserCallback):
        def after_report(self, run_context, metrics, checkpoint) -> None:
            if metrics and "step" in metrics[0]:
                queue.put_nowait({"step": metrics[0]["step"], "loss": metrics[0].get("loss")})

    return ForwardReports()


def _follow(queue, stop: threading.Event, progress: Progress) -> None:
    from ray.util.queue import Empty

    while True:
        try:
            report = queue.get(timeout=0.5)
        except Empty:
            if stop.is_set():
                return
            continue
        loss = report["loss"]
        progress.update(report["step"] - progress.done, **({"loss": round(loss, 4)} if loss is not None else {}))


@contextlib.contextmanager
def follow_reports(desc: str, steps: int) -> Iterator[list]:
    """Callbacks for a ``RunConfig`` whose reports show as progress of ``steps`` steps here.

    A resumed run starts at its checkpoint's step; a restarted worker group steps back to it.
    """
    from ray.util.queue import Queue

    queue = Queue(actor_options={"num_cpus": 0})
    stop = threading.Event()
    with Progress(steps, desc, "steps") as progress:
        thread = threading.Thread(target=_follow, args=(queue, stop, progress), daemon=True)
        thread.start()
        try:
            yield [_forwarder(queue)]
        finally:
            stop.set()
            thread.join(timeout=10)
            queue.shutdown()
