"""Training data without a model: RAFT passages, source weights, planned steps, and the sources' params."""

import pandas as pd
import pytest

from components.config import load_params
from components.training.examples import raft_contexts, weighted
from components.training.trainer import plan_steps
from tests.conftest import PARAMS, REPO, like


def _qa(rows: list[tuple[str, str, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "question": [q for q, _, _, _ in rows],
            "answers": [[a] for _, a, _, _ in rows],
            "doc_ids": [[d] for _, _, d, _ in rows],
            "split": [s for _, _, _, s in rows],
        }
    )


CHUNKS = pd.DataFrame(
    {
        "doc_id": ["d/BO", "d/BO", "d/AD", "d/FR", "d/DE", "d/IT"],
        "text": [
            "Bolivia is a country in South America.",
            "ISO 3166-1 assigns Bolivia the alpha-3 code BOL.",
            "Andorra has the alpha-3 code AND.",
            "France has the alpha-3 code FRA.",
            "Germany has the alpha-3 code DEU.",
            "Italy has the alpha-3 code ITA.",
        ],
    }
)
QA = _qa(
    [
        ("What is the alpha-3 code of Bolivia?", "BOL", "d/BO", "train"),
        ("What is the alpha-3 code of Andorra?", "AND", "d/AD", "train"),
        ("What is the alpha-3 code of France?", "FRA", "d/FR", "test"),
        ("What is the alpha-3 code of Italy?", "ITA", "d/IT", "dev"),
    ]
)


@pytest.mark.parametrize("p_gold, expected", [(1.0, True), (0.0, False)])
def test_raft_gold_kept_with_probability_p_and_distractors_from_other_docs(p_gold, expected):
    contexts = raft_contexts(QA, CHUNKS, top_k=3, p_gold=p_gold, seed=0)
    for (_, passages, kept), doc in zip(contexts, ["d/BO", "d/AD", "d/FR", "d/IT"], strict=True):
        gold_texts = set(CHUNKS.loc[CHUNKS["doc_id"] == doc, "text"])
        assert kept is expected and len(passages) == 3 and len(set(passages)) == 3
        assert sum(p in gold_texts for p in passages) == int(expected)
    assert raft_contexts(QA, CHUNKS, 3, 0.5, seed=1) == raft_contexts(QA, CHUNKS, 3, 0.5, seed=1)  # deterministic


def test_raft_gold_rate_follows_p():
    many = pd.concat([QA] * 50, ignore_index=True)
    kept = [k for _, _, k in raft_contexts(many, CHUNKS, top_k=2, p_gold=0.7, seed=3)]
    assert 0.55 < sum(kept) / len(kept) < 0.85


def test_weights_repeat_and_sample():
    examples = [{"input_ids": [i], "labels": [i]} for i in range(10)]
    assert len(weighted(examples, 2.0, 0)) == 20 and len(weighted(examples, 0.5, 0)) == 5
    assert weighted(examples, 0.5, 0) == weighted(examples, 0.5, 0)


def test_plan_steps_counts_gradient_accumulation():
    cfg = like(PARAMS.finetune.adapters[0], name="t", batch_size=4, grad_accum=1, epochs=2, max_steps=None)
    assert plan_steps(30, cfg, world_size=2) == 8
    assert plan_steps(30, cfg.model_copy(update={"grad_accum": 2}), world_size=2) == 4
    assert plan_steps(30, cfg.model_copy(update={"max_steps": 3}), world_size=2) == 3


def test_params_validate_sources(tmp_path):
    import shutil

    from components.config import ConfigError

    shutil.copytree(REPO / "params", tmp_path / "params")
    path = tmp_path / "params" / "finetune.yaml"
    path.write_text(path.read_text().replace("retriever: vector-minilm-k3", "retriever: nope"))
    with pytest.raises(ConfigError, match="raft retriever 'nope' is unknown"):
        load_params(tmp_path / "params")
    path.write_text(path.read_text().replace("source: raft", "source: rafts"))
    with pytest.raises(ConfigError, match="finetune.yaml: adapters.1.data.0"):
        load_params(tmp_path / "params")


def test_the_gold_passage_is_the_chunk_holding_the_answer_not_the_documents_first():
    contexts = raft_contexts(QA, CHUNKS, top_k=3, p_gold=1.0, seed=0)
    assert "ISO 3166-1 assigns Bolivia the alpha-3 code BOL." in contexts[0][1]
    assert "Bolivia is a country in South America." not in contexts[0][1]
