"""Retrieval alone, without the LLM: each retriever scored on the questions of each split."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import pandas as pd

from components.retrieval.metrics import METRICS, score_retrieval, summarize_retrieval
from components.retrieval.search import Retriever

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetrieverEval:
    """A retriever's summary metrics per split, and one row per (split, question)."""

    splits: dict[str, dict[str, float]]
    questions: pd.DataFrame


def split_questions(qa: pd.DataFrame, split: str) -> pd.DataFrame:
    """The questions of ``split`` in a stable order (by ``qa_id``)."""
    return qa[qa["split"] == split].sort_values("qa_id").reset_index(drop=True)


def evaluate_retriever(retriever: Retriever, qa: pd.DataFrame, splits: list[str]) -> RetrieverEval:
    """Search every question of each split and score the hits against the gold documents.

    A split without questions is skipped with a warning.
    """
    summaries, tables = {}, []
    for split in splits:
        questions = split_questions(qa, split)
        if questions.empty:
            logger.warning("%s: the %s split holds no questions, skipped", retriever.cfg.name, split)
            continue
        hits, latencies = retriever.search(questions["question"].tolist())
        retrieved = [[h.doc_id for h in row] for row in hits]
        gold = [list(g) for g in questions["doc_ids"]]
        scores = score_retrieval(retrieved, gold, retriever.cfg.top_k)
        summaries[split] = summarize_retrieval(scores, latencies)
        tables.append(
            pd.DataFrame(
                {
                    "split": split,
                    "qa_id": questions["qa_id"],
                    "question": questions["question"],
                    "gold_doc_ids": gold,
                    "retrieved_doc_ids": retrieved,
                    "latency_s": latencies,
                }
            ).join(scores)
        )
    table = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
    return RetrieverEval(summaries, table)


def flat_metrics(result: RetrieverEval) -> dict[str, float]:
    """``<split>_<metric>`` for every split and metric: what the retriever's MLflow run logs."""
    return {f"{split}_{key}": value for split, summary in result.splits.items() for key, value in summary.items()}


def summary_line(name: str, result: RetrieverEval) -> str:
    """One line per retriever for the log: each split's metrics and p50 latency."""

    parts = [
        f"{split}: "
        + " ".join(f"{m.removesuffix('_at_k')} {scores[m]:.3f}" for m in METRICS)
        + f" p50 {scores['retrieval_latency_p50_s'] * 1e3:.1f} ms"
        for split, scores in result.splits.items()
    ]
    return f"{name:<28} " + "  ".join(parts)
