"""Paired bootstrap confidence intervals over the questions, and the tie rule.

Every cell answers the same questions, so resampling draws question indices once per resample and
applies them to every cell: the interval of a difference between two cells is paired, and much
narrower than two separate intervals would suggest.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from components.config import StatisticsConfig

logger = logging.getLogger(__name__)


def per_question(rows: pd.DataFrame, metric: str) -> pd.DataFrame:
    """The per-question scores as a questions x cells matrix (``rows`` has ``qa_id``, ``cell``, ``metric``).

    Raises:
        ValueError: the cells did not answer the same questions.
    """
    matrix = rows.pivot_table(index="qa_id", columns="cell", values=metric, aggfunc="first", dropna=False)
    if matrix.isna().any().any():
        missing = matrix.columns[matrix.isna().any()].tolist()
        raise ValueError(f"cells {missing} lack a {metric} score for some questions: cells must share the questions")
    return matrix


def bootstrap(matrix: pd.DataFrame, cfg: StatisticsConfig) -> pd.DataFrame:
    """Mean and interval of every cell, and of its difference to the best cell (paired resamples).

    Args:
        matrix: questions x cells scores (see :func:`per_question`).

    Returns:
        One row per cell (index: cell), best mean first, with ``mean``, ``ci_low``, ``ci_high``,
        ``diff`` (cell minus best), ``diff_low``, ``diff_high`` and ``tie`` (the interval of the
        difference contains zero; true for the best cell itself).
    """
    if matrix.empty:
        raise ValueError("no per-question scores to resample")
    scores = matrix.to_numpy(dtype=float)
    n = scores.shape[0]
    rng = np.random.default_rng(cfg.seed)
    idx = rng.integers(0, n, size=(cfg.resamples, n))
    means = scores[idx].mean(axis=1)  # resamples x cells
    observed = scores.mean(axis=0)
    best = int(np.argmax(observed))
    diffs = means - means[:, [best]]
    alpha = (1 - cfg.confidence) / 2
    q = [alpha, 1 - alpha]
    ci = np.quantile(means, q, axis=0)
    dci = np.quantile(diffs, q, axis=0)
    table = pd.DataFrame(
        {
            "mean": observed,
            "ci_low": ci[0],
            "ci_high": ci[1],
            "diff": observed - observed[best],
            "diff_low": dci[0],
            "diff_high": dci[1],
        },
        index=pd.Index(matrix.columns, name="cell"),
    )
    table["tie"] = (table["diff_low"] <= 0) & (table["diff_high"] >= 0)
    logger.info("bootstrap: %d resamples over %d questions, %d cells", cfg.resamples, n, len(table))
    return table.sort_values("mean", ascending=False, kind="stable")


def choose(stats: pd.DataFrame, cost_per_1k: pd.Series) -> tuple[str, list[str]]:
    """The recommended cell: the cheapest of the cells tied with the best one.

    Args:
        stats: :func:`bootstrap`'s table.
        cost_per_1k: cost per 1,000 queries (amortised) by cell.

    Returns:
        The chosen cell and the cells tied with the best (the best first).
    """
    tied = stats.index[stats["tie"]].tolist()
    chosen = min(tied, key=lambda c: (cost_per_1k[c], -stats.loc[c, "mean"]))
    return chosen, tied
