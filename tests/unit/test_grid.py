"""The grid: which cells, which retrievers (by dev scores), which few-shot examples."""

from __future__ import annotations

import pandas as pd
import pytest

from components.evaluation.grid import choose_retrievers, grid
from components.llm.generation import few_shot_turns
from tests.conftest import PARAMS, like

RETRIEVERS = PARAMS.retrieval.retrievers  # vector-minilm-k3, fulltext-k3, hybrid-rrf-k3
SCORES = {
    "vector-minilm-k3": {"recall_at_k": 0.86, "retrieval_latency_p50_s": 0.010},
    "fulltext-k3": {"recall_at_k": 0.90, "retrieval_latency_p50_s": 0.004},
    "hybrid-rrf-k3": {"recall_at_k": 0.92, "retrieval_latency_p50_s": 0.020},
}


def test_the_best_retrievers_on_dev_enter_the_grid_not_a_fixed_list():
    cfg = like(PARAMS.evaluation.grid, retrievers=None, metric="recall_at_k", margin=0.02, max_retrievers=3)
    assert choose_retrievers(SCORES, RETRIEVERS, cfg) == ["hybrid-rrf-k3", "fulltext-k3"]  # 0.86 is beyond the margin
    assert choose_retrievers(SCORES, RETRIEVERS, like(cfg, max_retrievers=1)) == ["hybrid-rrf-k3"]
    tied = {n: {**s, "recall_at_k": 1.0} for n, s in SCORES.items()}
    assert choose_retrievers(tied, RETRIEVERS, like(cfg, max_retrievers=1)) == ["fulltext-k3"]  # equal: the faster


def test_a_pinned_list_is_kept_and_missing_scores_are_an_error():
    pinned = like(PARAMS.evaluation.grid, retrievers=["vector-minilm-k3"])
    assert choose_retrievers(SCORES, RETRIEVERS, pinned) == ["vector-minilm-k3"]
    with pytest.raises(ValueError, match="no retriever has tune retrieval scores"):
        choose_retrievers({}, RETRIEVERS, like(pinned, retrievers=None))


def test_few_shot_cells_only_for_the_models_asked_and_each_model_adjacent():
    cells = grid(["lora"], ["vec"], few_shot_models=["base"], shots=3)
    assert [c.name for c in cells] == [
        "base+none",
        "base+vec",
        "base+none+3shot",
        "base+vec+3shot",
        "lora+none",
        "lora+vec",
    ]


def test_few_shot_examples_are_train_pairs_chosen_by_seed():
    train = pd.DataFrame(
        {
            "qa_id": [f"q{i}" for i in range(10)],
            "question": [f"Q{i}?" for i in range(10)],
            "answers": [[f"A{i}"] for i in range(10)],
        }
    )
    turns = few_shot_turns(PARAMS.evaluation.prompts, train, k=3, seed=0)
    assert len(turns) == 3 and turns == few_shot_turns(PARAMS.evaluation.prompts, train, k=3, seed=0)
    assert all(t[0].startswith("Question: Q") and t[1].startswith("A") for t in turns)
    assert turns != few_shot_turns(PARAMS.evaluation.prompts, train, k=3, seed=1)
    with pytest.raises(ValueError, match="need 11 train questions"):
        few_shot_turns(PARAMS.evaluation.prompts, train, k=11, seed=0)
