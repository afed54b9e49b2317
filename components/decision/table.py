"""The decision table: every cell with its interval, difference to the best and costs; the recommendation.

Pure functions over the evaluated cells (``cells.json``) and their per-question rows; the
``select`` stage writes the results and :mod:`components.decision.report` renders them.
"""

from __future__ import annotations

import logging
import math

import pandas as pd

from components.config import CostConfig, StatisticsConfig
from components.decision.cost import CellCost, break_even, cell_cost, fixed_seconds, format_volume
from components.decision.finetuning import under_trained_note
from components.decision.power import Power
from components.decision.statistics import bootstrap, choose, per_question
from components.decision.training import UNDER_TRAINED

logger = logging.getLogger(__name__)


def decision_table(
    cells: list[dict],
    rows: pd.DataFrame,
    main_metric: str,
    stats_cfg: StatisticsConfig,
    cost_cfg: CostConfig,
    train: dict[str, dict],
    index_time_s: dict[str, float],
    groups: pd.Series | None = None,
) -> pd.DataFrame:
    """One row per cell, best first: its metrics, bootstrap interval, difference to the best, verdict, costs.

    Args:
        cells: the evaluated cells (``cell``, ``model``, ``retriever`` and metrics), all on one split.
        rows: their per-question predictions with a ``cell`` column.
        train: adapter -> its ``finetune.json`` entry (the compute time that produced it).
        index_time_s: full build seconds of each retriever's table (missing: counted as 0).
        groups: the leakage group of each question (index: qa_id), resampled together.
    """
    if not cells:
        raise ValueError("no evaluated cells to rank")
    stats = bootstrap(per_question(rows, main_metric), stats_cfg, groups)
    table = pd.DataFrame(cells).set_index("cell")
    for cell, info in table.iterrows():
        retriever = info["retriever"]
        fixed = fixed_seconds(
            train.get(info["model"]), None if retriever == "none" else index_time_s.get(retriever, 0.0)
        )
        for key, value in cell_cost(info.to_dict(), fixed, cost_cfg).as_dict().items():
            table.loc[cell, key] = value
    table = stats.join(table, how="left")
    table.insert(0, "rank", range(1, len(table) + 1))
    return table.reset_index()


def _evidence(row: pd.Series, pct: int) -> str:
    return f"{row['diff']:+.3f} (simultaneous {pct}% CI {row['diff_low']:+.3f} to {row['diff_high']:+.3f})"


def recommend(
    table: pd.DataFrame,
    main_metric: str,
    stats_cfg: StatisticsConfig,
    cost_cfg: CostConfig,
    groups: int,
    strength: Power | None = None,
) -> dict:
    """The chosen cell and one paragraph saying why, generated from the numbers.

    The best cell has the highest mean. A cell whose whole (simultaneous) interval of the
    difference to the best lies within the margin is *equivalent*; among the best and its
    equivalents the cheapest per 1,000 queries (fixed cost amortised over ``cost_cfg.query_volume``)
    wins. *Inconclusive* cells are named: the data cannot tell them from the best, so they are not
    chosen, but more questions could change the verdict. Cells of under-trained adapters are "not
    ruled out". ``strength`` (:mod:`components.decision.power`) adds the power line, and names the
    cells dev cannot tell apart from the best. With fewer than ``stats_cfg.min_groups`` independent
    question ``groups`` the text ends with a caution (``few_groups``).
    """
    stats = table.set_index("cell")
    chosen, tied = choose(stats, stats["cost_per_1k_amortised"])
    best = stats.index[0]
    row = stats.loc[chosen]
    pct, margin = round(stats_cfg.confidence * 100), stats_cfg.margin
    text = (
        f"Recommended: **{chosen}**, {main_metric} {row['mean']:.3f} "
        f"({pct}% CI {row['ci_low']:.3f}-{row['ci_high']:.3f}), "
        f"{_money(row['cost_per_1k_amortised'])} per 1,000 queries at {cost_cfg.query_volume:,} queries "
        f"(fixed {_money(row['cost_fixed'])}, per query {_money(row['cost_per_query'])}). "
    )
    if chosen == best:
        text += f"It has the best {main_metric}"
        others = [c for c in tied if c != chosen]
        text += f"; {', '.join(others)} are equivalent to it (within {margin}) but cost more." if others else "."
    else:
        b = stats.loc[best]
        text += (
            f"The best cell {best} ({main_metric} {b['mean']:.3f}, {_money(b['cost_per_1k_amortised'])} per 1,000 "
            f"queries) is not better by more than the margin {margin}: {chosen} differs by {_evidence(row, pct)}, "
            f"within +-{margin}, so the cheaper of the equivalent mixes wins."
        )
        volume = break_even(_cost(stats.loc[chosen]), _cost(stats.loc[best]))
        text += f" Break-even volume between {chosen} and {best}: {format_volume(volume)}."
    unclear = [c for c in stats.index if stats.loc[c, "verdict"] in ("inconclusive", "better")]
    if unclear:
        text += (
            f" Inconclusive against the best: {', '.join(unclear)} (their intervals reach beyond the margin on both "
            "sides of zero): more questions could change this verdict."
        )
    worse = [c for c in stats.index if stats.loc[c, "verdict"] == "worse"]
    if worse:
        text += f" Clearly worse: {', '.join(worse)}."
    text += under_trained_note([c for c in stats.index if stats.loc[c, "verdict"] == UNDER_TRAINED])
    if strength is not None:
        text += " " + strength.text()
    few = groups < stats_cfg.min_groups
    if few:
        text += (
            f" **Caution: only {groups} independent question groups** (fewer than statistics.min_groups = "
            f"{stats_cfg.min_groups}): intervals this wide leave most cells inconclusive. Evaluate more "
            "questions before acting on this; `register` refuses such a verdict unless allowed."
        )
    return {"cell": chosen, "best": best, "tied": tied, "text": text, "few_groups": few, "groups": groups}


def break_even_table(table: pd.DataFrame) -> pd.DataFrame:
    """Break-even query volume of every pair of cells (mix with the higher fixed cost named first)."""
    stats = table.set_index("cell")
    out = []
    names = stats.index.tolist()
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            ca, cb = _cost(stats.loc[a]), _cost(stats.loc[b])
            high, low = (a, b) if ca.fixed >= cb.fixed else (b, a)
            out.append({"higher_fixed": high, "lower_fixed": low, "break_even": format_volume(break_even(ca, cb))})
    return pd.DataFrame(out, columns=["higher_fixed", "lower_fixed", "break_even"])


def _cost(row: pd.Series) -> CellCost:
    return CellCost(row["cost_fixed"], row["cost_per_query"], row["cost_per_1k_queries"], row["cost_per_1k_amortised"])


def _money(value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"${value:,.2f}" if value >= 1 else f"${value:.2g}"


def pareto_front(table: pd.DataFrame, quality: str, cost: str) -> pd.Series:
    """True for the cells no other cell beats on both axes (quality at least as high, cost at most as high,
    one of them strictly)."""
    q, c = table[quality].to_numpy(), table[cost].to_numpy()
    front = [
        not any((q[j] >= q[i]) and (c[j] <= c[i]) and ((q[j] > q[i]) or (c[j] < c[i])) for j in range(len(q)))
        for i in range(len(q))
    ]
    return pd.Series(front, index=table.index)
