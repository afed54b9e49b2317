"""Complementarity: which questions only RAG answers, only fine-tuning, both, or neither."""

from __future__ import annotations

import pandas as pd

from components.decision.statistics import per_question

CATEGORIES = ("both", "rag_only", "finetune_only", "neither")


def complementarity(rows: pd.DataFrame, cells: list[dict], main_metric: str, threshold: float) -> pd.DataFrame:
    """Which questions only RAG answers, only fine-tuning, both, or neither.

    RAG is the best base-model cell with a retriever; fine-tuning is the best adapter cell without
    retrieval; a question counts as answered when its ``main_metric`` is at least ``threshold``.
    ``combined`` says whether that adapter with that retriever answers it (when the cell exists).

    Returns:
        One row per question: ``qa_id``, ``question``, ``rag``, ``finetune``, ``combined``, ``category``;
        empty when the grid has no RAG or no fine-tuned cell.
    """
    frame = pd.DataFrame(cells)
    rag = frame[(frame["model"] == "base") & (frame["retriever"] != "none")]
    ft = frame[(frame["model"] != "base") & (frame["retriever"] == "none")]
    if rag.empty or ft.empty:
        return pd.DataFrame(columns=["qa_id", "question", "rag", "finetune", "combined", "category"])
    rag_cell = rag.sort_values(main_metric, ascending=False, kind="stable").iloc[0]
    ft_cell = ft.sort_values(main_metric, ascending=False, kind="stable").iloc[0]
    combined = f"{ft_cell['model']}+{rag_cell['retriever']}"
    answered = per_question(rows, main_metric) >= threshold
    out = pd.DataFrame(
        {
            "qa_id": answered.index,
            "rag": answered[rag_cell["cell"]].to_numpy(),
            "finetune": answered[ft_cell["cell"]].to_numpy(),
            "combined": answered[combined].to_numpy() if combined in answered else float("nan"),
        }
    )
    questions = rows.drop_duplicates("qa_id").set_index("qa_id")
    if "question" in questions:
        out.insert(1, "question", out["qa_id"].map(questions["question"]))
    out["category"] = [
        "both" if r and f else "rag_only" if r else "finetune_only" if f else "neither"
        for r, f in zip(out["rag"], out["finetune"], strict=True)
    ]
    out.attrs.update(rag_cell=rag_cell["cell"], finetune_cell=ft_cell["cell"], combined_cell=combined)
    return out
