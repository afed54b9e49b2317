"""The pipeline against real servers that this module starts on 127.0.0.1 and stops.

`mlflow server` (sqlite backend), `prefect server start` (its own PREFECT_HOME) and a two-node Ray
cluster; `ragtune schedule` serves the deployments, `ragtune trigger` starts the on-new-data run,
a cron schedule starts another, and the results are read back through the servers' APIs. One
full pipeline run (about 5 minutes on 2 cores) feeds every assertion.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from flows.dag import pipeline_stages
from tests.e2e.servers import api, mlflow_server, prefect_server, ray_cluster, spawn, stop
from tests.tiny_project import build_tiny_project, project_env, ragtune_cmd

PIPELINE_DEADLINE_S = 30 * 60  # ~5 min on an idle 2-core runner; 15+ when the machine is shared
TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


@dataclass
class Stack:
    project: Path
    env: dict
    mlflow: str
    prefect: str
    ray_dirs: list[Path]
    serve_log: Path


def _deployments(stack: Stack) -> dict[str, str]:
    return {d["name"]: d["id"] for d in api(stack.prefect, "/deployments/filter", {})}


def _flow_runs(stack: Stack, deployment_id: str) -> list[dict]:
    return api(stack.prefect, "/flow_runs/filter", {"flow_runs": {"deployment_id": {"any_": [deployment_id]}}})


def _ragtune(stack: Stack, *args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        ragtune_cmd(*args), cwd=stack.project, env=stack.env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc


@pytest.fixture(scope="module")
def stack(tmp_path_factory, base_model_dir):
    tmp = tmp_path_factory.mktemp("servers")
    project = build_tiny_project(tmp / "project", base_model_dir, adapters=1, steps=1)
    base_env = project_env(project)
    with contextlib.ExitStack() as stack:
        mlflow_url = stack.enter_context(mlflow_server(tmp, base_env))
        prefect_url = stack.enter_context(prefect_server(tmp, base_env))
        ray_env, ray_dirs = stack.enter_context(ray_cluster(tmp, base_env))
        env = project_env(project, MLFLOW_TRACKING_URI=mlflow_url, PREFECT_API_URL=prefect_url, **ray_env)
        # every minute: the scheduled deployment fires during the test; one run at a time (limit 1)
        serve = spawn(
            ragtune_cmd("schedule", "--cron", "* * * * *", "--check-every", "0"), tmp / "serve.log", env, cwd=project
        )
        stack.callback(stop, serve, 30)
        result = Stack(project, env, mlflow_url, prefect_url, ray_dirs, tmp / "serve.log")
        deadline = time.monotonic() + 120
        while {"scheduled-retraining", "on-new-data"} - set(_deployments(result)):
            assert serve.poll() is None, result.serve_log.read_text()[-5000:]
            assert time.monotonic() < deadline, "ragtune schedule did not register its deployments in 120 s"
            time.sleep(2)
        yield result


@pytest.fixture(scope="module")
def pipeline_done(stack):
    """Trigger the on-new-data run, wait for it, and for one scheduled run; return their flow runs."""
    # a tag limit on the server queues training across runs; one run must pass through it
    api(stack.prefect, "/concurrency_limits/", {"tag": "ragtune-training", "concurrency_limit": 1})
    started = _ragtune(stack, "trigger")
    assert "started ragtune/on-new-data run" in started.stdout, started.stdout
    ids = _deployments(stack)
    deadline = time.monotonic() + PIPELINE_DEADLINE_S
    while True:
        triggered = _flow_runs(stack, ids["on-new-data"])
        scheduled = _flow_runs(stack, ids["scheduled-retraining"])
        failed = [r for r in triggered + scheduled if r["state_type"] in {"FAILED", "CRASHED"}]
        assert not failed, f"{failed[0]['name']}: {failed[0]['state']}\n" + stack.serve_log.read_text()[-8000:]
        done = [r for r in triggered if r["state_type"] == "COMPLETED"]
        sched_done = [r for r in scheduled if r["state_type"] == "COMPLETED"]
        if done and sched_done and (stack.project / "dvc.lock").is_file():
            return {"triggered": done, "scheduled": sched_done, "all": triggered + scheduled}
        assert time.monotonic() < deadline, "no completed runs in time\n" + stack.serve_log.read_text()[-8000:]
        time.sleep(5)


def _raw_md5(project: Path) -> str:
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    return next(d["md5"] for d in lock["stages"]["ingest"]["deps"] if d["path"] == "data/raw")


def test_triggered_and_scheduled_runs_complete_with_every_stage_and_data_version_names(stack, pipeline_done):
    md5 = _raw_md5(stack.project)
    # a run is named when it starts (runs still waiting in the schedule carry Prefect's random names)
    for run in pipeline_done["triggered"] + pipeline_done["scheduled"]:
        assert run["name"].startswith(f"ragtune-{md5[:8]}-"), run["name"]
        tasks = api(stack.prefect, "/task_runs/filter", {"flow_runs": {"id": {"any_": [run["id"]]}}})
        by_name = {t["name"]: t for t in tasks}
        assert set(by_name) == {s.name for s in pipeline_stages(stack.project)}, sorted(by_name)  # no seeding, no pull
        assert {t["state_type"] for t in tasks} == {"COMPLETED"}
        assert "ragtune-training" in by_name["finetune"]["tags"]
        assert "ragtune-indexing" in by_name["index"]["tags"]
    assert "new-data" in pipeline_done["triggered"][0]["tags"]


def test_trigger_does_nothing_when_the_raw_data_is_unchanged(stack, pipeline_done):
    ids = _deployments(stack)
    before = len(_flow_runs(stack, ids["on-new-data"]))
    again = _ragtune(stack, "trigger")
    assert "data/raw unchanged" in again.stdout
    assert len(_flow_runs(stack, ids["on-new-data"])) == before


def test_results_are_on_the_mlflow_server(stack, pipeline_done):
    client = MlflowClient(tracking_uri=stack.mlflow)
    experiments = client.search_experiments()
    runs = client.search_runs([e.experiment_id for e in experiments], max_results=500)
    kinds = [r.data.tags.get("ragtune.kind") for r in runs]
    assert kinds.count("pipeline") == 1, "the scheduled re-run must skip every stage, logging nothing"
    # every cell on dev: (base, one adapter) x (none, one retriever); then the ones dev left standing on test
    standing = json.loads((stack.project / "data/eval/cells.json").read_text())["standing"]
    assert kinds.count("cell") == 4 + len(standing) and standing
    md5 = _raw_md5(stack.project)
    assert {r.data.tags["ragtune.data_version"] for r in runs if "ragtune.data_version" in r.data.tags} == {md5}
    parent = next(r for r in runs if r.data.tags.get("ragtune.kind") == "pipeline")
    assert "ragtune.best_cell" in parent.data.tags
    assert any(a.path.endswith("leaderboard.md") for a in client.list_artifacts(parent.info.run_id))


def test_training_ran_on_the_ray_cluster(stack, pipeline_done):
    # a fresh interpreter: Ray reads RAY_AUTH_MODE/RAY_AUTH_TOKEN when it is first imported
    probe = "import json, ray; ray.init(); print(json.dumps(sum(n['Alive'] for n in ray.nodes()))); ray.shutdown()"
    proc = subprocess.run([sys.executable, "-c", probe], env=stack.env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == 2
    # each node writes its workers' logs under its own temp dir
    with_train_workers = [
        d
        for d in stack.ray_dirs
        if any("RayTrainWorker" in p.read_text(errors="ignore") for p in d.glob("session_*/logs/worker-*"))
    ]
    assert with_train_workers, "no Ray Train worker logged on this test's cluster"
    print(f"Ray Train workers ran on {len(with_train_workers)} of 2 nodes")
