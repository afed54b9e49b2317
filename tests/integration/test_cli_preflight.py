"""The CLI fails within seconds, exit 3, when a configured server does not answer."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from tests.conftest import REPO, free_port


@pytest.mark.parametrize("command", [["run"], ["trigger"]])
def test_cli_exits_within_seconds_when_mlflow_is_unreachable(tmp_path, command):
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    env = {**os.environ, "MLFLOW_TRACKING_URI": url, "PYTHONPATH": str(REPO)}
    env.pop("PREFECT_API_URL", None)
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "flows.cli", *command], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )
    assert time.monotonic() - start < 10, "the preflight check must answer in seconds"
    assert proc.returncode == 3, proc.stderr[-2000:]
    assert "MLFLOW_TRACKING_URI" in proc.stderr and url in proc.stderr
