"""The Prefect flow: the DVC stages in order, each a task, DVC deciding what re-runs.

The flow holds no stage logic: each task asks DVC to reproduce one stage of ``dvc.yaml``, and DVC
skips it when its code, params and inputs are unchanged. ``PREFECT_API_URL`` points the flow at a
Prefect server (each stage then shows as a task in its UI); the ephemeral API is used otherwise.

The stages and their order come from DVC's graph of ``dvc.yaml`` (``flows.dag``); each stage's
orchestration settings sit beside it there, under ``meta:`` (see docs/operations.md):

- Retries: a stage with ``meta.retries`` retries a transient failure (a Ray worker lost, memory
  pressure, a flaky object store) with exponential backoff and jitter; a config error (exit code 2)
  or a DVC error about the project itself never retries.
- Caching: DVC is the cache. Its stage hashes cover code, params and inputs and it checks the
  outputs exist, so the tasks use ``NO_CACHE``: a Prefect cache would also skip a stage whose
  outputs someone deleted.
- Concurrency: ``meta.concurrency`` is a tag (``ragtune-training`` on ``finetune``). A tag limit on
  a server (``prefect concurrency-limit create ragtune-training 1``) queues such stages across flow
  runs; without a limit (the ephemeral API) the tags change nothing.
- Flow-run names carry DVC's hash of ``data/raw``: ``ragtune-<hash8>-<time>``.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.tasks import exponential_backoff

from components.catalog import Catalog
from components.config import load_params
from components.data.demo import seed_from_demo
from flows.common import EXIT_CONFIG
from flows.dag import StageSpec, pipeline_stages
from flows.datahash import raw_data_hash


def is_transient(exc: BaseException | None) -> bool:
    """Whether a failed ``reproduce`` is worth retrying.

    A stage command that failed (or was killed) is; a config error (exit code 2) and DVC errors
    about the project itself (missing dependency, bad dvc.yaml) are not: they fail the same way again.
    """
    from dvc.stage.exceptions import StageCmdFailedError

    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, StageCmdFailedError):
            return not str(exc).endswith(f"exited with {EXIT_CONFIG}")
        exc = exc.__cause__ or exc.__context__
    return False


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


@task(name="seed-raw-data", task_run_name="seed-raw-data", cache_policy=NO_CACHE)
def seed_raw(root: str) -> bool:
    catalog = Catalog(Path(root), load_params(Path(root) / "params").data.paths)
    seeded = seed_from_demo(catalog.demo, catalog.raw)
    if seeded:
        get_run_logger().info("data/raw was absent: seeded it from the bundled demo set")
    return seeded


@task(task_run_name="{stage}", cache_policy=NO_CACHE)
def reproduce(root: str, stage: str, force: bool = False) -> bool:
    """``dvc repro --single-item <stage>``; True when the stage ran, False when DVC skipped it."""
    from dvc.repo import Repo

    # the stage commands call `ragtune`: make sure it is the one beside this interpreter
    bin_dir = str(Path(sys.executable).parent)
    if bin_dir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")
    with Repo(root) as repo:
        ran = repo.reproduce(targets=[stage], single_item=True, force=force)
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
def pipeline(root: str = ".", force: bool = False, retry_delay_s: float = 10.0) -> dict:
    """Every stage of dvc.yaml, in the order of DVC's graph, each reproduced by DVC.

    Args:
        root: the project (a DVC repo); deployments pass an absolute path.
        force: re-run every stage even if DVC sees no change.
        retry_delay_s: first retry delay of a stage with ``meta.retries``; it doubles on each retry (with jitter).
    """
    root = str(Path(root).resolve())
    seed_raw(root)
    ran, skipped = [], []
    for spec in pipeline_stages(root):
        (ran if stage_task(spec, retry_delay_s)(root, spec.name, force) else skipped).append(spec.name)
    return {"ran": ran, "skipped": skipped}
