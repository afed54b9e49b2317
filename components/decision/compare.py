"""A leaderboard read back from MLflow (``ragtune compare``): any past pipeline run, from its cell runs."""

from __future__ import annotations

import pandas as pd

COMPARE_COLUMNS = [
    "rank",
    "cell",
    "mean",
    "ci",
    "exact_match",
    "f1",
    "rouge_l",
    "answer_support",
    "recall_at_k",
    "latency_p50_s",
    "cost_per_1k_amortised",
]


def from_runs(children: pd.DataFrame, main_metric: str) -> pd.DataFrame:
    """A leaderboard from the cell runs MLflow returns (``metrics.*`` / ``params.*`` / ``tags.*`` columns).

    Intervals and costs appear when ``ragtune select`` logged them (``<metric>_ci_low``, ``cost_*``).
    """
    cells = children[children.get("tags.ragtune.kind", pd.Series("cell", index=children.index)) == "cell"]
    if "tags.ragtune.split" in cells:  # the comparison that chose: dev (test confirms, it is in the report)
        cells = cells[cells["tags.ragtune.split"].fillna("dev") == "dev"]
    if cells.empty:
        raise ValueError("the parent run has no cell runs")
    metric = f"metrics.{main_metric}"
    if metric not in cells:
        raise ValueError(f"the cell runs have no {main_metric} metric")
    out = pd.DataFrame({"cell": cells["tags.ragtune.cell"], "mean": cells[metric]})
    for name in COMPARE_COLUMNS[2:]:  # rank is recomputed below (select logs one too), cell is above
        if f"metrics.{name}" in cells:
            out[name] = cells[f"metrics.{name}"]
    low, high = f"metrics.{main_metric}_ci_low", f"metrics.{main_metric}_ci_high"
    if low in cells:
        out["ci"] = [
            "-" if pd.isna(lo) else f"{lo:.3f}-{hi:.3f}" for lo, hi in zip(cells[low], cells[high], strict=True)
        ]
    out = out.sort_values("mean", ascending=False, kind="stable").reset_index(drop=True)
    out.insert(0, "rank", range(1, len(out) + 1))
    return out[[c for c in COMPARE_COLUMNS if c in out]]


def comparison(experiment: str, run: str | None, default_metric: str) -> str:
    """The markdown comparison of pipeline run ``run`` (default: the latest) in ``experiment``, from MLflow.

    Raises:
        LookupError: no such experiment or run.
        ValueError: the run has no cell runs, or they lack the main metric.
    """
    from components import tracking
    from components.decision.report import markdown_table

    parent = run or tracking.latest_parent(experiment)
    info = tracking.run_info(parent)
    main_metric = info["params"].get("evaluation.main_metric", default_metric)
    try:
        table = from_runs(tracking.cell_runs(parent), main_metric)
    except ValueError as exc:
        raise ValueError(f"run {parent}: {exc}") from exc
    tags = info["tags"]
    lines = [
        f"# ragtune comparison: run {parent} ({tags.get('mlflow.runName', '')}), sorted by {main_metric}\n",
        markdown_table(table),
    ]
    if "ragtune.recommendation" in tags:
        lines.append(tags["ragtune.recommendation"])
    elif "ragtune.best_cell" in tags:
        lines.append(f"Best: **{tags['ragtune.best_cell']}** (no recommendation recorded: run `ragtune select`)")
    return "\n".join(lines)
