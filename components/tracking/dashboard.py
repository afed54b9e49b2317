"""The leaderboard on the dashboard: each cell run carries its rank, interval, cost and latency; the pick is tagged.

``ragtune select`` ranks the cells; this puts that ranking where the MLflow UI shows it without any
set-up: a one-line summary in each cell run's description (a default column of the run lists), the
rank and the recommendation as tags (``ragtune.rank``, ``ragtune.recommended``), the interval and
costs as metrics (logged by the stage from ``components.decision.select.run_metrics``), and the
main metric as the experiment's primary metric. :func:`urls` names the views a user opens.
"""

from __future__ import annotations

import math

import pandas as pd
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import (
    MLFLOW_EXPERIMENT_PRIMARY_METRIC_GREATER_IS_BETTER,
    MLFLOW_EXPERIMENT_PRIMARY_METRIC_NAME,
)

NOTE = "mlflow.note.content"  # a run's (or experiment's) description in the UI


def summary_line(row: pd.Series, main_metric: str, rank: int, total: int, recommended: bool) -> str:
    """``rank 1/6 · f1 0.330 (CI 0.240-0.426) · $0.010 / 1k queries · p50 0.735 s · recommended``."""
    interval = f"(CI {row['ci_low']:.3f}-{row['ci_high']:.3f})"
    parts = [f"rank {rank}/{total}", f"{main_metric} {row['mean']:.3f} {interval}"]
    if _number(row.get("cost_per_1k_amortised")):
        parts.append(f"${row['cost_per_1k_amortised']:.3f} / 1k queries")
    if _number(row.get("latency_p50_s")):
        parts.append(f"p50 {row['latency_p50_s']:.3f} s")
    if recommended:
        parts.append("recommended")
    return " · ".join(parts)


def _number(value) -> bool:
    return isinstance(value, int | float) and not math.isnan(value)


def mark_leaderboard(
    table: pd.DataFrame, main_metric: str, recommended_cell: str, experiment_id: str, recommendation: str
) -> None:
    """Tag every cell run of the decision ``table`` (one row per cell, best first) with its place on it.

    Args:
        recommendation: the report's recommendation text; it becomes the experiment's description.
    """
    client = MlflowClient()
    for rank, (_, row) in enumerate(table.iterrows(), start=1):
        chosen = row["cell"] == recommended_cell
        client.set_tag(row["run_id"], "ragtune.rank", str(rank))
        client.set_tag(row["run_id"], "ragtune.recommended", str(chosen).lower())
        client.set_tag(row["run_id"], NOTE, summary_line(row, main_metric, rank, len(table), chosen))
    client.set_experiment_tag(experiment_id, MLFLOW_EXPERIMENT_PRIMARY_METRIC_NAME, main_metric)
    client.set_experiment_tag(experiment_id, MLFLOW_EXPERIMENT_PRIMARY_METRIC_GREATER_IS_BETTER, "true")
    client.set_experiment_tag(experiment_id, NOTE, recommendation)


def urls(base: str, experiment: str) -> dict[str, str]:
    """The MLflow UI's views of ``experiment`` at ``base`` (``http://host:port``): the cells to compare,
    the traces, the overview; empty when the experiment does not exist yet."""
    found = MlflowClient().get_experiment_by_name(experiment)
    if found is None:
        return {}
    page = f"{base.rstrip('/')}/#/experiments/{found.experiment_id}"
    return {"compare the cells": f"{page}/evaluation-runs", "traces": f"{page}/traces", "overview": page}
