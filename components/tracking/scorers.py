"""Code-based MLflow scorers: per-question scores (``components.evaluation.scores``) as ``@scorer`` objects.

A scorer gets what MLflow hands it (the answer, the expectations, the trace), finds the question's
accepted answers and gold documents in its ``expected`` expectation and the retrieved passages in the trace's
retriever span, and calls the score. They are ordinary ``@scorer``s: ``mlflow.genai.evaluate``
accepts them too, offline and without any LLM judge. This module knows nothing of how a score is
computed: the caller passes the functions, so tracking does not depend on the evaluation code.
"""

from __future__ import annotations

from collections.abc import Callable

from mlflow.entities import SpanType
from mlflow.genai.scorers import Scorer, scorer

# The one expectation of a question: {"answers": accepted answers, "doc_ids": gold documents}. One, not
# two: the UI's trace tables show ten columns by default, expectations before assessments.
EXPECTED = "expected"


def fields(outputs, expectations: dict | None, documents: list[dict] | None) -> dict:
    """The keyword arguments of a score: answer, accepted answers and gold documents (the ``expected``
    expectation), retrieved passages and their documents (``documents``: the retriever span's outputs;
    None: closed book)."""
    expected = (expectations or {}).get(EXPECTED) or {}
    return {
        "answer": str(outputs or ""),
        "answers": [str(a) for a in expected.get("answers") or []],
        "gold_doc_ids": [str(d) for d in expected.get("doc_ids") or []],
        "passages": None if documents is None else [d["page_content"] for d in documents],
        "doc_ids": None if documents is None else [d["metadata"]["doc_uri"] for d in documents],
    }


def question_fields(outputs, expectations: dict | None, trace) -> dict:
    """:func:`fields` of a stored trace: the documents are its retriever span's outputs (no such span: closed book)."""
    retrieved = trace.search_spans(span_type=SpanType.RETRIEVER) if trace is not None else []
    return fields(outputs, expectations, (retrieved[0].outputs or []) if retrieved else None)


def mlflow_scorer(name: str, score: Callable[..., float | None]) -> Scorer:
    """The ``@scorer`` called ``name`` that computes ``score`` from a trace and its expectations."""

    def run(outputs, expectations=None, trace=None) -> float | None:
        return score(**question_fields(outputs, expectations, trace))

    return scorer(run, name=name, timeout=0)  # timeout 0: called in place, not in a thread per call


def scorers(scores: dict[str, Callable[..., float | None]]) -> list[Scorer]:
    """One ``@scorer`` per entry of ``scores`` (column name -> score function)."""
    return [mlflow_scorer(name, score) for name, score in scores.items()]
