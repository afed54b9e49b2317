"""Per-question scores for the dashboard: each metric column of a cell's rows, computed again from one question.

A grid cell's rows (:func:`components.evaluation.answer.answer_cell`) carry one column per
per-question score. :data:`SCORED` maps each column the MLflow dashboard shows as an assessment to
a function that computes it from one answered question (the answer, the accepted answers, the gold
documents, the retrieved passages and their documents) with the same local HF ``evaluate`` module
(or retrieval metric) that produced the column: the assessment and the leaderboard cannot disagree.
Adding a metric column to the dashboard is one line in :data:`SCORED`; a column is scored only for
the cells whose rows carry it. ``components.tracking.scorers`` wraps these as MLflow ``@scorer``s.

Every function takes keyword arguments ``answer``, ``answers``, ``gold_doc_ids``, ``passages`` and
``doc_ids`` (``passages`` and ``doc_ids`` are None for a closed-book cell) and returns a float, or
None when the question is not scored (no context to support an answer, an empty answer).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import cache

from components.evaluation.metrics import load_metric
from components.retrieval.metrics import hit_rate

Score = Callable[..., float | None]


@cache
def _module(name: str):
    return load_metric(name)


def _per_example(module: str, key: str, **columns: list) -> float | None:
    """One example through a local evaluate module's own computation (``_compute``, what ``compute``
    runs after caching its inputs in Arrow files: ~15 µs a call against ~4 ms)."""
    value = _module(module)._compute(**columns)[key][0]
    return None if value is None or math.isnan(value) else float(value)


def against_answers(module: str, key: str) -> Score:
    """A score of the answer against the accepted answers (the module's ``predictions``, ``references``)."""

    def score(*, answer: str, answers: list[str], **_) -> float | None:
        return _per_example(module, key, predictions=[answer], references=[answers])

    return score


def against_passages(module: str, key: str) -> Score:
    """A score of the answer against the retrieved passages (``predictions``, ``contexts``); closed book: None."""

    def score(*, answer: str, passages: list[str] | None, **_) -> float | None:
        return None if passages is None else _per_example(module, key, predictions=[answer], contexts=[passages])

    return score


def retrieval_hit(*, doc_ids: list[str] | None, gold_doc_ids: list[str], **_) -> float | None:
    """1.0 when a retrieved chunk comes from a gold document (the rows' ``hit_rate_at_k``); closed book: None."""
    return None if doc_ids is None else hit_rate(doc_ids, gold_doc_ids)


# metric column of the rows -> how its assessment is computed; one line per column
SCORED: dict[str, Score] = {
    "exact_match": against_answers("qa_match", "exact_match_per_example"),
    "f1": against_answers("qa_match", "f1_per_example"),
    "rouge_l": against_answers("rouge_l", "rouge_l_per_example"),
    "answer_contained": against_answers("qa_match", "answer_contained_per_example"),
    "answer_support": against_passages("answer_support", "answer_support_per_example"),
    "hit_rate_at_k": retrieval_hit,
}


def scored(columns) -> dict[str, Score]:
    """The entries of :data:`SCORED` whose column is among ``columns`` (a cell's rows), in its order."""
    present = set(columns)
    return {name: score for name, score in SCORED.items() if name in present}
