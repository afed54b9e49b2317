"""The MLflow model registry: store a base model once, register pyfunc versions by content hash, move aliases.

A plain adapter over MLflow: it knows nothing of ragtune's bundles. ``components.serving`` builds
what a version holds and calls these functions.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import socket
from pathlib import Path

import mlflow
import mlflow.artifacts
import mlflow.pyfunc
from mlflow.tracking import MlflowClient

from components.progress import Progress
from components.tracking.runs import flat

logger = logging.getLogger(__name__)

BASE_MODEL_ARTIFACT = "base_model"
SERVING_PACKAGES = ("mlflow", "torch", "transformers", "peft", "lancedb", "sentence-transformers", "pandas", "pydantic")
HASH_TAG = "ragtune.bundle_hash"


def download(uri: str) -> Path:
    """A local copy of the artifacts at ``uri`` (``runs:/...``, ``models:/...`` or a store URI)."""
    return Path(mlflow.artifacts.download_artifacts(artifact_uri=uri))


UPLOAD_TAG = "ragtune.upload"  # "started" when a base-model run is created, "complete" once every file is stored
UPLOADER_TAG = "ragtune.uploader"  # host:pid of the process storing it, to tell a dead upload from a live one


def _base_model_runs(base_hash: str) -> list:
    return mlflow.search_runs(
        filter_string=f"tags.`ragtune.kind` = 'base-model' and tags.`ragtune.base_model_hash` = '{base_hash}'",
        search_all_experiments=True,
        output_format="list",
    )


def _upload_is_dead(run) -> bool:
    """A started upload that will never complete: its run ended unfinished, or its process on this host is gone."""
    import psutil

    if run.info.status in ("FAILED", "KILLED"):
        return True
    host, _, pid = run.data.tags.get(UPLOADER_TAG, "").rpartition(":")
    return (
        run.info.status == "RUNNING"
        and host == socket.gethostname()
        and pid.isdigit()
        and not psutil.pid_exists(int(pid))
    )


def ensure_base_model(base_dir: Path, base_hash: str, tags: dict[str, str] | None = None) -> str:
    """Store the base model's files once per content hash; return their ``runs:/`` URI.

    The base model (~540 MB float32) is the heavy part of every model version, and it rarely
    changes: one run of kind ``base-model`` per hash holds it, and every version refers to it.
    The run is whole or unused: it is tagged ``ragtune.upload=complete`` only after the last file
    is stored, and only such a run is reused. An upload that died (its run failed, or its process
    on this host is gone) is deleted and stored again; one still running elsewhere is left alone.
    """
    for run in _base_model_runs(base_hash):
        upload = run.data.tags.get(UPLOAD_TAG)
        if upload == "complete":  # set after the last file was stored
            return f"runs:/{run.info.run_id}/{BASE_MODEL_ARTIFACT}"
        if upload == "started" and _upload_is_dead(run):
            MlflowClient().delete_run(run.info.run_id)
            logger.warning("deleted the interrupted base-model upload %s; storing it again", run.info.run_id)
    run_tags = {
        **(tags or {}),
        "ragtune.kind": "base-model",
        "ragtune.base_model_hash": base_hash,
        UPLOAD_TAG: "started",
        UPLOADER_TAG: f"{socket.gethostname()}:{os.getpid()}",
    }
    with mlflow.start_run(run_name=f"base-model-{base_hash[:12]}", tags=run_tags) as run:
        upload_dir(base_dir, BASE_MODEL_ARTIFACT, f"upload base model {base_hash[:12]}")
        mlflow.set_tag(UPLOAD_TAG, "complete")  # only now: a reader never takes a partial upload
    logger.info("stored the base model %s in run %s", base_hash[:12], run.info.run_id)
    return f"runs:/{run.info.run_id}/{BASE_MODEL_ARTIFACT}"


def upload_dir(local: Path, artifact_path: str, desc: str) -> None:
    """``mlflow.log_artifacts`` file by file, into the active run, with progress in MB.

    The base model is one ~540 MB file among small ones: progress advances per file, so a slow
    link shows the time the big one took (and the rate) instead of minutes of silence.
    """
    files = sorted((p for p in local.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    with Progress(sum(p.stat().st_size for p in files) / 1e6, desc, "MB") as progress:
        for file in files:
            parent = file.parent.relative_to(local).as_posix()
            mlflow.log_artifact(str(file), artifact_path if parent == "." else f"{artifact_path}/{parent}")
            progress.update(file.stat().st_size / 1e6)


def find_version(name: str, content_hash: str):
    """The version of registered model ``name`` tagged with ``content_hash``, or None."""
    client = MlflowClient()
    if client.search_registered_models(filter_string=f"name = '{name}'") == []:
        return None
    for version in client.search_model_versions(filter_string=f"name = '{name}'"):
        if version.tags.get(HASH_TAG) == content_hash:
            return version
    return None


def requirements() -> list[str]:
    """Pinned requirements of the serving environment (given, so MLflow does not load the model to infer them)."""
    pins = []
    for name in SERVING_PACKAGES:
        try:
            pins.append(f"{name}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    return pins


def register_pyfunc(
    name: str,
    content_hash: str,
    python_model,
    artifacts_fn,
    code_paths: list[str],
    params: dict,
    version_tags: dict[str, str],
    run_tags: dict[str, str],
) -> tuple[object, bool]:
    """Register a pyfunc as a version of ``name``, unless a version with ``content_hash`` exists.

    Args:
        artifacts_fn: called with a temporary folder only when a new version is logged; returns the
            pyfunc's artifacts (name -> local path).

    Returns:
        The model version and whether it was created (False: the existing one was reused).
    """
    import tempfile

    version = find_version(name, content_hash)
    if version is not None:
        return version, False
    tags = {**version_tags, HASH_TAG: content_hash}
    with (
        tempfile.TemporaryDirectory() as tmp,
        mlflow.start_run(run_name=f"register-{name}", tags={**run_tags, "ragtune.kind": "register", **tags}),
    ):
        mlflow.log_params(flat(params))
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=python_model,
            artifacts=artifacts_fn(Path(tmp)),
            code_paths=code_paths,
            pip_requirements=requirements(),
        )
    return mlflow.register_model(info.model_uri, name, tags=tags), True


def set_alias(name: str, alias: str, version: str) -> None:
    """Point ``name@alias`` at ``version``."""
    MlflowClient().set_registered_model_alias(name, alias, version)


def load_pyfunc(uri: str):
    """The pyfunc model at ``uri`` (``models:/name/version``), loaded in this process."""
    return mlflow.pyfunc.load_model(uri)


def alias_version(name: str, alias: str):
    """The version ``name@alias`` points at, or None when the model or the alias does not exist."""
    try:
        return MlflowClient().get_model_version_by_alias(name, alias)
    except mlflow.exceptions.MlflowException:
        return None
