"""Ray for every part of the pipeline that uses it: join the configured cluster, or start a local instance.

On a cluster (``RAY_ADDRESS``) the driver ships its own code: the job's runtime environment carries
the ``components`` package (its ``working_dir`` is a folder holding that package alone: the code,
no data, no virtual environment, no caches), so every actor, Ray Train worker and Tune trial
imports the driver's ``components``, not whatever copy a node's image holds. A ``working_dir``
rather than ``py_modules``: with ``py_modules`` Ray also puts the driver's current folder ahead on
every worker's path, and a node that has a folder of that name (another checkout) would import
from it. The nodes need the same third-party packages (the image) and nothing of the checkout.
Join a cluster as a driver on one of its nodes (``RAY_ADDRESS=auto`` or ``host:6379``) or submit
through the Ray Jobs API; Ray Client (``ray://``) is refused: Ray's own docs say Ray Train and Tune
may not work through it (docs/scale-out.md).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
CODE = Path(__file__).resolve().parent  # the `components` package: what travels to a cluster
OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def code_runtime_env() -> dict:
    """The runtime environment a cluster's workers get: this ``components`` package and the offline switches."""
    return {"working_dir": str(staged_code()), "env_vars": dict(OFFLINE)}


def staged_code(root: Path | None = None) -> Path:
    """A folder holding a copy of this ``components`` package alone (no ``__pycache__``), named by its content
    hash under ``root`` (default ``$TMPDIR/ragtune-code``): made once per version of the code."""
    import hashlib
    import shutil
    import tempfile
    import uuid

    files = sorted(p for p in CODE.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    digest = hashlib.sha256()
    for f in files:
        digest.update(f.relative_to(CODE).as_posix().encode() + b"\0" + f.read_bytes())
    root = root or Path(tempfile.gettempdir()) / "ragtune-code"
    target = root / digest.hexdigest()[:16]
    if not target.is_dir():
        tmp = root / f".{target.name}.{uuid.uuid4().hex}"
        shutil.copytree(CODE, tmp / CODE.name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        try:
            os.rename(tmp, target)
        except OSError:  # another driver staged the same code first
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def start_ray(num_cpus: int, cluster_address: str | None, state_api: bool = False) -> None:
    """Join ``cluster_address`` (RAY_ADDRESS) or start a local Ray with at least ``num_cpus`` logical CPUs.

    On a cluster the job ships this package (:func:`code_runtime_env`). A local Ray is always this
    process's own instance; its workers get this repository on PYTHONPATH, so they import the
    same ``components`` as the driver (a git worktree would otherwise load whichever copy is
    installed). ``state_api`` starts its dashboard process, which serves Ray's state API: Ray
    Train's placement-group cleaner needs it to free the CPUs of a run whose driver was killed
    (a sweep trial stopped early).

    Raises:
        ValueError: ``cluster_address`` is a Ray Client address (``ray://``).
    """
    import ray

    if ray.is_initialized():
        return
    if cluster_address:
        if cluster_address.startswith("ray://"):
            raise ValueError(
                f"RAY_ADDRESS={cluster_address}: Ray Client is not supported for training and tuning; run the "
                "driver on a cluster node (RAY_ADDRESS=auto or host:6379) or submit it with `ray job submit` "
                "(docs/scale-out.md)"
            )
        ray.init(runtime_env=code_runtime_env())  # Ray reads RAY_ADDRESS itself
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


def require_gpus(gpus: float, local: bool) -> None:
    """Fail fast when a local Ray cannot give ``gpus`` GPUs (actors asking for them would wait forever).

    A cluster is not checked: an autoscaler (KubeRay's GPU group) adds GPU nodes only once actors ask.

    Raises:
        ValueError: this machine's Ray has fewer GPUs than asked for.
    """
    import ray

    if not gpus or not local:
        return
    have = ray.cluster_resources().get("GPU", 0.0)
    if have < gpus:
        raise ValueError(
            f"evaluation.parallel asks for {gpus:g} GPUs in all (workers x gpus_per_worker), this machine's Ray "
            f"has {have:g}: lower gpus_per_worker (0: CPU) or set RAY_ADDRESS to a cluster with GPUs"
        )


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
