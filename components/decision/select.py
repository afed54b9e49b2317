"""The whole decision of the ``select`` stage: table, recommendation, break-even, complementarity, report text.

:func:`decide` is pure (the stage reads its inputs and writes what it returns); the charts are
drawn by the stage through :data:`Decision.charts`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from components.catalog.artifacts import BestFile, CellsFile, Choice
from components.config import EvaluationConfig
from components.decision.charts import plot_complementarity, plot_pareto
from components.decision.complementarity import complementarity
from components.decision.markdown import RETRIEVAL_COLUMNS, retrieval_table, to_markdown
from components.decision.report import html_report, markdown_report
from components.decision.table import break_even_table, decision_table, recommend


@dataclass(frozen=True)
class Decision:
    table: pd.DataFrame  # one row per cell, best first
    recommendation: dict
    complementarity: pd.DataFrame
    charts: dict[str, Callable[[Path], None]]  # file name -> draws the chart at a path
    markdown: str
    html: str
    best: BestFile


def _choice(row: pd.Series) -> Choice:
    return Choice(
        cell=row["cell"],
        model=row["model"],
        retriever=row["retriever"],
        run_id=row["run_id"],
        mean=float(row["mean"]),
        ci_low=float(row["ci_low"]),
        ci_high=float(row["ci_high"]),
        cost_per_1k_amortised=float(row["cost_per_1k_amortised"]),
    )


def decide(
    cells: CellsFile,
    rows: pd.DataFrame,
    cfg: EvaluationConfig,
    train: dict[str, dict],
    index_time_s: dict[str, float],
    retrieval: dict[str, dict[str, dict]] | None,
) -> Decision:
    """Rank the cells with intervals and costs and recommend one.

    Args:
        cells: ``cells.json``; rows: ``predictions.parquet`` (one row per cell and question).
        train: adapter -> its ``finetune.json`` entry (wall time, workers).
        index_time_s: retriever -> build seconds of its table.
        retrieval: retriever -> split -> retrieval-only metrics (``retrieval.json``), or None.
    """
    table = decision_table(cells.flat(), rows, cfg.main_metric, cfg.statistics, cfg.cost, train, index_time_s)
    rec = recommend(table, cfg.main_metric, cfg.statistics, cfg.cost, questions=int(rows["qa_id"].nunique()))
    pairs = break_even_table(table)
    comp = complementarity(rows, cells.flat(), cfg.main_metric, cfg.answered_threshold)
    charts: dict[str, Callable[[Path], None]] = {
        "quality_vs_cost.png": lambda out: plot_pareto(table, "cost_per_1k_amortised", "$ per 1,000 queries", out),
        "quality_vs_latency.png": lambda out: plot_pareto(table, "latency_p50_s", "latency p50 (s)", out),
    }
    if not comp.empty:
        charts["complementarity.png"] = lambda out: plot_complementarity(comp, out)
    header = {
        "main_metric": cfg.main_metric,
        "split": cells.split,
        "questions": int(table.iloc[0]["questions"]),
        "parent_run_id": cells.parent_run_id,
        "confidence": cfg.statistics.confidence,
        "resamples": cfg.statistics.resamples,
        "query_volume": cfg.cost.query_volume,
    }
    markdown = markdown_report(table, rec, pairs, comp, header, list(charts))
    if retrieval is not None:
        markdown += f"\n## Retrieval alone ({cells.split} split, every retriever)\n\n"
        markdown += to_markdown(retrieval_table(retrieval, cells.split), RETRIEVAL_COLUMNS)
    by_cell = table.set_index("cell", drop=False)
    best = BestFile(
        main_metric=cfg.main_metric,
        split=cells.split,
        questions=header["questions"],
        parent_run_id=cells.parent_run_id,
        best=_choice(table.iloc[0]),
        recommended=_choice(by_cell.loc[rec["cell"]]),
        tied=list(rec["tied"]),
        few_questions=bool(rec["few_questions"]),
    )
    return Decision(table, rec, comp, charts, markdown, html_report(markdown, table, rec, list(charts)), best)


def run_metrics(table: pd.DataFrame, main_metric: str) -> dict[str, dict[str, float]]:
    """Per cell run: the interval, the difference to the best and the costs ``select`` adds to it."""
    m = main_metric
    return {
        row["run_id"]: {
            f"{m}_ci_low": row["ci_low"],
            f"{m}_ci_high": row["ci_high"],
            f"{m}_diff_to_best": row["diff"],
            f"{m}_diff_low": row["diff_low"],
            f"{m}_diff_high": row["diff_high"],
            **{k: row[k] for k in table if k.startswith("cost_")},
        }
        for _, row in table.iterrows()
    }
