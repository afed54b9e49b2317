"""The leaderboard the dashboard leads with: one row per scored cell run, built from the decision.

Pure: :func:`leaderboard` reads a :class:`components.decision.select.Decision`; ``ragtune select``
hands the rows to ``components.tracking.mark_leaderboard``, which logs them on the pipeline run as a
table and puts each row's rank, verdict and family on its cell run. The decision tables' columns
are read by name (one line each), so a column they gain or lose changes one line here.
"""

from __future__ import annotations

import math
import numbers
import re
from dataclasses import dataclass

import pandas as pd

from components.decision.confirm import calibration, calibration_line
from components.decision.families import NO_RETRIEVAL, family

# MLflow 3.17's runs table shows about 22 characters of a run name in its default 190-pixel column:
# a cell run is named "<rank> <cell>", shortened to this many (the full name is its ragtune.cell tag).
RUN_NAME_CHARS = 21

COLUMNS = [
    "rank",  # the cell's rank on dev, the split that chose (its test row carries the same rank)
    "cell",
    "family",
    "split",
    "mean",  # the main metric on that split
    "interval",  # its bootstrap interval
    "verdict",  # against the best cell of that split
    "confirmation",  # the test split's word: on the recommended cell, and on each reference cell
    "recommended",  # True on the recommended cell's rows
    "cost_per_1k_amortised",
    "latency_p50_s",
    "run_id",
    "run_name",  # what the cell run is renamed to (run_name)
]


def _shorter(part: str) -> str:
    """A hyphenated name's first word and its words with a digit: "vector-minilm-k3" -> "vector-k3"."""
    words = part.split("-")
    return "-".join([words[0], *(w for w in words[1:] if any(ch.isdigit() for ch in w))])


def run_name(rank: int, cell: str, chars: int = RUN_NAME_CHARS) -> str:
    """``<rank> <cell>``, shortened step by step until it has at most ``chars`` characters.

    First a closed-book cell drops "+none" and a few-shot one writes "+3shot" as "+3s"; then the
    retriever, then the model keep their first word and the words with a digit; what is still too
    long is cut, ending in "…". The rank first keeps the names apart (a cell's dev and test runs share one).
    """
    model, *rest = [p for p in cell.split("+") if p != NO_RETRIEVAL]
    rest = [re.sub(r"^(\d+)shot$", r"\1s", p) for p in rest]
    steps = [
        [model, *(p for p in cell.split("+")[1:] if p != NO_RETRIEVAL)],
        [model, *rest],
        [model, *(_shorter(p) for p in rest)],
        [_shorter(model), *(_shorter(p) for p in rest)],
    ]
    for parts in steps:
        name = f"{rank} {'+'.join(parts)}"
        if len(name) <= chars:
            return name
    return name[: chars - 1] + "…"


def _number(row: pd.Series, key: str) -> float:
    value = row.get(key)
    return float(value) if isinstance(value, numbers.Real) and not isinstance(value, bool) else math.nan


def _family(row: pd.Series) -> str:
    return str(row["family"]) if "family" in row else family(row["model"], row["retriever"], int(row["shots"]))


def leaderboard(decision) -> pd.DataFrame:
    """One row per cell run: every cell on dev, the cells test scored on test; sorted by rank, dev first.

    The confirmation column: on the recommended cell's rows, the choice and the estimate test gave
    (``Confirmation.choice``, ``.estimate``); on a reference cell's test row, whether it beats the
    recommendation on test beyond the margin; empty elsewhere.
    """
    rank = dict(zip(decision.table["cell"], decision.table["rank"], strict=True))
    confirmation, chosen = decision.best.confirmation, decision.best.recommended.cell
    beats = {r.cell: "beats the recommendation" if r.beats else "does not beat it" for r in confirmation.references}
    rows = []
    for split, table in (("dev", decision.table), ("test", decision.test)):
        for _, row in (table if table is not None else pd.DataFrame()).iterrows():
            cell = row["cell"]
            if cell == chosen:
                note = f"recommended; test: {confirmation.choice}, estimate {confirmation.estimate}"
            else:
                note = beats.get(cell, "") if split == "test" else ""
            rows.append(
                {
                    "rank": int(rank[cell]),
                    "cell": cell,
                    "family": _family(row),
                    "split": split,
                    "mean": float(row["mean"]),
                    "interval": f"{row['ci_low']:.3f}-{row['ci_high']:.3f}",
                    "verdict": str(row.get("verdict", "")),
                    "confirmation": note,
                    "recommended": cell == chosen,
                    "cost_per_1k_amortised": _number(row, "cost_per_1k_amortised"),
                    "latency_p50_s": _number(row, "latency_p50_s"),
                    "run_id": row["run_id"],
                    "run_name": run_name(int(rank[cell]), cell),
                }
            )
    board = pd.DataFrame(rows, columns=COLUMNS)
    return board.sort_values(["rank", "split"], kind="stable").reset_index(drop=True)


def recommendation_text(decision) -> str:
    """The whole recommendation (dev), the confirmation (test) and the calibration line, as markdown."""
    confirmation = decision.best.confirmation.text
    return (
        f"## Recommendation (dev)\n\n{decision.recommendation['text']}\n\n## Confirmation (test)\n\n{confirmation}\n\n"
        f"{calibration_line(calibration(decision.table, decision.test))}\n"
    )


def headline(decision, main_metric: str) -> str:
    """One line for the experiment's description: the recommended cell, its dev score, test's word."""
    chosen, confirmation = decision.best.recommended, decision.best.confirmation
    return (
        f"Recommended: {chosen.cell}, {main_metric} {chosen.mean:.3f} on dev (CI {chosen.ci_low:.3f}-"
        f"{chosen.ci_high:.3f}); test: {confirmation.choice}, estimate {confirmation.estimate}. The whole decision: "
        "the pipeline run's leaderboard.json and recommendation.md."
    )


@dataclass(frozen=True)
class Leaderboard:
    """What the dashboard leads with (``components.tracking.mark_leaderboard``)."""

    main_metric: str
    board: pd.DataFrame  # leaderboard(): one row per cell run
    text: str  # recommendation_text(): the whole recommendation and confirmation
    headline: str  # headline(): one line


def for_dashboard(decision, main_metric: str) -> Leaderboard:
    """The leaderboard, the whole text and the headline of ``decision``."""
    board, text = leaderboard(decision), recommendation_text(decision)
    return Leaderboard(main_metric, board, text, headline(decision, main_metric))
