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
from components.decision.choices import choices_lines
from components.decision.complementarity import complementarity
from components.decision.confirm import calibration, calibration_line, confirm
from components.decision.finetuning import assess, finetuning_lines, relabel
from components.decision.markdown import RETRIEVAL_COLUMNS, retrieval_table, to_markdown
from components.decision.power import power
from components.decision.report import TESTED, html_report, markdown_report
from components.decision.retention import SPLIT as PROBES
from components.decision.retention import retention, retention_lines, retention_note
from components.decision.statistics import count_groups, per_question
from components.decision.table import break_even_table, decision_table, recommend


@dataclass(frozen=True)
class Decision:
    table: pd.DataFrame  # dev: one row per cell, best first
    test: pd.DataFrame | None  # test: the test cells (those dev left standing and the references)
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


@dataclass(frozen=True)
class SelectInputs:
    """What ``select`` reads: the evaluated grid, training and retrieval figures, the questions."""

    cells: CellsFile  # cells.json
    rows: pd.DataFrame  # predictions.parquet: one row per cell, split and question
    train: dict[str, dict]  # adapter -> its finetune.json entry
    index_time_s: dict[str, float]  # retriever -> full build seconds
    retrieval: dict[str, dict[str, dict]] | None  # retriever -> split -> retrieval-only metrics (retrieval.json)
    curves: dict[str, list[dict]]  # adapter -> its learning curve (curves.json)
    curve_scores: pd.DataFrame  # the per-question scores behind them (adapter, step, qa_id, metric)
    qa: pd.DataFrame  # qa.parquet: every question's split and leakage group
    question_set: tuple[str, ...] = ()  # the report's section on generated questions (components/questions/report.py)

    @property
    def groups(self) -> pd.Series:
        return self.qa.set_index("qa_id")["leakage_group"]


def decide(inputs: SelectInputs, cfg) -> Decision:
    """Rank the cells on dev with intervals, verdicts and costs, recommend one, confirm it on test.

    Args:
        cfg: the evaluation params (main_metric, statistics, cost, answered_threshold, learning_curve, brevity_gap).
    """
    m, cells, groups = cfg.main_metric, inputs.cells, inputs.groups
    rows = inputs.rows
    dev_rows, test_rows, probe_rows = (rows[rows["split"] == s] for s in ("dev", "test", PROBES))
    kept = retention(probe_rows, cfg.probes.metric, cfg.answered_threshold)
    costs = (cfg.statistics, cfg.cost, inputs.train, inputs.index_time_s, groups)
    ft = assess(
        inputs.train, inputs.curves, inputs.curve_scores, m, cfg.learning_curve.min_gain, cfg.statistics, groups
    )
    table = relabel(decision_table(cells.flat("dev"), dev_rows, m, *costs), ft.under_trained)
    n_groups = count_groups(per_question(dev_rows, m), groups)
    strength = power(table, n_groups, cfg.statistics.margin)
    rec = recommend(table, m, cfg.statistics, cfg.cost, n_groups, strength)
    rec["text"] += retention_note(kept, table.set_index("cell").loc[rec["cell"], "model"])
    test = decision_table(cells.flat("test"), test_rows, m, *costs) if cells.flat("test") else None
    confirmation = confirm(table, test_rows, rec["cell"], m, cfg.statistics, groups)
    comp = complementarity(dev_rows, cells.flat("dev"), m, cfg.answered_threshold)
    charts = _charts(table, comp, inputs.curves, m)
    header = _header(cells, cfg, n_groups) | {"confirmation": confirmation}
    extras = {
        "break_even": break_even_table(table),
        "complementarity": comp,
        "choices": choices_lines(inputs.qa, cfg, inputs.curves),
        "finetuning": finetuning_lines(ft, table, rec["cell"], m),
        "retention": retention_lines(kept, probe_rows["qa_id"].nunique() if len(probe_rows) else 0, cfg.probes.metric),
        "question_set": list(inputs.question_set),
    }
    confirmation_text = f"{confirmation.text}\n\n{calibration_line(calibration(table, test))}"
    markdown = markdown_report(table, test, rec, confirmation_text, extras, header, list(charts))
    if inputs.retrieval is not None:
        for split in ("tune", "dev", "test"):
            if any(split in scores for scores in inputs.retrieval.values()):
                markdown += f"\n## Retrieval alone ({split} split, every retriever)\n\n"
                markdown += to_markdown(retrieval_table(inputs.retrieval, split), RETRIEVAL_COLUMNS)
    verdicts = {
        "underpowered": list(strength.underpowered),
        "under_trained": ft.under_trained,
        "retention": {str(k): float(v) for k, v in kept["retention"].items()},
    }
    best = _best_file(table, rec, cells, confirmation, m, verdicts)
    return Decision(table, test, rec, comp, charts, markdown, html_report(markdown, table, rec, list(charts)), best)


def _charts(table: pd.DataFrame, comp: pd.DataFrame, curves: dict, metric: str) -> dict[str, Callable[[Path], None]]:
    charts: dict[str, Callable[[Path], None]] = {
        "quality_vs_cost.png": lambda out: plot_pareto(table, "cost_per_1k_amortised", "$ per 1,000 queries", out),
        "quality_vs_latency.png": lambda out: plot_pareto(table, "latency_p50_s", "latency p50 (s)", out),
    }
    if not comp.empty:
        charts["complementarity.png"] = lambda out: plot_complementarity(comp, out)
    if any(curves.values()):
        charts["learning_curves.png"] = lambda out: plot_curves(curves, metric, out)
    return charts


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
        "tested": cells_scored_on_test(cells),
    }


def cells_scored_on_test(cells: CellsFile) -> str:
    """Which cells answered test, in words, from what evaluate recorded (``evaluation.test_cells`` chose them)."""
    dev = {c.cell for c in cells.cells if c.split == "dev"}
    if set(cells.tested) >= dev and len(dev) > 1:
        return "every cell"
    if set(cells.tested) == set(cells.standing):
        return "the cells dev left standing"
    return TESTED


def _best_file(
    table: pd.DataFrame,
    rec: dict,
    cells: CellsFile,
    confirmation: Confirmation,
    metric: str,
    verdicts: dict,
) -> BestFile:
    """``best.json``; ``verdicts``: ``underpowered``, ``under_trained`` and ``retention`` (see :class:`BestFile`)."""
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
        **verdicts,
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
