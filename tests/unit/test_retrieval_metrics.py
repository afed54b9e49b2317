import math

import pandas as pd
import pytest

from components.retrieval.metrics import (
    METRICS,
    hit_rate,
    latency_summary,
    ndcg,
    ranked_documents,
    recall,
    reciprocal_rank,
    score_question,
    score_retrieval,
    summarize_retrieval,
)


def test_documents_are_deduplicated_at_their_first_rank():
    assert ranked_documents(["a", "b", "a", "c", "b"]) == ["a", "b", "c"]


def test_single_gold_document_hand_computed():
    # chunks from docs x, g, g: the doc list is [x, g], gold g at rank 2
    retrieved, gold = ["x", "g", "g"], ["g"]
    assert hit_rate(retrieved, gold) == 1.0
    assert recall(retrieved, gold) == 1.0
    assert reciprocal_rank(retrieved, gold) == 0.5
    assert ndcg(retrieved, gold, k=3) == pytest.approx(1 / math.log2(3))  # 0.6309, ideal DCG = 1


def test_two_gold_documents_hand_computed():
    # doc list [a, x, b]; gold {a, b, c}: found a (rank 1) and b (rank 3)
    retrieved, gold = ["a", "x", "a", "b"], ["a", "b", "c"]
    assert recall(retrieved, gold) == pytest.approx(2 / 3)
    assert reciprocal_rank(retrieved, gold) == 1.0
    dcg = 1 / math.log2(2) + 1 / math.log2(4)  # 1 + 0.5
    ideal = 1 / math.log2(2) + 1 / math.log2(3) + 1 / math.log2(4)  # min(3 gold, k=4) = 3 ideal hits
    assert ndcg(retrieved, gold, k=4) == pytest.approx(dcg / ideal)  # 0.7039


def test_a_repeated_gold_document_counts_once():
    assert ndcg(["g", "g", "g"], ["g"], k=3) == 1.0
    assert recall(["g", "g"], ["g", "h"]) == 0.5


def test_a_miss_scores_zero():
    assert score_question(["x", "y"], ["g"], k=2) == dict.fromkeys(METRICS, 0.0)


def test_score_question_cuts_at_k():
    assert score_question(["x", "g"], ["g"], k=1)["hit_rate_at_k"] == 0.0


def test_score_and_summarize_over_questions():
    scores = score_retrieval([["g", "x"], ["x", "h"], ["y", "z"]], [["g"], ["h"], ["q"]], k=2)
    assert list(scores.columns) == list(METRICS)
    assert scores["mrr_at_k"].tolist() == [1.0, 0.5, 0.0]
    summary = summarize_retrieval(scores, [0.001, 0.002, 0.003, 0.010])
    assert summary["mrr_at_k"] == pytest.approx(0.5)
    assert summary["recall_at_k"] == pytest.approx(2 / 3)
    assert summary["retrieval_latency_p50_s"] == pytest.approx(0.0025)
    assert summary["questions"] == 3.0


def test_latency_percentiles():
    latencies = [i / 1000 for i in range(1, 101)]  # 1..100 ms
    summary = latency_summary(latencies)
    assert summary["retrieval_latency_p50_s"] == pytest.approx(0.0505)
    assert summary["retrieval_latency_p95_s"] == pytest.approx(0.09505)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="without gold doc_ids"):
        recall(["a"], [])
    with pytest.raises(ValueError, match="2 result lists for 1 questions"):
        score_retrieval([["a"], ["b"]], [["a"]], k=1)
    with pytest.raises(ValueError):
        summarize_retrieval(pd.DataFrame(columns=list(METRICS)), [])
