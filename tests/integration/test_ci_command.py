"""``ragtune ci`` itself decides whether a run may register: a pull request never moves @champion, even
when its workflow file is edited to ask for it, and a CI profile (any -S override) only judges.

The command runs for real (its overrides, the Prefect flow, DVC, the register stage as DVC runs it) on
a project whose dvc.yaml holds the shipped ``register`` stage only (tests/gate_project.py: best.json,
qa.parquet, predictions.parquet and the cells' runs as the earlier stages write them).
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest
import yaml
from dvc.repo import Repo

from components import tracking
from tests.conftest import REPO, copy_store
from tests.gate_project import ALIAS, NAME, gate_project
from tests.tiny_project import ragtune_cmd

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def prefect_api() -> str:
    """One Prefect server for the module's runs (each `ragtune ci` would otherwise start its own)."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=240):
        yield PREFECT_API_URL.value()


@pytest.fixture
def project(tmp_path, monkeypatch, mlflow_db, prefect_api):
    """The register stage of dvc.yaml as shipped (deps: best.json), a DVC repo, data/raw, a sqlite store."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    copy_store(mlflow_db, tmp_path)
    root = gate_project(tmp_path, monkeypatch)
    shipped = yaml.safe_load((REPO / "dvc.yaml").read_text())
    stage = {**shipped["stages"]["register"], "deps": ["${paths.metrics}/best.json"]}
    (root / "dvc.yaml").write_text(yaml.safe_dump({"vars": shipped["vars"], "stages": {"register": stage}}))
    (root / "data" / "raw").mkdir(parents=True)
    Repo.init(str(root), no_scm=True).close()
    (root / ".prefect-api").write_text(prefect_api)
    yield root
    import mlflow

    mlflow.set_tracking_uri(None)


def _ci(root, event: str, *overrides: str) -> subprocess.CompletedProcess:
    """``ragtune ci`` as the workflow runs it: a process of its own, on the CI event ``event``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "GITHUB_"))}
    env.update(GITHUB_EVENT_NAME=event, PREFECT_API_URL=(root / ".prefect-api").read_text(), PYTHONPATH=str(REPO))
    args = ["ci", "--no-pull", "--summary", str(root / "summary.md")]
    for override in overrides:
        args += ["-S", override]
    run = subprocess.run(ragtune_cmd(*args), cwd=root, env=env, capture_output=True, text=True, timeout=900)
    run.output = run.stdout + run.stderr
    return run


def test_a_pull_request_cannot_register_even_when_its_workflow_asks_to(project):
    # the branch edited its workflow: it turns judge_only off and passes the team's own values back
    asked = _ci(project, "pull_request", "params/evaluation.yaml:gate.judge_only=false")
    assert asked.returncode == 0, asked.output[-4000:]
    assert "judge only: a pull_request run: a branch never moves @champion" in asked.output
    assert yaml.safe_load((project / "params/evaluation.yaml").read_text())["gate"]["judge_only"] is True
    assert json.loads((project / "data/metrics/registry.json").read_text())["registered"] is False
    tracking.connect(project)
    assert tracking.alias_version(NAME, ALIAS) is None  # nothing moved
    assert "- judge only: a pull_request run" in (project / "summary.md").read_text()


def test_a_ci_profile_only_judges_and_the_teams_params_register(project):
    profile = _ci(project, "push", "params/evaluation.yaml:max_questions=24")  # a push with a CI profile
    assert profile.returncode == 0 and "judge only: a CI profile" in profile.output, profile.output[-4000:]
    tracking.connect(project)
    assert tracking.alias_version(NAME, ALIAS) is None

    edit = yaml.safe_load((project / "params/evaluation.yaml").read_text())
    edit["gate"]["judge_only"], edit["max_questions"] = False, None  # the team's committed params again
    (project / "params/evaluation.yaml").write_text(yaml.safe_dump(edit, sort_keys=False))
    best = json.loads((project / "data/metrics/best.json").read_text())
    best["confirmation"]["choice"] = "too few test groups"
    (project / "data/metrics/best.json").write_text(json.dumps(best))
    refused = _ci(project, "push")  # the team's params: it may register, but the gate refuses: exit 1
    assert refused.returncode == 1 and "judge only" not in refused.output, refused.output[-4000:]
    assert "ragtune CI: failed (exit code 1)" in (project / "summary.md").read_text()
    assert tracking.alias_version(NAME, ALIAS) is None

    best["confirmation"]["choice"] = "confirmed"
    (project / "data/metrics/best.json").write_text(json.dumps(best))
    registered = _ci(project, "push")
    assert registered.returncode == 0, registered.output[-4000:]
    assert str(tracking.alias_version(NAME, ALIAS).version) == "1"  # a push of the team's params registers
