"""The MLflow model registry: store a base model once, register pyfunc versions by content hash, move aliases.

A plain adapter over MLflow: it knows nothing of ragtune's bundles. ``components.serving`` builds
what a version holds and calls these functions.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import logging
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import mlflow
import mlflow.artifacts
import mlflow.pyfunc
from mlflow.environment_variables import MLFLOW_ALLOW_PICKLE_DESERIALIZATION
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from components.progress import Progress
from components.tracking.runs import flat

logger = logging.getLogger(__name__)

BASE_MODEL_ARTIFACT = "base_model"
SERVING_PACKAGES = ("mlflow", "torch", "transformers", "peft", "lancedb", "sentence-transformers", "pandas", "pydantic")
HASH_TAG = "ragtune.bundle_hash"
JUDGED_TAG = "ragtune.judged_against"  # on a version the alias moved to: the version the gate judged it against
NOT_FOUND = "RESOURCE_DOES_NOT_EXIST"  # MLflow's error code for "no such model": the only "absent"


class RegistryError(RuntimeError):
    """The registry gave no definite answer: unreachable, a 5xx, a refusal (401/403), an answer not MLflow's.

    Raised ``from`` the client's error, so the exit-code contract (flows/common.py) sees whether it
    is transient (the network, a 5xx: exit 75) or not (a refusal: exit 1).
    """


class AliasMovedError(RegistryError):
    """The alias moved between the gate's judgement and the move: a rerun judges against the new champion."""

    transient = True  # the exit-code contract: worth running again (flows.common.is_transient_error)


def download(uri: str, dst: Path | None = None) -> Path:
    """A local copy of the artifacts at ``uri`` (``runs:/...``, ``models:/...`` or a store URI), in ``dst``.

    Without ``dst`` MLflow picks a new temporary folder and never removes it: a caller that does not
    keep the copy passes a folder it cleans up.
    """
    return Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(dst) if dst else None))


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
    """The version of registered model ``name`` tagged with ``content_hash``, or None.

    Raises:
        RegistryError: the registry gave no definite answer (never read as "no such version").
    """
    client = MlflowClient()
    with registry_answers(f"looking up {name} in the model registry"):
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
    model_code: Path,
    artifacts_fn,
    code_paths: list[str],
    params: dict,
    version_tags: dict[str, str],
    run_tags: dict[str, str],
) -> tuple[object, bool]:
    """Register a pyfunc as a version of ``name``, unless a version with ``content_hash`` exists.

    The model is logged *from code* (MLflow's models-from-code): ``model_code`` is a Python file that
    calls ``mlflow.models.set_model``; the version stores that file and ``code_paths``, never a
    pickle of the object, so loading it runs this code and nothing a pickle could carry.

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
            python_model=str(model_code),
            artifacts=artifacts_fn(Path(tmp)),
            code_paths=code_paths,
            pip_requirements=requirements(),
        )
    return mlflow.register_model(info.model_uri, name, tags=tags), True


def load_pyfunc(uri: str):
    """The pyfunc model at ``uri`` (``models:/name/version``), loaded in this process; never from a pickle.

    ragtune's versions are models-from-code (their class is code in the version, not a pickle): a
    version saved as a cloudpickle (an older ragtune, or someone's hand-made one) is refused, since
    unpickling runs whatever the pickle holds.
    """
    with _env(MLFLOW_ALLOW_PICKLE_DESERIALIZATION.name, "false"):
        return mlflow.pyfunc.load_model(uri)


@contextlib.contextmanager
def _env(name: str, value: str) -> Iterator[None]:
    before = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


def alias_version(name: str, alias: str):
    """The version ``name@alias`` points at, or None when MLflow says the model or the alias does not exist.

    Only a definite "not found" means no champion: the model's own record without that alias, or
    MLflow's ``RESOURCE_DOES_NOT_EXIST`` for the model. Anything else (a refused connection, a 5xx,
    a 401/403, a 404 that is not MLflow's) raises: read as "no champion", it would move the alias.

    Raises:
        RegistryError: the registry gave no definite answer.
    """
    client = MlflowClient()
    with registry_answers(f"reading {name}@{alias} from the model registry"):
        try:
            model = client.get_registered_model(name)
        except MlflowException as exc:
            if getattr(exc, "error_code", None) == NOT_FOUND:
                return None
            raise
        version = (model.aliases or {}).get(alias)
        return None if version is None else client.get_model_version(name, str(version))


def move_alias(name: str, alias: str, version: str, expected: str | None) -> None:
    """Point ``name@alias`` at ``version``, only if it still points where the gate saw it (compare-and-set).

    ``expected`` is the version the gate judged against (None: no champion). The alias is read
    again just before the move, and once after it; the version is tagged ``ragtune.judged_against``
    with ``expected``. MLflow has no atomic compare-and-set, so two movers in the same few
    milliseconds can still both move; the check after the move then tells the one that lost.

    Raises:
        AliasMovedError: another run moved the alias since the gate read it (or right after this move).
        RegistryError: the registry gave no definite answer.
    """
    now = alias_version(name, alias)
    found = None if now is None else str(now.version)
    if found != expected:
        raise AliasMovedError(
            f"{name}@{alias} now points at version {found or '(none)'}, but the gate judged against "
            f"{expected or 'no champion'}: another run moved it meanwhile; run again to judge against it"
        )
    client = MlflowClient()
    with registry_answers(f"moving {name}@{alias} to version {version}"):
        client.set_model_version_tag(name, version, JUDGED_TAG, expected or "none")
        client.set_registered_model_alias(name, alias, version)
    after = alias_version(name, alias)
    if after is None or str(after.version) != version:
        raise AliasMovedError(f"{name}@{alias} was moved by another run right after this one moved it")


def is_tracking_error(exc: BaseException | None) -> bool:
    """Whether ``exc`` or anything it was raised from is an error of MLflow or of its HTTP client."""
    import requests

    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, RegistryError | MlflowException | requests.RequestException):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


@contextlib.contextmanager
def registry_answers(what: str) -> Iterator[None]:
    """Turn an error of MLflow or of its HTTP client inside the block into a :class:`RegistryError` saying ``what``."""
    try:
        yield
    except RegistryError:
        raise
    except Exception as exc:
        if not is_tracking_error(exc):
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RegistryError(f"{what}: {first[:400]}") from exc
