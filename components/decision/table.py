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
from components.decision.statistics import bootstrap, choose, per_question

logger = logging.getLogger(__name__)


def decision_table(
    cells: list[dict],
    rows: pd.DataFrame,
    main_metric: str,
    stats_cfg: StatisticsConfig,
    cost_cfg: CostConfig,
    train: dict[str, dict],
    index_time_s: dict[str, float],
) -> pd.DataFrame:
    """One row per cell, best first: its metrics, bootstrap interval, difference to the best, costs.

    Args:
        cells: ``cells.json``'s cells (``cell``, ``model``, ``retriever`` and metrics).
        rows: the per-question predictions with a ``cell`` column.
        train: ``finetune.json`` (adapter -> wall_time_s, workers).
        index_time_s: build seconds of each retriever's table (missing: counted as 0).
    """
    if not cells:
        raise ValueError("no evaluated cells to rank")
    stats = bootstrap(per_question(rows, main_metric), stats_cfg)
    table = pd.DataFrame(cells).set_index("cell")
    for cell, info in table.iterrows():
        fixed = fixed_seconds(
            train.get(info["model"]), None if info["retriever"] == "none" else index_time_s.get(info["retriever"], 0.0)
        )
        for key, value in cell_cost(info.to_dict(), fixed, cost_cfg).as_dict().items():
            table.loc[cell, key] = value
    table = stats.join(table, how="left")
    table.insert(0, "rank", range(1, len(table) + 1))
    return table.reset_index()


def recommend(
    table: pd.DataFrame,
    main_metric: str,
    stats_cfg: StatisticsConfig,
    cost_cfg: CostConfig,
    questions: int | None = None,
) -> dict:
    """The chosen cell and one paragraph saying why, generated from the numbers.

    The best cell has the highest mean; every cell whose paired interval of the difference to it
    contains zero is a tie, and among ties the cheapest per 1,000 queries (fixed cost amortised
    over ``cost_cfg.query_volume``) wins. With fewer than ``stats_cfg.min_questions`` evaluated
    ``questions`` the intervals are wide enough that most cells tie, so the cheapest tends to win
    by default: the rule still applies, and the text says so (``few_questions`` in the result).
    """
    stats = table.set_index("cell")
    chosen, tied = choose(stats, stats["cost_per_1k_amortised"])
    best = stats.index[0]
    row = stats.loc[chosen]
    pct = round(stats_cfg.confidence * 100)
    text = (
        f"Recommended: **{chosen}**, {main_metric} {row['mean']:.3f} "
        f"({pct}% CI {row['ci_low']:.3f}-{row['ci_high']:.3f}), "
        f"{_money(row['cost_per_1k_amortised'])} per 1,000 queries at {cost_cfg.query_volume:,} queries "
        f"(fixed {_money(row['cost_fixed'])}, per query {_money(row['cost_per_query'])}). "
    )
    others = [c for c in tied if c != chosen]
    if chosen == best and not others:
        runner = stats.index[1] if len(stats) > 1 else None
        text += "It is the best cell and no other cell ties with it"
        if runner is not None:
            r = stats.loc[runner]
            text += (
                f": the runner-up {runner} scores {r['diff']:+.3f} "
                f"(CI {r['diff_low']:+.3f} to {r['diff_high']:+.3f}), an interval that excludes zero"
            )
        text += "."
    elif chosen == best:
        text += (
            f"It has the best {main_metric}; {', '.join(others)} tie with it (the {pct}% interval of the "
            f"difference contains zero) but cost more per 1,000 queries."
        )
    else:
        b = stats.loc[best]
        text += (
            f"The best cell {best} ({main_metric} {b['mean']:.3f}, {_money(b['cost_per_1k_amortised'])} per 1,000 "
            f"queries) is not significantly better: the difference {row['diff']:+.3f} has a {pct}% interval "
            f"{row['diff_low']:+.3f} to {row['diff_high']:+.3f}, which contains zero, so the cheaper mix wins "
            f"({len(tied)} cells tie)."
        )
    if chosen != best:
        volume = break_even(_cost(stats.loc[chosen]), _cost(stats.loc[best]))
        text += f" Break-even volume between {chosen} and {best}: {format_volume(volume)}."
    few = questions is not None and questions < stats_cfg.min_questions
    if few:
        text += (
            f" **Caution: only {questions} questions** (fewer than statistics.min_questions = "
            f"{stats_cfg.min_questions}): intervals this wide make most cells tie, so the cheapest tied "
            "cell wins almost by default. Evaluate more questions (evaluation.max_questions, or a larger "
            "test split) before acting on this."
        )
    return {"cell": chosen, "best": best, "tied": tied, "text": text, "few_questions": few}


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
