"""Each run trains on its own Ray instance: a `ray start` left on the machine (or another run's) is never joined.

``ray.init()`` with no address joins the cluster whose address the last ``ray start`` wrote into Ray's
temp dir; ``components.ray_runtime.start_ray`` asks for ``address="local"`` instead. Here a real Ray
head is started (``ray start --head``, in a temp dir of its own) and a driver that calls ``start_ray``
must come up on a GCS of its own.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.conftest import REPO, free_port
from tests.e2e.servers import _ray_start, end_ray_processes

pytestmark = pytest.mark.integration

DRIVER = """
import ray
from components.ray_runtime import start_ray
start_ray(1, None)
print("GCS", ray.get_runtime_context().gcs_address, flush=True)
ray.shutdown()
"""


def test_each_run_starts_its_own_ray_instance(tmp_path):
    temp = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))  # short: Ray's unix socket paths
    env = {**os.environ, "RAY_TMPDIR": str(temp), "RAY_USAGE_STATS_ENABLED": "0", "PYTHONPATH": str(REPO)}
    env.pop("RAY_ADDRESS", None)
    port = free_port()
    try:
        args = ["--head", f"--port={port}", "--num-cpus=1", "--node-ip-address=127.0.0.1", "--disable-usage-stats"]
        args += ["--include-dashboard=false", f"--ray-client-server-port={free_port()}"]
        _ray_start(args, env, tmp_path / "ray-head.log")
        assert (temp / "ray" / "ray_current_cluster").read_text().strip().endswith(f":{port}")  # what ray.init() reads
        run = subprocess.run(
            [sys.executable, "-c", DRIVER], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300
        )
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        gcs = next(line.split()[1] for line in run.stdout.splitlines() if line.startswith("GCS "))
        assert not gcs.endswith(f":{port}"), f"the run joined the Ray head on port {port} instead of its own instance"
    finally:
        end_ray_processes([temp])
