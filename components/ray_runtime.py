"""Ray for every part of the pipeline that uses it: join the configured cluster, or start a local instance."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def start_ray(num_cpus: int, cluster_address: str | None, state_api: bool = False) -> None:
    """Join ``cluster_address`` (RAY_ADDRESS) or start a local Ray with at least ``num_cpus`` logical CPUs.

    A local Ray is always this process's own instance. Its workers get this repository on
    PYTHONPATH, so they import the same ``components`` as the driver (a git worktree would
    otherwise load whichever copy is installed). ``state_api`` starts its dashboard process, which
    serves Ray's state API: Ray Train's placement-group cleaner needs it to free the CPUs of a run
    whose driver was killed (a sweep trial stopped early).
    """
    import ray

    if ray.is_initialized():
        return
    if cluster_address:
        ray.init()  # Ray reads RAY_ADDRESS itself
        return
    # address="local": always a new instance of this run's own, never one another run (or a
    # `ray start`) left on this machine. Its GCS port is chosen here and given to its workers as
    # RAY_ADDRESS: Ray Train's placement-group cleaner looks the cluster up, and with several Ray
    # instances on the machine it would otherwise fail ("Found multiple active Ray instances").
    port = _free_port()
    env = {"PYTHONPATH": str(REPO_ROOT), "RAY_ADDRESS": f"127.0.0.1:{port}"}
    os.environ["RAY_GCS_SERVER_PORT"] = str(port)  # read by ray.init when it starts the GCS
    try:
        ray.init(
            address="local",
            num_cpus=max(num_cpus, os.cpu_count() or 1),
            include_dashboard=state_api,
            dashboard_host="127.0.0.1",
            runtime_env={"env_vars": env},
        )
    finally:
        os.environ.pop("RAY_GCS_SERVER_PORT", None)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
