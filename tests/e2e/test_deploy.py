"""prefect.yaml's deployments on a real Prefect server, run by a process-pool worker whose checkout is elsewhere.

The team's repository deploys (`prefect deploy --all`, no path of its own in the deployments); a
worker runs from another folder with RAGTUNE_ROOT naming its own clone. New data is pushed (git +
DVC remote) and `ragtune trigger` starts the on-new-data run: the worker's flow pulls git and DVC
in its checkout and runs there. The project's dvc.yaml is cut to its `ingest` stage: what is
tested is where and on what the run happens, not the models (tests/e2e/test_ci.py runs them all).
Before the worker starts, the new-data watcher is shown not to start a second run on data that
already had one (a refused run stays refused).
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
import yaml

from flows.ops import data_tag
from tests.conftest import REPO, demo_slice
from tests.e2e.servers import api, prefect_server, spawn, stop
from tests.tiny_project import BIN, build_tiny_project, edit_yaml, git, project_env, push_raw, sh, track_raw_with_dvc

POOL = "ragtune-pool"


def _prefect(*args: str, cwd, env) -> str:
    proc = subprocess.run([str(BIN / "prefect"), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def _ingest_only(dvc: dict) -> None:
    """dvc.yaml with the `ingest` stage alone, as for a team with a question file (no generated questions)."""
    ingest = dvc["stages"]["ingest"]
    ingest["deps"] = [d for d in ingest["deps"] if d != "${paths.questions}"]
    dvc.update(stages={"ingest": ingest})


@pytest.fixture(scope="module")
def deployed(tmp_path_factory):
    """A Prefect server with prefect.yaml's deployments, the team's repo, and a worker checkout cloned from it."""
    tmp = tmp_path_factory.mktemp("deploy")
    origin = build_tiny_project(tmp / "origin", tmp / "no-model", adapters=1, steps=1)  # only `ingest` runs
    (origin / "prefect.yaml").write_text((REPO / "prefect.yaml").read_text())
    edit_yaml(origin / "dvc.yaml", _ingest_only)
    git(origin, "add", "-A")
    git(origin, "commit", "-q", "-m", "ingest only, prefect.yaml")
    track_raw_with_dvc(origin, tmp / "dvc-remote")
    worker_root = tmp / "elsewhere" / "worker-checkout"
    worker_root.parent.mkdir()
    sh("git", "clone", "-q", str(origin), str(worker_root), cwd=tmp)
    with prefect_server(tmp, project_env(origin)) as url:
        env = project_env(origin, PREFECT_API_URL=url)
        env.pop("RAGTUNE_ROOT", None)  # the deploying machine's paths must not enter the deployments
        _prefect("work-pool", "create", POOL, "--type", "process", cwd=origin, env=env)
        _prefect("--no-prompt", "deploy", "--all", cwd=origin, env=env)
        yield {"origin": origin, "worker_root": worker_root, "url": url, "env": env, "tmp": tmp}


def _deployment(url: str, name: str) -> dict:
    return next(d for d in api(url, "/deployments/filter", {}) if d["name"] == name)


def _runs(url: str, deployment_id: str) -> list[dict]:
    return api(url, "/flow_runs/filter", {"flow_runs": {"deployment_id": {"any_": [deployment_id]}}})


def _watch(deployed: dict) -> str:
    code = "from flows.ops import new_data_check; print('started:', new_data_check())"
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=deployed["origin"],
        env=deployed["env"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_deployments_hold_no_path_of_the_deploying_machine(deployed):
    for name in ("scheduled-retraining", "on-new-data"):
        deployment = _deployment(deployed["url"], name)
        assert deployment["parameters"].get("pull") is True and "root" not in deployment["parameters"]
        assert str(deployed["origin"]) not in yaml.safe_dump(deployment)


def test_the_watcher_does_not_start_a_second_run_on_data_that_already_had_one(deployed):
    url = deployed["url"]
    on_new_data = _deployment(url, "on-new-data")["id"]
    assert "started: None" not in _watch(deployed)  # data/raw differs from dvc.lock (never ingested here): a run
    (run,) = _runs(url, on_new_data)
    raw_md5 = yaml.safe_load((deployed["origin"] / "data" / "raw.dvc").read_text())["outs"][0]["md5"]
    assert data_tag(raw_md5) in run["tags"]
    api(url, f"/flow_runs/{run['id']}/set_state", {"state": {"type": "FAILED", "message": "refused"}, "force": True})
    assert "started: None" in _watch(deployed)  # the same data again: no second run
    assert len(_runs(url, on_new_data)) == 1


def test_a_pool_worker_in_another_folder_pulls_and_runs_in_its_own_checkout(deployed):
    url, origin, worker_root = deployed["url"], deployed["origin"], deployed["worker_root"]
    worker_env = project_env(worker_root, PREFECT_API_URL=url, RAGTUNE_ROOT=str(worker_root))
    worker_env["PREFECT_HOME"] = str(deployed["tmp"] / "worker-home")
    log = deployed["tmp"] / "worker.log"
    worker = spawn(
        [str(BIN / "prefect"), "worker", "start", "--pool", POOL, "--type", "process"],
        log,
        worker_env,
        cwd=deployed["tmp"] / "elsewhere",
    )
    try:
        demo_slice(origin / "data" / "raw", n_docs=13, n_questions=44)  # new data, pushed as a team would
        md5 = push_raw(origin, "new data")
        trigger = subprocess.run(
            [sys.executable, "-m", "flows.cli", "trigger"],
            cwd=origin,
            env=deployed["env"],
            capture_output=True,
            text=True,
        )
        assert trigger.returncode == 0 and "started ragtune/on-new-data run" in trigger.stdout, trigger.stderr[-3000:]
        on_new_data = _deployment(url, "on-new-data")["id"]
        deadline = time.monotonic() + 900
        while True:
            run = next(r for r in _runs(url, on_new_data) if data_tag(md5) in r["tags"])
            if run["state_type"] in {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}:
                break
            assert worker.poll() is None and time.monotonic() < deadline, log.read_text()[-8000:]
            time.sleep(3)
        assert run["state_type"] == "COMPLETED", log.read_text()[-8000:]
    finally:
        stop(worker, 30)
    assert git(worker_root, "rev-parse", "HEAD") == git(origin, "rev-parse", "HEAD")  # the flow pulled git ...
    lock = yaml.safe_load((worker_root / "dvc.lock").read_text())
    assert next(d["md5"] for d in lock["stages"]["ingest"]["deps"] if d["path"] == "data/raw") == md5  # ... and DVC
    assert (worker_root / "data" / "processed" / "qa.parquet").is_file()
    assert not (origin / "data" / "processed").exists()  # nothing ran in the deploying checkout
    tasks = api(url, "/task_runs/filter", {"flow_runs": {"id": {"any_": [run["id"]]}}})
    assert {t["name"] for t in tasks} == {"pull", "ingest"}
