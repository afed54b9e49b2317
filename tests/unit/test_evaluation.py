import pandas as pd
import pytest

from components.evaluation.answer import Cell, summarize
from components.retrieval.metrics import METRICS, score_retrieval


def _rows(retrieved=None, gold=None, k=3):
    rows = pd.DataFrame(
        {
            "exact_match": [1.0, 0.0],
            "f1": [1.0, 0.5],
            "latency_s": [0.1, 0.3],
            "prompt_tokens": [10, 20],
            "completion_tokens": [2, 4],
        }
    )
    if retrieved is not None:
        scores = score_retrieval(retrieved, gold, k)
        for name in METRICS:
            rows[name] = scores[name].to_numpy()
    return rows


def test_rag_cells_carry_the_retrieval_metrics():
    rows = _rows([["g", "x", "y"], ["x", "x", "h"]], [["g"], ["h"]])
    metrics = summarize(Cell("base", "hybrid-rrf-k3"), rows, [0.002, 0.004])
    assert metrics["recall_at_k"] == 1.0 and metrics["hit_rate_at_k"] == 1.0
    assert metrics["mrr_at_k"] == pytest.approx((1 + 1 / 2) / 2)  # h is the 2nd distinct document
    assert set(METRICS) <= set(metrics) and metrics["retrieval_latency_p50_s"] == pytest.approx(0.003)


def test_closed_book_cells_have_no_retrieval_metrics():
    metrics = summarize(Cell("base", "none"), _rows(), None)
    assert not set(METRICS) & set(metrics) and "retrieval_latency_p50_s" not in metrics
