"""The evaluation grid: {base, each adapter} x {no retrieval, each grid retriever}, and its questions.

Retrieval is computed once per retriever and shared by every model variant; each model variant is
loaded once and answers in every retrieval setting (:mod:`components.evaluation.run`).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from components.config import RetrieverConfig

NO_RETRIEVAL = "none"


@dataclass(frozen=True)
class Cell:
    """One grid cell: a model variant ("base" or an adapter name) and a retriever (or "none")."""

    model: str
    retriever: str

    @property
    def name(self) -> str:
        return f"{self.model}+{self.retriever}"


def grid(adapters: list[str], retrievers: list[str]) -> list[Cell]:
    """{base, each adapter} x {no retrieval, each retriever}, base and closed-book first."""
    return [Cell(m, r) for m in ["base", *adapters] for r in [NO_RETRIEVAL, *retrievers]]


def select_questions(qa: pd.DataFrame, split: str, max_questions: int | None) -> pd.DataFrame:
    """The questions of ``split``, in a stable order, cut to ``max_questions`` if set.

    Raises:
        ValueError: the split holds no questions.
    """
    questions = qa[qa["split"] == split].sort_values("qa_id").reset_index(drop=True)
    if questions.empty:
        raise ValueError(f"the {split!r} split holds no questions: check params/data.yaml:split")
    return questions.head(max_questions) if max_questions else questions


def grid_retrievers(wanted: list[str] | None, retrievers: list[RetrieverConfig]) -> list[str]:
    """The retrievers the LLM grid pairs with every model variant, in params order (``wanted`` None: all)."""
    return [r.name for r in retrievers if wanted is None or r.name in wanted]
