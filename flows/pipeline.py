"""The Prefect flow: the DVC stages in order, each a task, DVC deciding what re-runs.

The flow holds no stage logic: each task asks DVC to reproduce one stage of ``dvc.yaml``, and DVC
skips it when its code, params and inputs are unchanged. ``PREFECT_API_URL`` points the flow at a
Prefect server (each stage then shows as a task in its UI); the ephemeral API is used otherwise.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from prefect import flow, get_run_logger, task

from components.config import load_params
from components.ingest import seed_from_demo

STAGES = ("ingest", "model", "index", "retrieval_eval", "finetune", "evaluate", "select", "register")


@task(name="seed-raw-data")
def seed_raw(root: str) -> bool:
    paths = load_params(Path(root) / "params").data.paths
    seeded = seed_from_demo(Path(root) / paths.demo, Path(root) / paths.raw)
    if seeded:
        get_run_logger().info("data/raw was absent: seeded it from the bundled demo set")
    return seeded


@task(task_run_name="{stage}")
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


@flow(name="ragtune", log_prints=True)
def pipeline(root: str = ".", force: bool = False) -> dict:
    """ingest -> model -> index -> finetune -> evaluate -> select -> register."""
    root = str(Path(root).resolve())
    seed_raw(root)
    ran, skipped = [], []
    for stage in STAGES:
        (ran if reproduce(root, stage, force) else skipped).append(stage)
    return {"ran": ran, "skipped": skipped}
