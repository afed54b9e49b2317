import math

import pytest

from components.config import CostConfig
from components.decision.cost import NEVER, CellCost, break_even, cell_cost, fixed_seconds, format_volume

CFG = CostConfig(cpu_hour=3.6, per_1k_tokens=0.5, query_volume=1000)


def test_fixed_seconds_is_training_times_workers_plus_index_build():
    assert fixed_seconds({"compute_s": 100.0, "wall_time_s": 5.0, "workers": 2}, 30.0) == 230.0  # not a resume's wall
    assert fixed_seconds(None, None) == 0.0


def test_cell_cost_by_hand():
    metrics = {
        "latency_p50_s": 1.0,
        "retrieval_latency_p50_s": 1.0,
        "prompt_tokens_mean": 150,
        "completion_tokens_mean": 50,
    }
    cost = cell_cost(metrics, fixed_s=1000.0, cfg=CFG)
    # 2 s at 3.6/h = 0.002; 200 tokens at 0.5/1k = 0.1
    assert cost.per_query == pytest.approx(0.102)
    assert cost.fixed == pytest.approx(1.0)
    assert cost.per_1k_queries == pytest.approx(102.0)
    assert cost.per_1k_amortised == pytest.approx(102.0 + 1.0)  # 1.0 over 1000 queries, x1000


def test_break_even_volume_and_never():
    trained = CellCost(fixed=10.0, per_query=0.01, per_1k_queries=10.0, per_1k_amortised=0.0)
    rag = CellCost(fixed=0.0, per_query=0.02, per_1k_queries=20.0, per_1k_amortised=0.0)
    assert break_even(trained, rag) == pytest.approx(1000.0)
    assert break_even(rag, trained) == pytest.approx(1000.0)
    dearer = CellCost(fixed=10.0, per_query=0.03, per_1k_queries=30.0, per_1k_amortised=0.0)
    assert break_even(dearer, rag) == NEVER and format_volume(NEVER) == "never"
    assert format_volume(1234.4) == "1,234 queries"
    assert math.isinf(break_even(rag, rag))  # same fixed cost: nothing is ever overtaken
