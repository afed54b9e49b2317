"""Retrieval metrics against gold documents: hit rate, recall, MRR and nDCG at k, latency.

Relevance is kept at document level (a chunk is relevant when its ``doc_id`` is one of the
question's gold ``doc_ids``), so re-chunking never changes what counts as relevant. The top-k
chunks are first turned into a ranked list of documents by keeping each document at its first
(best) rank and dropping its later chunks; every metric is computed on that list. So several
chunks of one gold document count once (recall cannot exceed 1, nDCG cannot exceed 1), and a
second chunk of an already seen document neither helps nor pushes later documents down.
Relevance is binary. With k the retriever's ``top_k`` (chunks), the document list holds at most k
documents:

- ``hit_rate_at_k``: 1 when any gold document is retrieved;
- ``recall_at_k``: the share of the gold documents retrieved;
- ``mrr_at_k``: 1 / (rank of the first gold document in the document list), 0 when none;
- ``ndcg_at_k``: sum of 1 / log2(rank + 1) over gold documents in the list, divided by the same
  sum for an ideal list holding min(#gold, k) gold documents first.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

METRICS = ("hit_rate_at_k", "recall_at_k", "mrr_at_k", "ndcg_at_k")


def ranked_documents(doc_ids: Sequence[str]) -> list[str]:
    """Document ids in rank order, each kept at its first occurrence."""
    return list(dict.fromkeys(doc_ids))


def _checked(gold: Sequence[str]) -> set[str]:
    if not gold:
        raise ValueError("a question without gold doc_ids cannot be scored for retrieval")
    return set(gold)


def hit_rate(doc_ids: Sequence[str], gold: Sequence[str]) -> float:
    """1.0 when any retrieved chunk comes from a gold document, else 0.0."""
    wanted = _checked(gold)
    return float(any(d in wanted for d in doc_ids))


def recall(doc_ids: Sequence[str], gold: Sequence[str]) -> float:
    """Share of the gold documents among the retrieved ones."""
    wanted = _checked(gold)
    return len(wanted & set(doc_ids)) / len(wanted)


def reciprocal_rank(doc_ids: Sequence[str], gold: Sequence[str]) -> float:
    """1 / rank of the first gold document in the de-duplicated document list, 0.0 when none."""
    wanted = _checked(gold)
    for rank, doc in enumerate(ranked_documents(doc_ids), start=1):
        if doc in wanted:
            return 1.0 / rank
    return 0.0


def ndcg(doc_ids: Sequence[str], gold: Sequence[str], k: int) -> float:
    """Binary-relevance nDCG of the de-duplicated document list, ideal = min(#gold, k) hits first."""
    wanted = _checked(gold)
    ranked = ranked_documents(doc_ids)[:k]
    dcg = sum(1.0 / math.log2(rank + 1) for rank, doc in enumerate(ranked, start=1) if doc in wanted)
    ideal = sum(1.0 / math.log2(rank + 1) for rank in range(1, min(len(wanted), k) + 1))
    return dcg / ideal


def score_question(doc_ids: Sequence[str], gold: Sequence[str], k: int) -> dict[str, float]:
    """Every metric for one question's top-k retrieved chunk doc ids (best first)."""
    top = list(doc_ids)[:k]
    return {
        "hit_rate_at_k": hit_rate(top, gold),
        "recall_at_k": recall(top, gold),
        "mrr_at_k": reciprocal_rank(top, gold),
        "ndcg_at_k": ndcg(top, gold, k),
    }


def score_retrieval(retrieved: Sequence[Sequence[str]], gold: Sequence[Sequence[str]], k: int) -> pd.DataFrame:
    """One row of metrics per question.

    Args:
        retrieved: per question, the doc ids of the retrieved chunks, best first.
        gold: per question, its gold doc ids.
        k: the cut-off (the retriever's ``top_k``).
    """
    if len(retrieved) != len(gold):
        raise ValueError(f"{len(retrieved)} result lists for {len(gold)} questions")
    return pd.DataFrame([score_question(r, g, k) for r, g in zip(retrieved, gold, strict=True)], columns=list(METRICS))


def latency_summary(latencies_s: Sequence[float]) -> dict[str, float]:
    """Query latency p50 and p95 in seconds."""
    if not len(latencies_s):
        raise ValueError("no latencies to summarise")
    return {
        "retrieval_latency_p50_s": float(np.percentile(latencies_s, 50)),
        "retrieval_latency_p95_s": float(np.percentile(latencies_s, 95)),
    }


def summarize_retrieval(per_question: pd.DataFrame, latencies_s: Sequence[float]) -> dict[str, float]:
    """Mean of each metric over the questions, plus latency p50/p95 and the question count."""
    summary = {name: float(per_question[name].mean()) for name in METRICS}
    summary.update(latency_summary(latencies_s))
    summary["questions"] = float(len(per_question))
    return summary
