"""The whole decision of the ``select`` stage: dev table and recommendation, test confirmation, report text.

:func:`decide` is pure (the stage reads its inputs and writes what it returns); the charts are drawn
by the stage through :data:`Decision.charts`. The recommendation reads the dev rows only: the test
rows can confirm it or not, never change it (tests/unit/test_protocol.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from components.catalog.artifacts import BestFile, CellsFile, Choice, Confirmation
from components.decision.charts import plot_complementarity, plot_curves, plot_pareto
from components.decision.complementarity import complementarity
from components.decision.markdown import RETRIEVAL_COLUMNS, retrieval_table, to_markdown
from components.decision.report import html_report, markdown_report
from components.decision.statistics import count_groups, per_question
from components.decision.table import break_even_table, decision_table, recommend
from components.decision.training import budget

CONFIRMS = {"best", "better", "equivalent"}


@dataclass(frozen=True)
class Decision:
    table: pd.DataFrame  # dev: one row per cell, best first
    test: pd.DataFrame | None  # test: the cells dev left standing
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
        shots=int(row["shots"]),
        run_id=row["run_id"],
        mean=float(row["mean"]),
        ci_low=float(row["ci_low"]),
        ci_high=float(row["ci_high"]),
        cost_per_1k_amortised=float(row["cost_per_1k_amortised"]),
    )


def confirm(test: pd.DataFrame | None, chosen: str, metric: str, questions: int) -> Confirmation:
    """Whether the test split confirms the dev recommendation: it is the best on test or equivalent to it."""
    if test is None or chosen not in set(test["cell"]):
        return Confirmation(
            outcome="inconclusive",
            mean=None,
            ci_low=None,
            ci_high=None,
            verdict=None,
            text="The recommended cell was not scored on test: nothing confirms it.",
        )
    row = test.set_index("cell").loc[chosen]
    outcome = (
        "confirmed" if row["verdict"] in CONFIRMS else "not confirmed" if row["verdict"] == "worse" else "inconclusive"
    )
    best = test.iloc[0]["cell"]
    says = {
        "confirmed": "confirms",
        "not confirmed": "does not confirm",
        "inconclusive": "neither confirms nor refutes",
    }
    versus = "." if row["verdict"] == "best" else f" against the test best {best} ({test.iloc[0]['mean']:.3f})."
    text = (
        f"**Test {says[outcome]} the dev recommendation.** On the {questions} test questions {chosen} scores {metric} "
        f"{row['mean']:.3f} (CI {row['ci_low']:.3f}-{row['ci_high']:.3f}), verdict `{row['verdict']}`{versus}"
    )
    return Confirmation(
        outcome=outcome,
        mean=float(row["mean"]),
        ci_low=float(row["ci_low"]),
        ci_high=float(row["ci_high"]),
        verdict=row["verdict"],
        text=text,
    )


def decide(
    cells: CellsFile,
    rows: pd.DataFrame,
    cfg,
    train: dict[str, dict],
    index_time_s: dict[str, float],
    retrieval: dict[str, dict[str, dict]] | None,
    curves: dict[str, list[dict]],
    groups: pd.Series,
) -> Decision:
    """Rank the cells on dev with intervals, verdicts and costs, recommend one, confirm it on test.

    Args:
        cells: ``cells.json``; rows: ``predictions.parquet`` (one row per cell, split and question).
        cfg: the evaluation params (main_metric, statistics, cost, answered_threshold, learning_curve, brevity_gap).
        train: adapter -> its ``finetune.json`` entry; index_time_s: retriever -> full build seconds.
        retrieval: retriever -> split -> retrieval-only metrics (``retrieval.json``), or None.
        curves: adapter -> its learning curve (``curves.json``); groups: qa_id -> leakage group.
    """
    m = cfg.main_metric
    dev_rows, test_rows = (rows[rows["split"] == s] for s in ("dev", "test"))
    table = decision_table(cells.flat("dev"), dev_rows, m, cfg.statistics, cfg.cost, train, index_time_s, groups)
    n_groups = count_groups(per_question(dev_rows, m), groups)
    rec = recommend(table, m, cfg.statistics, cfg.cost, n_groups)
    test = None
    if cells.flat("test"):
        test = decision_table(cells.flat("test"), test_rows, m, cfg.statistics, cfg.cost, train, index_time_s, groups)
    confirmation = confirm(test, rec["cell"], m, cells.questions.get("test", 0))
    comp = complementarity(dev_rows, cells.flat("dev"), m, cfg.answered_threshold)
    budgets = [
        budget(a, t, t["examples_per_step"], curves.get(a, []), m, cfg.learning_curve.min_gain)
        for a, t in train.items()
    ]
    charts: dict[str, Callable[[Path], None]] = {
        "quality_vs_cost.png": lambda out: plot_pareto(table, "cost_per_1k_amortised", "$ per 1,000 queries", out),
        "quality_vs_latency.png": lambda out: plot_pareto(table, "latency_p50_s", "latency p50 (s)", out),
    }
    if not comp.empty:
        charts["complementarity.png"] = lambda out: plot_complementarity(comp, out)
    if any(curves.values()):
        charts["learning_curves.png"] = lambda out: plot_curves(curves, m, out)
    header = _header(cells, cfg, n_groups)
    extras = {"break_even": break_even_table(table), "complementarity": comp, "budgets": budgets, "curves": curves}
    markdown = markdown_report(table, test, rec, confirmation.text, extras, header, list(charts))
    if retrieval is not None:
        for split in ("dev", "test"):
            markdown += f"\n## Retrieval alone ({split} split, every retriever)\n\n"
            markdown += to_markdown(retrieval_table(retrieval, split), RETRIEVAL_COLUMNS)
    best = _best_file(table, rec, cells, confirmation, m)
    return Decision(table, test, rec, comp, charts, markdown, html_report(markdown, table, rec, list(charts)), best)


def _header(cells: CellsFile, cfg, groups: int) -> dict:
    return {
        "main_metric": cfg.main_metric,
        "dev_questions": cells.questions["dev"],
        "dev_groups": groups,
        "test_questions": cells.questions.get("test", 0),
        "parent_run_id": cells.parent_run_id,
        "confidence": cfg.statistics.confidence,
        "resamples": cfg.statistics.resamples,
        "margin": cfg.statistics.margin,
        "query_volume": cfg.cost.query_volume,
        "max_new_tokens": cells.max_new_tokens,
        "brevity_gap": cfg.brevity_gap,
    }


def _best_file(table: pd.DataFrame, rec: dict, cells: CellsFile, confirmation: Confirmation, metric: str) -> BestFile:
    chosen = table.set_index("cell", drop=False).loc[rec["cell"]]
    return BestFile(
        main_metric=metric,
        split="dev",
        questions=cells.questions["dev"],
        groups=rec["groups"],
        parent_run_id=cells.parent_run_id,
        best=_choice(table.iloc[0]),
        recommended=_choice(chosen),
        ranking=[_choice(row) for _, row in table.iterrows()],
        tied=list(rec["tied"]),
        few_groups=bool(rec["few_groups"]),
        max_new_tokens=cells.max_new_tokens,
        few_shot_examples=cells.few_shot_examples if int(chosen["shots"]) else [],
        confirmation=confirmation,
    )


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
