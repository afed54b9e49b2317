"""Ray for every part of the pipeline that uses it: join the configured cluster, or start a local instance."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def start_ray(num_cpus: int, cluster_address: str | None, state_api: bool = False) -> None:
    """Join ``cluster_address`` (RAY_ADDRESS) or start a local Ray with at least ``num_cpus`` logical CPUs.

    A local Ray's workers get this repository on PYTHONPATH, so they import the same ``components``
    as the driver (a git worktree would otherwise load whichever copy is installed). ``state_api``
    starts its dashboard process, which serves Ray's state API: Ray Train's placement-group cleaner
    needs it to free the CPUs of a run whose driver was killed (a sweep trial stopped early).
    """
    import ray

    if ray.is_initialized():
        return
    if cluster_address:
        ray.init()  # Ray reads RAY_ADDRESS itself
    else:
        ray.init(
            num_cpus=max(num_cpus, os.cpu_count() or 1),
            include_dashboard=state_api,
            dashboard_host="127.0.0.1",
            runtime_env={"env_vars": {"PYTHONPATH": str(REPO_ROOT)}},
        )
