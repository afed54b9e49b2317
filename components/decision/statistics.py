"""Paired, grouped bootstrap intervals over the questions, and the verdict of each cell against the best.

Every cell answers the same questions, so one resample draws questions once and applies them to
every cell: the interval of a difference between two cells is paired, and much narrower than two
separate intervals would suggest. Questions that share a leakage group (paraphrases of one fact)
are not independent: the bootstrap draws *groups* with replacement and keeps each drawn group's
questions together, so paraphrase pairs do not pass for twice the evidence.

Each cell's difference to the best is judged against a margin of practical equivalence ``m``
with a simultaneous interval (Bonferroni over the comparisons with the best, so that all of them
hold together at the stated confidence):

- ``equivalent``: the whole interval lies within ``[-m, +m]``: as good as the best, for practice;
- ``worse``: the interval lies below zero and reaches below ``-m``: clearly worse;
- ``better``: the interval lies above zero (possible only when the best by mean is not clearly ahead);
- ``inconclusive``: anything else: the data cannot tell, more questions would.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from components.config import StatisticsConfig

logger = logging.getLogger(__name__)

VERDICTS = ("best", "better", "equivalent", "inconclusive", "worse")


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


def resample_weights(groups: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """How often each question is drawn in each resample (resamples x questions), by group.

    Each resample draws as many groups as there are, with replacement; every question of a drawn
    group comes along. With one group per question this is the ordinary bootstrap.
    """
    _, group_of = np.unique(groups, return_inverse=True)
    n_groups = int(group_of.max()) + 1
    rng = np.random.default_rng(seed)
    drawn = rng.integers(0, n_groups, size=(resamples, n_groups))
    counts = np.zeros((resamples, n_groups), dtype=np.int32)
    np.add.at(counts, (np.arange(resamples)[:, None], drawn), 1)
    return counts[:, group_of]


def verdict(low: float, high: float, margin: float) -> str:
    """The verdict of an interval of a difference to the best (see the module docstring)."""
    if -margin <= low and high <= margin:
        return "equivalent"
    if high < 0:
        return "worse"
    if low > 0:
        return "better"
    return "inconclusive"


def resampled_means(
    matrix: pd.DataFrame, cfg: StatisticsConfig, groups: pd.Series | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The observed mean of every cell and its mean in each grouped resample (resamples x cells).

    One resample draws question groups once for every cell, so differences between cells are paired.
    """
    if matrix.empty:
        raise ValueError("no per-question scores to resample")
    scores = matrix.to_numpy(dtype=float)
    weights = resample_weights(_group_keys(matrix, groups), cfg.resamples, cfg.seed)
    return scores.mean(axis=0), (weights @ scores) / weights.sum(axis=1, keepdims=True)


def compare_to(
    matrix: pd.DataFrame, reference: str, cfg: StatisticsConfig, groups: pd.Series | None = None
) -> pd.DataFrame:
    """Every cell against ``reference`` on paired, grouped resamples.

    Returns:
        One row per cell (index: cell, in ``matrix``'s order) with ``mean``, ``ci_low``, ``ci_high`` (its
        own interval), ``se`` (the standard deviation of its resampled means), ``diff`` (cell minus
        ``reference``), ``diff_low``, ``diff_high`` (simultaneous over the comparisons with ``reference``,
        Bonferroni).
    """
    observed, means = resampled_means(matrix, cfg, groups)
    ref = matrix.columns.get_loc(reference)
    diffs = means - means[:, [ref]]
    alpha = 1 - cfg.confidence
    comparisons = max(len(observed) - 1, 1)
    ci = np.quantile(means, [alpha / 2, 1 - alpha / 2], axis=0)
    dci = np.quantile(diffs, [alpha / (2 * comparisons), 1 - alpha / (2 * comparisons)], axis=0)
    return pd.DataFrame(
        {
            "mean": observed,
            "ci_low": ci[0],
            "ci_high": ci[1],
            "se": means.std(axis=0, ddof=1),
            "diff": observed - observed[ref],
            "diff_low": dci[0],
            "diff_high": dci[1],
        },
        index=pd.Index(matrix.columns, name="cell"),
    )


def bootstrap(matrix: pd.DataFrame, cfg: StatisticsConfig, groups: pd.Series | None = None) -> pd.DataFrame:
    """Mean and interval of every cell, and of its difference to the best cell (paired, grouped resamples).

    Args:
        matrix: questions x cells scores (see :func:`per_question`).
        groups: the leakage group of each question (index: qa_id); None: every question its own group.

    Returns:
        :func:`compare_to`'s table against the best cell (the highest mean), best first, with
        ``verdict`` and ``tie`` (as good as the best: the best itself, or equivalent).
    """
    if matrix.empty:
        raise ValueError("no per-question scores to resample")
    best = matrix.columns[int(np.argmax(matrix.to_numpy(dtype=float).mean(axis=0)))]
    table = compare_to(matrix, best, cfg, groups)
    bounds = zip(table["diff_low"], table["diff_high"], strict=True)
    table["verdict"] = [verdict(lo, hi, cfg.margin) for lo, hi in bounds]
    table.loc[best, "verdict"] = "best"
    table["tie"] = table["verdict"].isin(["best", "equivalent"])
    logger.info(
        "bootstrap: %d resamples, %d questions, %d groups, %d cells",
        cfg.resamples,
        len(matrix),
        count_groups(matrix, groups),
        len(table),
    )
    return table.sort_values("mean", ascending=False, kind="stable")


def _group_keys(matrix: pd.DataFrame, groups: pd.Series | None) -> np.ndarray:
    """The group of each question of ``matrix`` as strings; a question without one is its own group."""
    own = pd.Series(matrix.index, index=matrix.index)
    if groups is None:
        return own.astype(str).to_numpy()
    return groups.reindex(matrix.index).fillna(own).astype(str).to_numpy()


def count_groups(matrix: pd.DataFrame, groups: pd.Series | None) -> int:
    """How many independent units (leakage groups) the questions of ``matrix`` form."""
    return len(np.unique(_group_keys(matrix, groups)))


def choose(stats: pd.DataFrame, cost_per_1k: pd.Series) -> tuple[str, list[str]]:
    """The recommended cell: the cheapest of the best cell and those equivalent to it.

    Args:
        stats: :func:`bootstrap`'s table.
        cost_per_1k: cost per 1,000 queries (amortised) by cell.

    Returns:
        The chosen cell and the cells as good as the best (the best first).
    """
    tied = stats.index[stats["tie"]].tolist()
    chosen = min(tied, key=lambda c: (cost_per_1k[c], -stats.loc[c, "mean"]))
    return chosen, tied


def survivors(stats: pd.DataFrame) -> list[str]:
    """The cells not clearly worse than the best (the best, better, equivalent and inconclusive ones), best first."""
    return [c for c in stats.index if stats.loc[c, "verdict"] != "worse"]
