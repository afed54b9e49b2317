"""The evaluation grid: {base, each adapter} x {no retrieval, each grid retriever}, and its questions.

Retrieval is computed once per retriever and shared by every model variant; each model variant is
loaded once and answers in every retrieval setting (:mod:`components.evaluation.run`).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from components.config import GridConfig, RetrieverConfig
from components.decision.families import NO_RETRIEVAL, family


@dataclass(frozen=True)
class Cell:
    """One grid cell: a model variant ("base" or an adapter name), a retriever (or "none"), and how many
    few-shot examples its prompt shows (0: none)."""

    model: str
    retriever: str
    shots: int

    @property
    def name(self) -> str:
        return f"{self.model}+{self.retriever}" + (f"+{self.shots}shot" if self.shots else "")

    @property
    def family(self) -> str:
        return family(self.model, self.retriever, self.shots)


def grid(adapters: list[str], retrievers: list[str], few_shot_models: list[str], shots: int) -> list[Cell]:
    """{base, each adapter} x {no retrieval, each retriever}, plus the few-shot prompt for ``few_shot_models``.

    The cells of one model are adjacent (each model variant is loaded once).
    """
    cells = []
    for model in ["base", *adapters]:
        counts = [0, shots] if model in few_shot_models else [0]
        cells += [Cell(model, r, k) for k in counts for r in [NO_RETRIEVAL, *retrievers]]
    return cells


def select_questions(qa: pd.DataFrame, split: str, max_questions: int | None) -> pd.DataFrame:
    """The questions of ``split``, in a stable order, cut to ``max_questions`` if set.

    Raises:
        ValueError: the split holds no questions.
    """
    questions = qa[qa["split"] == split].sort_values("qa_id").reset_index(drop=True)
    if questions.empty:
        raise ValueError(f"the {split!r} split holds no questions: check params/data.yaml:split")
    return questions.head(max_questions) if max_questions else questions


def choose_retrievers(
    tune_scores: dict[str, dict[str, float]], retrievers: list[RetrieverConfig], grid: GridConfig
) -> list[str]:
    """The retrievers the LLM grid pairs with every model: pinned in params, or chosen by their tune scores.

    Chosen: the best by ``grid.metric`` on the tuning slice and any within ``grid.margin`` of it, best first
    (then faster), at most ``grid.max_retrievers``. Retrievers without tune scores are not chosen. The
    choice is made on tune, not dev: dev then chooses the cell without reusing its own evidence.

    Args:
        tune_scores: retriever -> its retrieval-only metrics on the tune split (``retrieval.json``).
    """
    if grid.retrievers is not None:
        return [r.name for r in retrievers if r.name in grid.retrievers]
    scored = [r.name for r in retrievers if r.name in tune_scores]
    if not scored:
        raise ValueError(
            "no retriever has tune retrieval scores: run `ragtune retrieval-eval` with tune in "
            "params/retrieval.yaml:eval_splits, and give params/data.yaml:split.tune a share"
        )
    top = max(tune_scores[n][grid.metric] for n in scored)
    near = [n for n in scored if tune_scores[n][grid.metric] >= top - grid.margin]
    near.sort(key=lambda n: (-tune_scores[n][grid.metric], tune_scores[n]["retrieval_latency_p50_s"]))
    return near[: grid.max_retrievers]
