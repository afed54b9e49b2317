import pandas as pd
import pytest

from components.evaluation.answer import summarize
from components.evaluation.grid import Cell
from components.retrieval.metrics import METRICS, score_retrieval


def _rows(retrieved=None, gold=None, k=3):
    rows = pd.DataFrame(
        {
            "exact_match": [1.0, 0.0],
            "f1": [1.0, 0.5],
            "answer_contained": [1.0, 1.0],
            "answer_tokens": [1.0, 6.0],
            "latency_s": [0.1, 0.3],
            "prompt_tokens": [10, 20],
            "completion_tokens": [2, 4],
            "hit_cap": [False, True],
        }
    )
    if retrieved is not None:
        scores = score_retrieval(retrieved, gold, k)
        for name in METRICS:
            rows[name] = scores[name].to_numpy()
    return rows


def test_rag_cells_carry_the_retrieval_metrics():
    rows = _rows([["g", "x", "y"], ["x", "x", "h"]], [["g"], ["h"]])
    metrics = summarize(Cell("base", "hybrid-rrf-k3", 0), rows, [0.5, 1.5], [0.002, 0.004])
    assert metrics["recall_at_k"] == 1.0 and metrics["hit_rate_at_k"] == 1.0
    assert metrics["mrr_at_k"] == pytest.approx((1 + 1 / 2) / 2)  # h is the 2nd distinct document
    assert set(METRICS) <= set(metrics) and metrics["retrieval_latency_p50_s"] == pytest.approx(0.003)


def test_closed_book_cells_have_no_retrieval_metrics():
    metrics = summarize(Cell("base", "none", 0), _rows(), [0.5, 1.5], None)
    assert not set(METRICS) & set(metrics) and "retrieval_latency_p50_s" not in metrics


def test_latency_comes_from_the_timed_pass_and_the_cap_share_is_counted():
    metrics = summarize(Cell("base", "none", 3), _rows(), [0.5, 1.5], None)
    assert metrics["latency_p50_s"] == 1.0 and metrics["latency_mean_s"] == 1.0  # not the batch shares 0.1 / 0.3
    assert metrics["hit_cap_share"] == 0.5 and metrics["answer_contained"] == 1.0 and metrics["answer_tokens"] == 3.5
    assert Cell("base", "none", 3).name == "base+none+3shot" and Cell("lora", "vec", 0).name == "lora+vec"
