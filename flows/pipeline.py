"""The Prefect flow: the DVC stages in order, each a task, DVC deciding what re-runs.

The flow holds no stage logic: each task asks DVC to reproduce one stage of ``dvc.yaml``, and DVC
skips it when its code, params and inputs are unchanged. ``PREFECT_API_URL`` points the flow at a
Prefect server (each stage then shows as a task in its UI); the ephemeral API is used otherwise.

The stages and their order come from DVC's graph of ``dvc.yaml`` (``flows.dag``); each stage's
orchestration settings sit beside it there, under ``meta:`` (see docs/operations.md):

- One run per repository: the whole flow holds the repository's pipeline lock
  (``flows.runguard``); a second run says it is waiting, and waits at most the first run's bound.
- Pull: with ``pull=True`` (the pool deployments of prefect.yaml) the flow first fast-forwards
  the checkout (git) and fetches the raw data (DVC), so a worker runs on what was pushed.
- Raw data: absent, the run stops at once with what to do; the demo is copied in only on request
  (``ragtune run --demo``), never silently.
- Retries by exit code: a stage with ``meta.retries`` retries a transient failure (exit code 75:
  the network, a server's 5xx, DVC's lock; or the command killed from outside) with exponential
  backoff and jitter; a deterministic failure (exit 1: bad data, a bug, a refused gate; exit 2:
  bad params) never retries.
- Timeouts: a stage with ``meta.timeout_s`` is killed after that long, and the run fails (not
  retried: it would take as long again). The flow is bounded by its stages (``flows.dag.run_bound_s``).
- Caching: DVC is the cache. Its stage hashes cover code, params and inputs and it checks the
  outputs exist, so the tasks use ``NO_CACHE``: a Prefect cache would also skip a stage whose
  outputs someone deleted.
- Concurrency: ``meta.concurrency`` is a tag (``ragtune-training`` on ``finetune``). A tag limit on
  a server (``prefect concurrency-limit create ragtune-training 1``) queues such stages across
  flow runs of different checkouts; without a limit the tags change nothing.
- Flow-run names carry DVC's hash of ``data/raw``: ``ragtune-<hash8>-<time>``.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.tasks import exponential_backoff

from flows.common import EXIT_FAILED, EXIT_TRANSIENT, is_transient_error
from flows.dag import StageSpec, pipeline_stages, run_bound_s
from flows.datahash import raw_data_hash
from flows.runguard import PipelineBusyError, StageTimeoutError, StageWatchdog, pipeline_lock

KILLED = {signal.SIGKILL, signal.SIGTERM}  # a stage killed from outside: a lost node, preemption, the OOM killer


class MissingRawDataError(FileNotFoundError):
    """The project has no raw data to run on."""


class StageFailed(RuntimeError):
    """A stage's command exited non-zero (negative: killed by that signal); its own output says why."""

    def __init__(self, stage: str, exit_code: int) -> None:
        super().__init__(f"stage {stage} exited with {exit_code}")
        self.stage, self.exit_code = stage, exit_code


def stage_exit_code(exc: BaseException | None) -> int | None:
    """The exit code of the stage command behind a failed ``reproduce`` (negative: killed by that signal)."""
    from dvc.stage.exceptions import StageCmdFailedError

    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, StageFailed):
            return exc.exit_code
        if isinstance(exc, StageCmdFailedError):
            code = str(exc).rpartition("exited with ")[2]
            return int(code) if code.lstrip("-").isdigit() else None
        exc = exc.__cause__ or exc.__context__
    return None


def is_transient(exc: BaseException | None) -> bool:
    """Whether a failed ``reproduce`` is worth retrying: the explicit exit-code contract of flows/common.py.

    Retried: a stage that exited 75, a stage killed by SIGKILL or SIGTERM from outside, DVC's
    repository lock held by another process. Not retried: any other exit code (1 a bug, bad data,
    a refused gate; 2 bad params), a stage killed by its own timeout, DVC errors about the project.
    """
    if _caused_by(exc, StageTimeoutError):
        return False
    code = stage_exit_code(exc)
    if code is not None:
        return code == EXIT_TRANSIENT or -code in KILLED or code - 128 in KILLED
    return is_transient_error(exc)  # raised in this process: DVC's lock, the network


def _caused_by(exc: BaseException | None, kind: type[BaseException]) -> bool:
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, kind):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def exit_code(exc: BaseException) -> int:
    """The exit code a command reports for a failed run: the failed stage's own, 75 when worth a rerun, else 1."""
    code = stage_exit_code(exc)
    if code is not None and code > 0 and not _caused_by(exc, StageTimeoutError):
        return code
    return EXIT_TRANSIENT if is_transient(exc) or _caused_by(exc, PipelineBusyError) else EXIT_FAILED


def _retry_condition(task: Any, task_run: Any, state: Any) -> bool:
    try:
        state.result()
    except Exception as exc:  # the task's exception, re-raised by Prefect
        return is_transient(exc)
    return False


def flow_run_name() -> str:
    """``ragtune-<first 8 of DVC's hash of data/raw>-<UTC time>``; ``noraw`` before data/raw exists."""
    from prefect.runtime import flow_run

    root = Path(flow_run.parameters.get("root", ".")).resolve()
    try:
        version = raw_data_hash(root)[:8]
    except Exception:  # a name must never fail the run; the stages report the real error
        version = "noraw"
    return f"ragtune-{version}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}"


def raw_folder(root: Path) -> Path:
    from components.config import load_params

    return root / load_params(root / "params").data.paths.raw


def require_raw(root: Path) -> None:
    """Stop with what to do when the raw data is absent (nothing is seeded silently).

    Raises:
        MissingRawDataError: the raw folder does not exist.
    """
    raw = raw_folder(root)
    if raw.exists():
        return
    left = sorted(p.name for p in raw.parent.glob(f".{raw.name}.old-*")) if raw.parent.is_dir() else []
    crashed = f" An interrupted `ragtune data add` left {left[0]}: `ragtune data recover` puts it back." if left else ""
    raise MissingRawDataError(
        f"{raw} is absent: no data to run on.{crashed} Fetch the team's data with `dvc pull`, add yours with "
        f"`ragtune data add --docs DIR --qa FILE`, or try the bundled demo with `ragtune run --demo` (`make run`)."
    )


@task(name="pull", task_run_name="pull", cache_policy=NO_CACHE)
def pull_checkout(root: str) -> list[str]:
    """``git pull --ff-only`` and ``dvc pull`` of the raw data (flows/pull.py)."""
    from flows.pull import pull

    lines = pull(Path(root), raw_folder(Path(root)).relative_to(root).as_posix())
    for line in lines:
        get_run_logger().info(line)
    return lines


@task(task_run_name="{stage}", cache_policy=NO_CACHE)
def reproduce(root: str, stage: str, force: bool = False, timeout_s: float | None = None) -> bool:
    """``dvc repro --single-item <stage>``; True when the stage ran, False when DVC skipped it."""
    from dvc.repo import Repo

    # the stage commands call `ragtune`: make sure it is the one beside this interpreter
    bin_dir = str(Path(sys.executable).parent)
    if bin_dir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")
    with Repo(root) as repo, StageWatchdog(root, stage, timeout_s) as watchdog:
        try:
            target = f"{Path(root) / 'dvc.yaml'}:{stage}"  # absolute: the flow may run from another directory
            ran = repo.reproduce(targets=[target], single_item=True, force=force)
        except Exception as exc:
            # short exceptions, not DVC's chain: the stage printed why, and a refused gate is no crash
            if watchdog.fired:
                raise StageTimeoutError(
                    f"stage {stage} ran past its meta.timeout_s ({timeout_s:.0f} s): killed"
                ) from None
            code = stage_exit_code(exc)
            if code is not None:
                raise StageFailed(stage, code) from None
            raise
    get_run_logger().info("%s: %s", stage, "ran" if ran else "unchanged, skipped")
    return bool(ran)


def stage_task(spec: StageSpec, retry_delay_s: float):
    """``reproduce`` with the retries and concurrency tag dvc.yaml's ``meta:`` gives the stage."""
    options: dict[str, Any] = {"tags": [spec.concurrency] if spec.concurrency else []}
    if spec.retries > 0:
        options.update(
            retries=spec.retries,
            retry_delay_seconds=exponential_backoff(backoff_factor=retry_delay_s),
            retry_jitter_factor=0.5,
            retry_condition_fn=_retry_condition,
        )
    return reproduce.with_options(**options)


@flow(name="ragtune", log_prints=True, flow_run_name=flow_run_name)
def pipeline(root: str = ".", force: bool = False, retry_delay_s: float = 10.0, pull: bool = False) -> dict:
    """Every stage of dvc.yaml, in the order of DVC's graph, each reproduced by DVC, one run per repository.

    Args:
        root: the project (a DVC repo); deployments leave it at ".", the checkout the worker runs in.
        force: re-run every stage even if DVC sees no change.
        retry_delay_s: first retry delay of a stage with ``meta.retries``; it doubles on each retry (with jitter).
        pull: first ``git pull --ff-only`` and ``dvc pull`` the raw data (the pool deployments set it).
    """
    from prefect.runtime import flow_run

    root = str(Path(root).resolve())
    logger = get_run_logger()
    bound = run_bound_s(pipeline_stages(root), retry_delay_s)  # another run's longest: how long to wait for it
    with pipeline_lock(Path(root), bound, logger.warning, name=str(flow_run.name or "")):
        if pull:
            pull_checkout(root)
        require_raw(Path(root))
        ran, skipped = [], []
        for spec in pipeline_stages(root):  # read again: a pull may have changed dvc.yaml
            done = stage_task(spec, retry_delay_s)(root, spec.name, force, spec.timeout_s)
            (ran if done else skipped).append(spec.name)
    return {"ran": ran, "skipped": skipped}
