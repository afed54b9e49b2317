"""The quality gate: pass within the margin, fail beyond it, and the CLI against a real MLflow store."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest

from components import tracking
from components.gate import quality_gate
from tests.conftest import REPO


@pytest.mark.parametrize(
    ("new", "baseline", "margin", "passed"),
    [
        (0.50, 0.50, 0.0, True),
        (0.49, 0.50, 0.02, True),
        (0.47, 0.50, 0.02, False),
        (0.9, 0.5, 0.0, True),
        (0.1, None, 0.0, True),
    ],
)
def test_gate_fails_only_beyond_the_margin(new, baseline, margin, passed):
    result = quality_gate(new, baseline, margin)
    assert result.passed is passed
    assert result.summary().startswith("PASS" if passed else "FAIL")


@pytest.mark.parametrize(("new", "baseline", "margin"), [(0.5, 0.5, -0.1), (math.nan, 0.5, 0.0), (0.5, math.inf, 0)])
def test_gate_refuses_bad_numbers(new, baseline, margin):
    with pytest.raises(ValueError):
        quality_gate(new, baseline, margin)


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
    (tmp_path / "data" / "eval").mkdir(parents=True)
    (tmp_path / "data" / "metrics").mkdir(parents=True)
    (tmp_path / "data" / "eval" / "cells.json").write_text(json.dumps({"parent_run_id": new}))
    (tmp_path / "data" / "metrics" / "best.json").write_text(json.dumps({"f1": 0.50, "cell": "base+none"}))
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
