"""MLflow runs: experiments, provenance tags, parent and child runs, and queries over them.

One parent run per pipeline evaluation, one nested child run per grid cell. Every run carries its
provenance as tags (git commit, DVC hash of the raw data, package versions), and "best" is a query
over runs, not a file someone edits.
"""

from __future__ import annotations

import importlib.metadata
import logging
import subprocess
import time
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.entities import Metric, Param, RunTag
from mlflow.environment_variables import MLFLOW_TRACKING_URI
from mlflow.tracking import MlflowClient

logger = logging.getLogger(__name__)

DEFAULT_DB = "mlruns.db"
DEFAULT_ARTIFACTS = "mlartifacts"
EXPERIMENT_KIND = "mlflow.experimentKind"
GENAI_KIND = "genai_development"  # the UI's GenAI views: overview, traces, evaluation runs, datasets
TRAINING_KIND = "custom_model_development"  # the UI's run table and charts
OPS_SUFFIX = "-ops"
PACKAGES = ("torch", "transformers", "peft", "sentence-transformers", "lancedb", "ray", "mlflow", "prefect", "dvc")


def default_tracking_uri(root: Path) -> str:
    return f"sqlite:///{(root / DEFAULT_DB).resolve()}"


def connect(root: Path) -> None:
    """Point MLflow at ``MLFLOW_TRACKING_URI`` if set, else the sqlite store in ``root`` (creates nothing)."""
    if not MLFLOW_TRACKING_URI.is_set():
        mlflow.set_tracking_uri(default_tracking_uri(root))


def setup(root: Path, experiment: str, kind: str = GENAI_KIND) -> str:
    """Point MLflow at ``MLFLOW_TRACKING_URI`` if set, else the sqlite store in ``root``; make ``experiment`` active.

    Args:
        kind: the experiment's ``mlflow.experimentKind``, which picks the UI's views for it: the
            pipeline's experiment is a GenAI one (its cells are evaluation runs with traces), the
            bookkeeping one (:func:`setup_ops`) a model-training one.

    Returns:
        The experiment id (created, with its artifact folder, if new).
    """
    local = not MLFLOW_TRACKING_URI.is_set()  # read first: set_tracking_uri also sets the variable
    connect(root)
    client = MlflowClient()
    found = client.get_experiment_by_name(experiment)
    if found is not None:
        experiment_id = found.experiment_id
    else:
        location = (root / DEFAULT_ARTIFACTS).resolve().as_uri() if local else None
        experiment_id = client.create_experiment(experiment, artifact_location=location)
    if found is None or found.tags.get(EXPERIMENT_KIND) != kind:
        client.set_experiment_tag(experiment_id, EXPERIMENT_KIND, kind)
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


def ops_experiment(experiment: str) -> str:
    """The experiment that holds ``experiment``'s bookkeeping runs."""
    return f"{experiment}{OPS_SUFFIX}"


def setup_ops(root: Path, experiment: str) -> str:
    """Like :func:`setup`, for the bookkeeping experiment ``<experiment>-ops``: training, retrieval-eval,
    sweep, drill, registration and base-model runs, kept out of the list where the cells are compared."""
    return setup(root, ops_experiment(experiment), kind=TRAINING_KIND)


def git_commit(root: Path) -> str:
    """The checked-out commit, with ``-dirty`` when tracked files have changes."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True).stdout.strip()

    try:
        sha = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (subprocess.CalledProcessError, FileNotFoundError):
        return "unknown"
    return f"{sha}-dirty" if dirty else sha


def provenance_tags(root: Path, data_version: str) -> dict[str, str]:
    tags = {"ragtune.git_commit": git_commit(root), "ragtune.data_version": data_version}
    for name in PACKAGES:
        try:
            tags[f"ragtune.version.{name}"] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return tags


def flat(params: dict, prefix: str = "") -> dict[str, str]:
    """Nested config -> flat ``a.b.c`` params; values cut to MLflow's length limit."""
    out: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flat(value, f"{name}."))
        else:
            out[name] = str(value)[:6000]
    return out


def start_parent(run_name: str, params: dict, tags: dict[str, str], kind: str = "pipeline") -> str:
    """Create a parent run (``kind``: "pipeline" for the grid, "retrieval" for retrieval-eval); return its id.

    The run is left finished; children are added with :func:`log_cell`.
    """
    with mlflow.start_run(run_name=run_name, tags={**tags, "ragtune.kind": kind}) as run:
        mlflow.log_params(flat(params))
        return run.info.run_id


def log_cell(
    parent_id: str,
    cell: str,
    params: dict,
    metrics: dict,
    predictions: pd.DataFrame,
    tags: dict[str, str],
    kind: str = "cell",
) -> str:
    """Log one child of the parent run (a grid cell, or a retriever): params, metrics, per-question table."""
    with (
        mlflow.start_run(run_id=parent_id),
        mlflow.start_run(run_name=cell, nested=True, tags={**tags, "ragtune.kind": kind, "ragtune.cell": cell}) as run,
    ):
        mlflow.log_params(flat(params))
        mlflow.log_metrics({k: float(v) for k, v in metrics.items()})
        table = predictions.drop(columns=["prompt", "retrieved_texts"], errors="ignore")  # long; in the traces
        for column in table.columns:
            if table[column].map(lambda v: isinstance(v, list | tuple)).any():
                table[column] = table[column].map(lambda v: " | ".join(map(str, v)))
        mlflow.log_table(table, artifact_file="predictions.json")
        return run.info.run_id


def log_to_run(
    run_id: str,
    metrics: dict | None = None,
    files: list[Path] = (),
    tags: dict | None = None,
    params: dict | None = None,
) -> None:
    """Add metrics, artifact files, tags and params to an existing run (the parent, after selection).

    Through the client, not the fluent API: the run may belong to another experiment than the active
    one (``register`` tags a cell run of the pipeline's experiment while it logs in ``<experiment>-ops``).
    """
    client, now = MlflowClient(), int(time.time() * 1000)
    client.log_batch(
        run_id,
        metrics=[Metric(k, float(v), now, 0) for k, v in (metrics or {}).items()],
        params=[Param(k, v) for k, v in flat(params or {}).items()],
        tags=[RunTag(k, str(v)) for k, v in (tags or {}).items()],
    )
    for path in files:
        client.log_artifact(run_id, str(path))


def cell_runs(parent_id: str) -> pd.DataFrame:
    """The child runs of a parent run, as MLflow's search returns them."""
    return mlflow.search_runs(filter_string=f"tags.mlflow.parentRunId = '{parent_id}'", search_all_experiments=True)


def latest_parent(experiment: str, kind: str = "pipeline") -> str:
    """The id of the newest parent run of ``kind`` in ``experiment``.

    Raises:
        LookupError: no such experiment, or no such run in it.
    """
    found = MlflowClient().get_experiment_by_name(experiment)
    if found is None:
        raise LookupError(f"no MLflow experiment named {experiment!r}")
    runs = mlflow.search_runs(
        experiment_ids=[found.experiment_id],
        filter_string=f"tags.`ragtune.kind` = '{kind}'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    if runs.empty:
        raise LookupError(f"experiment {experiment!r} has no {kind} run: run `ragtune evaluate` first")
    return str(runs.iloc[0]["run_id"])


def run_info(run_id: str) -> dict:
    """A run's params, metrics and tags as plain dicts.

    Raises:
        LookupError: no run with that id.
    """
    try:
        run = MlflowClient().get_run(run_id)
    except mlflow.exceptions.MlflowException as exc:
        raise LookupError(f"no MLflow run {run_id!r}") from exc
    return {"params": dict(run.data.params), "metrics": dict(run.data.metrics), "tags": dict(run.data.tags)}


def run_params(run_id: str) -> dict[str, str]:
    """The params a run logged (flat ``a.b.c`` keys)."""
    return dict(MlflowClient().get_run(run_id).data.params)


def log_training(run_name: str, params: dict, history: list[dict], summary: dict, tags: dict[str, str]) -> str:
    """One MLflow run per trained adapter (tag ``ragtune.kind=training``).

    Args:
        params: the adapter and Ray config (flattened to ``a.b`` params).
        history: per-step rows with ``step``, ``loss`` and ``tokens_per_s``, logged as metric histories.
        summary: final numbers (tokens/s, wall time, peak memory, ...); non-numeric values are skipped.

    Returns:
        The run id.
    """
    run_tags = {**tags, "ragtune.kind": "training", "ragtune.adapter": run_name}
    with mlflow.start_run(run_name=run_name, tags=run_tags) as run:
        mlflow.log_params(flat(params))
        _log_curves(history, ("loss", "tokens_per_s", "tune_loss"), summary, final=("loss", "tokens_per_s"))
        return run.info.run_id


def log_sweep_trial(parent_id: str, name: str, params: dict, curve: list[dict], summary: dict, tags: dict) -> str:
    """One sweep trial as a child of the sweep's parent run: its hyperparameters and loss curves.

    Args:
        curve: per-step rows with ``step`` and any of ``loss``, ``tune_loss`` (metric histories; a
            row leaves out a value it does not have).
        summary: final numbers; non-numeric values are skipped.
    """
    with (
        mlflow.start_run(run_id=parent_id),
        mlflow.start_run(
            run_name=name, nested=True, tags={**tags, "ragtune.kind": "sweep-trial", "ragtune.trial": name}
        ) as run,
    ):
        mlflow.log_params(flat(params))
        _log_curves(curve, ("loss", "tune_loss"), summary, final=("loss", "tune_loss"))
        return run.info.run_id


def _log_curves(rows: list[dict], keys: tuple[str, ...], summary: dict, final: tuple[str, ...]) -> None:
    """Into the active run: ``keys`` of each row as metric histories at its ``step``, then the
    numeric ``summary`` values (bools and text skipped), those named in ``final`` as ``final_<key>``."""
    for row in rows:
        values = {k: float(row[k]) for k in keys if k in row}
        if values:
            mlflow.log_metrics(values, step=int(row["step"]))
    numeric = {k: float(v) for k, v in summary.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    mlflow.log_metrics({f"final_{k}" if k in final else k: v for k, v in numeric.items()})
