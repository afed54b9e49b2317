"""``ragtune gate`` against a real MLflow store: it compares the new best with the previous pipeline run."""

from __future__ import annotations

import os
import subprocess
import sys

from components import tracking
from components.catalog import artifacts
from tests.conftest import REPO, best_file, choice


def test_gate_command_compares_with_the_previous_pipeline_run(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    (tmp_path / "params").mkdir()
    for name in ("data", "retrieval", "finetune", "evaluation"):
        (tmp_path / "params" / f"{name}.yaml").write_text((REPO / "params" / f"{name}.yaml").read_text())
    tracking.setup(tmp_path, "ragtune")
    old = tracking.start_parent("old", {}, {})
    tracking.log_to_run(old, metrics={"best_f1": 0.60})
    new = tracking.start_parent("new", {}, {})
    tracking.log_to_run(new, metrics={"best_f1": 0.50})
    best = best_file(choice("base+none", mean=0.5), parent_run_id=new)
    artifacts.write(best, tmp_path / "data" / "metrics" / "best.json")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("MLFLOW_TRACKING_URI", None)

    def gate(margin: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "flows.cli", "gate", "--margin", margin],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    failed = gate("0.05")
    assert failed.returncode == 1 and "FAIL: new f1 0.5000 vs previous 0.6000" in failed.stdout, failed.stderr
    passed = gate("0.2")
    assert passed.returncode == 0 and "PASS" in passed.stdout
