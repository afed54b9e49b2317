"""The stored base model is whole or absent: an upload killed midway is never reused, it is stored again.

A child process starts storing a base model in a real MLflow store (sqlite + local artifacts) and
SIGKILLs itself after the first file, as a crash or a lost machine would; the next
``ensure_base_model`` must not point new versions at those incomplete weights.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import mlflow
import pytest

from components import tracking
from components.tracking.registry import BASE_MODEL_ARTIFACT, UPLOAD_TAG
from tests.conftest import REPO

KILLED_UPLOAD = """
import os, signal, sys
from pathlib import Path
import mlflow
from components import tracking

store_one = mlflow.log_artifact

def first_file_then_die(local_path, artifact_path=None, run_id=None):
    store_one(local_path, artifact_path)
    os.kill(os.getpid(), signal.SIGKILL)

mlflow.log_artifact = first_file_then_die  # the upload (file by file) dies after its first file
tracking.setup(Path(sys.argv[1]), "upload")
tracking.ensure_base_model(Path(sys.argv[2]), "h" * 40)
"""


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    base = tmp_path / "base"
    base.mkdir()
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        (base / name).write_bytes(os.urandom(1000))
    yield tmp_path, base
    mlflow.set_tracking_uri(None)


def _base_runs():
    return mlflow.search_runs(
        filter_string="tags.`ragtune.kind` = 'base-model'", search_all_experiments=True, output_format="list"
    )


def test_a_killed_upload_is_deleted_and_stored_again_never_reused(store, tmp_path):
    root, base = store
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")} | {"PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-c", KILLED_UPLOAD, str(root), str(base)], env=env, capture_output=True, text=True
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    tracking.setup(root, "upload")
    (killed,) = _base_runs()
    assert killed.info.status == "RUNNING" and killed.data.tags[UPLOAD_TAG] == "started"  # stopped mid-upload

    uri = tracking.ensure_base_model(base, "h" * 40)
    run_id = uri.split("/")[1]
    assert run_id != killed.info.run_id
    stored = tracking.download(uri, tmp_path / "stored")
    assert sorted(p.name for p in stored.iterdir()) == sorted(p.name for p in base.iterdir())  # whole
    assert mlflow.get_run(killed.info.run_id).info.lifecycle_stage == "deleted"
    assert mlflow.get_run(run_id).data.tags[UPLOAD_TAG] == "complete"
    assert tracking.ensure_base_model(base, "h" * 40) == uri  # a complete upload is reused, not stored again
    assert uri.endswith(f"/{BASE_MODEL_ARTIFACT}") and len(_base_runs()) == 1


def test_an_upload_still_running_elsewhere_is_left_alone(store, tmp_path):
    root, base = store
    experiment = tracking.setup(root, "upload")
    other = {"ragtune.kind": "base-model", "ragtune.base_model_hash": "h" * 40, UPLOAD_TAG: "started"}
    running = mlflow.MlflowClient().create_run(experiment, tags={**other, "ragtune.uploader": "another-host:1"})
    uri = tracking.ensure_base_model(base, "h" * 40)  # stores its own copy; the other upload is not touched
    assert running.info.run_id not in uri
    assert mlflow.get_run(running.info.run_id).info.lifecycle_stage == "active"
    assert tracking.download(uri, tmp_path / "stored").is_dir()
