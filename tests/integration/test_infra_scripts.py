"""The scripts the containers run, run here: the placeholder check, the worker's start, the databases' SQL.

No container engine or cluster is needed: each script runs as the pod would run it (``sh``, the
worker's environment, a real Postgres server from the machine's packages).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, free_port

INFRA = REPO / "infra"
BIN = Path(sys.executable).parent


def _sh(script: Path, env: dict, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", str(script), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=300)


def test_a_pod_with_a_placeholder_secret_refuses_to_start_naming_it():
    script = INFRA / "k8s" / "check-secrets.sh"
    base = {"PATH": os.environ["PATH"]}
    bad = _sh(
        script, {**base, "RAY_AUTH_TOKEN": "CHANGE-ME", "AWS_SECRET_ACCESS_KEY": "x", "URI": "pg://u:CHANGE-ME@h"}
    )
    assert bad.returncode == 1
    assert "RAY_AUTH_TOKEN URI still hold the placeholder CHANGE-ME" in bad.stderr and "AWS_SECRET" not in bad.stderr
    good = _sh(script, {**base, "RAY_AUTH_TOKEN": "9f3c", "AWS_SECRET_ACCESS_KEY": "x"})
    assert good.returncode == 0, good.stderr


@pytest.fixture
def origin(tmp_path) -> Path:
    """A repository as a team's: DVC initialised, committed."""
    repo = tmp_path / "origin"
    repo.mkdir()
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t"}
    env["GIT_COMMITTER_EMAIL"] = "t@t"
    for cmd in (["git", "init", "-q", "-b", "main"], [str(BIN / "dvc"), "init", "-q"]):
        subprocess.run(cmd, cwd=repo, env=env, check=True, capture_output=True)
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run(["git", "commit", "-q", "-m", "init"], cwd=repo, env=env, check=True)
    return repo


def test_the_worker_clones_once_takes_its_dvc_remote_from_the_environment_and_runs_the_checkouts_code(origin, tmp_path):
    root = tmp_path / "srv" / "ragtune"
    env = {
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(tmp_path / "home"),
        "RAGTUNE_ROOT": str(root),
        "RAGTUNE_GIT_URL": str(origin),
        "RAGTUNE_DVC_REMOTE_URL": "s3://team-bucket/dvc",
    }
    script = INFRA / "scripts" / "worker-start.sh"
    first = _sh(script, env, "sh", "-c", 'echo "$PYTHONPATH"; dvc remote list; dvc config core.remote', cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    lines = first.stdout.split()
    assert lines[0] == str(root)  # the checkout's code comes first, not the image's
    assert "store" in lines and "s3://team-bucket/dvc" in lines and lines[-1] == "store"  # the default remote
    assert (root / ".git").is_dir() and not (root / ".dvc" / "config").read_text().count("team-bucket")  # local only
    (root / "marker").write_text("kept")
    again = _sh(script, env, "true", cwd=tmp_path)
    assert again.returncode == 0 and (root / "marker").read_text() == "kept"  # a restart keeps the checkout
    refused = _sh(script, {**env, "RAY_ADDRESS": "ray://head:10001"}, "true", cwd=tmp_path)
    assert refused.returncode == 2 and "not Ray Client" in refused.stderr


def test_the_databases_script_creates_them_once_and_runs_again_harmlessly():
    """infra/k8s/postgres-init.sql, the one file compose and the k8s Job run, on a real Postgres (twice)."""
    import tempfile

    tools = [shutil.which(name) for name in ("initdb", "pg_ctl", "psql")]
    if not all(tools):
        pytest.skip("needs PostgreSQL's initdb, pg_ctl and psql")
    initdb, pg_ctl, psql = tools
    as_user: list[str] = []
    work = Path(tempfile.mkdtemp(prefix="rt-pg-"))
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root: run it as nobody
        as_user = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
        shutil.chown(work, "nobody", "nogroup")
    data, port = work / "data", free_port()
    try:
        subprocess.run(
            [*as_user, initdb, "-D", str(data), "-U", "ragtune", "--auth=trust"], check=True, capture_output=True
        )
        ctl = [*as_user, pg_ctl, "-D", str(data), "-o", f"-p {port} -k {work} -h ''", "-w"]
        subprocess.run([*ctl, "-l", str(work / "pg.log"), "start"], check=True, capture_output=True)
        client = [psql, "-h", str(work), "-p", str(port), "-U", "ragtune", "-d", "postgres", "-v", "ON_ERROR_STOP=1"]
        for _ in range(2):
            done = subprocess.run(
                [*client, "-f", str(INFRA / "k8s" / "postgres-init.sql")], capture_output=True, text=True
            )
            assert done.returncode == 0, done.stderr
        listed = subprocess.run([*client, "-Atc", "SELECT datname FROM pg_database"], capture_output=True, text=True)
        assert {"mlflow", "mlflow_auth", "prefect"} <= set(listed.stdout.split()), listed.stdout
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "fast", "stop"], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
