"""The decision where the MLflow UI shows it first: the leaderboard on the pipeline run and on each cell run.

``ragtune select`` decides; :func:`mark_leaderboard` puts its leaderboard
(``components.decision.leaderboard``) where a team lead looks, with no set-up:

- the pipeline run: the leaderboard as a table (``leaderboard.json``, drawn as a table on its
  Artifacts tab), the whole recommendation and confirmation (``recommendation.md``, and its
  description when short enough for a tag);
- each cell run: ``rank`` as a metric (the runs table sorts by it), ``ragtune.verdict``,
  ``ragtune.family`` and ``ragtune.confirmation`` as tags, a one-line description, and the name
  ``<rank> <cell>`` short enough to show whole in the runs table's default column width;
- the experiment: a one-line headline as its description, the main metric as its primary metric,
  and the view ``ragtune-leaderboard`` of its runs table: the latest pipeline's cells sorted by rank,
  with their split, score, interval, verdict, family, confirmation and cost as columns (the UI's
  shared-view state, an experiment tag). :func:`urls` names the views a user opens.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.entities import Metric, RunTag
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import (
    MLFLOW_EXPERIMENT_PRIMARY_METRIC_GREATER_IS_BETTER,
    MLFLOW_EXPERIMENT_PRIMARY_METRIC_NAME,
)

NOTE = "mlflow.note.content"  # a run's (or experiment's) description in the UI
NOTE_CHARS = 5000  # the most a tag holds on every MLflow store; longer text lives in recommendation.md
VIEW = "ragtune-leaderboard"  # the runs table's view of the leaderboard: ?viewStateShareKey=<VIEW>
VIEW_TAG = "mlflow.sharedViewState."  # + key: an experiment tag the UI reads a shared view from
TABLE, TEXT = "leaderboard.json", "recommendation.md"  # on the pipeline run


def summary_line(row: pd.Series, main_metric: str, total: int, recommended: bool) -> str:
    """``rank 1/6 · f1 0.330 (CI 0.240-0.426) · $0.010 / 1k queries · p50 0.735 s · recommended``."""
    parts = [f"rank {row['rank']}/{total}", f"{main_metric} {row['mean']:.3f} (CI {row['interval']})"]
    if _number(row.get("cost_per_1k_amortised")):
        parts.append(f"${row['cost_per_1k_amortised']:.3f} / 1k queries")
    if _number(row.get("latency_p50_s")):
        parts.append(f"p50 {row['latency_p50_s']:.3f} s")
    if recommended:
        parts.append("recommended")
    return " · ".join(parts)


def _number(value) -> bool:
    return isinstance(value, int | float) and not math.isnan(value)


def leaderboard_view(parent_run_id: str, main_metric: str) -> dict:
    """The runs table's state for the leaderboard: the cells of ``parent_run_id``, by rank, with its columns.

    The UI's own shared-view format (what its Share button writes, MLflow 3.17): search facets
    (filter, sort) and table state (columns, their order and widths; a width applies to a column of
    the order). The Run Name column keeps its default width: the run names are made to fit it.
    """
    m = main_metric
    metrics = ["rank", m, f"{m}_ci_low", f"{m}_ci_high"]
    tags = ["ragtune.verdict", "ragtune.family", "ragtune.confirmation"]
    costs = ["cost_per_1k_amortised", "latency_p50_s"]
    columns = [
        "attributes.`Dataset`",
        *(f"metrics.`{k}`" for k in metrics),
        *(f"tags.`{k}`" for k in tags),
        *(f"metrics.`{k}`" for k in costs),
        "tags.`ragtune.cell`",
    ]
    widths = {"attributes.`Dataset`": 180, "metrics.`rank`": 70, "tags.`ragtune.confirmation`": 330}
    return {
        "searchFilter": f"tags.`mlflow.parentRunId` = '{parent_run_id}'",
        "orderByKey": "metrics.`rank`",
        "orderByAsc": True,
        "selectedColumns": columns,
        "columnOrder": ["attributes.`Run Name`", *columns, "runDateAndNestInfo", "duration"],
        "columnWidths": widths
        | {"tags.`ragtune.verdict`": 110, "tags.`ragtune.family`": 110, "tags.`ragtune.cell`": 210},
    }


def mark_leaderboard(leaderboard, parent_run_id: str, experiment_id: str) -> None:
    """Put ``leaderboard`` on the cell runs, the pipeline run ``parent_run_id`` and the experiment.

    Args:
        leaderboard: ``components.decision.leaderboard.Leaderboard``: ``main_metric``, ``board`` (one
            row per cell run), ``text`` (the whole recommendation and confirmation, markdown: ``recommendation.md``),
            ``headline`` (one line: the experiment's description).
    """
    board, main_metric = leaderboard.board, leaderboard.main_metric
    recommendation, headline = leaderboard.text, leaderboard.headline
    client, now = MlflowClient(), int(time.time() * 1000)
    total = int((board["split"] == "dev").sum())
    for _, row in board.iterrows():
        chosen = bool(row["recommended"])
        tags = {
            "ragtune.rank": str(row["rank"]),
            "ragtune.verdict": row["verdict"],
            "ragtune.family": row["family"],
            "ragtune.confirmation": row["confirmation"],
            NOTE: summary_line(row, main_metric, total, chosen),
        }
        if row["split"] == "dev":  # the split that chose
            tags["ragtune.recommended"] = str(chosen).lower()
        metrics = [Metric("rank", float(row["rank"]), now, 0)]
        client.log_batch(row["run_id"], metrics=metrics, tags=[RunTag(k, str(v)) for k, v in tags.items()])
        client.update_run(row["run_id"], name=row["run_name"])
    replace_table(parent_run_id, board.drop(columns=["run_name"]), TABLE)
    mlflow.log_text(recommendation, TEXT, run_id=parent_run_id)
    note = recommendation if len(recommendation) <= NOTE_CHARS else f"{headline}\n\n(The whole text: {TEXT}.)"
    client.set_tag(parent_run_id, NOTE, note)
    view = json.dumps(leaderboard_view(parent_run_id, main_metric))
    for key, value in (
        (MLFLOW_EXPERIMENT_PRIMARY_METRIC_NAME, main_metric),
        (MLFLOW_EXPERIMENT_PRIMARY_METRIC_GREATER_IS_BETTER, "true"),
        (NOTE, headline),
        (VIEW_TAG + VIEW, view),
    ):
        client.set_experiment_tag(experiment_id, key, value)


def replace_table(run_id: str, table: pd.DataFrame, artifact_file: str) -> None:
    """``mlflow.log_table``, except that a table already logged there is replaced, not appended to
    (``ragtune select`` run again on the same pipeline run, after a change of its params)."""
    client = MlflowClient()
    if artifact_file not in {f.path for f in client.list_artifacts(run_id)}:
        mlflow.log_table(table, artifact_file=artifact_file, run_id=run_id)  # also marks it as a table for the UI
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / artifact_file
        table.to_json(path, orient="split", index=False, date_format="iso")  # what log_table writes
        client.log_artifact(run_id, str(path))


def urls(base: str, experiment: str) -> dict[str, str]:
    """The MLflow UI's views of ``experiment`` at ``base`` (``http://host:port``): the leaderboard (once
    ``select`` made it), the cells to compare, the traces, the datasets, the overview; empty when the
    experiment does not exist yet."""
    found = MlflowClient().get_experiment_by_name(experiment)
    if found is None:
        return {}
    page = f"{base.rstrip('/')}/#/experiments/{found.experiment_id}"
    views = {"leaderboard": f"{page}/runs?viewStateShareKey={VIEW}"} if VIEW_TAG + VIEW in found.tags else {}
    return views | {
        "compare the cells": f"{page}/evaluation-runs",
        "traces": f"{page}/traces",
        "datasets": f"{page}/datasets",
        "overview": page,
    }
