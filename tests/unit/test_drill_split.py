import pandas as pd
import pytest

from components.evaluation.drill import ArmResult, hold_back, to_markdown
from tests.conftest import PARAMS, like


def _corpus(n_docs: int = 10) -> tuple[pd.DataFrame, pd.DataFrame]:
    documents = pd.DataFrame({"doc_id": [f"d{i}" for i in range(n_docs)], "text": [f"text {i}" for i in range(n_docs)]})
    splits = ["train", "dev", "test"]
    qa = pd.DataFrame(
        {
            "qa_id": [f"q{i:02d}" for i in range(3 * n_docs)],
            "question": [f"question {i}" for i in range(3 * n_docs)],
            "answers": [[f"a{i}"] for i in range(3 * n_docs)],
            "doc_ids": [[f"d{i // 3}"] for i in range(3 * n_docs)],
            "split": [splits[i % 3] for i in range(3 * n_docs)],
        }
    )
    return documents, qa


def test_hold_back_is_seeded_and_probes_only_untrained_questions_about_new_documents():
    documents, qa = _corpus()
    split = hold_back(documents, qa, like(PARAMS.evaluation.drill, share=0.2, seed=3))
    again = hold_back(documents, qa, like(PARAMS.evaluation.drill, share=0.2, seed=3))
    new = set(split.new_documents["doc_id"])
    assert len(new) == 2 and new == set(again.new_documents["doc_id"])
    assert set(split.old_documents["doc_id"]) == set(documents["doc_id"]) - new
    assert all(set(d) <= new for d in split.probes["doc_ids"]) and len(split.probes) == 4
    assert set(split.probes["split"]) == {"dev", "test"}
    assert not any(set(d) & new for d in split.old_train["doc_ids"])
    assert len(split.all_train) == 10 and set(split.all_train["split"]) == {"train"}
    assert new != set(
        hold_back(documents, qa, like(PARAMS.evaluation.drill, share=0.2, seed=4)).new_documents["doc_id"]
    )


def test_hold_back_refuses_to_hold_back_everything_or_to_have_no_probe():
    documents, qa = _corpus(2)
    with pytest.raises(ValueError, match="holds back all"):
        hold_back(documents, qa, like(PARAMS.evaluation.drill, share=0.9))
    with pytest.raises(ValueError, match="no dev/test question"):
        hold_back(documents, qa.assign(split="train"), like(PARAMS.evaluation.drill, share=0.5))


def test_hold_back_draws_only_documents_that_have_probe_questions():
    documents, qa = _corpus()
    qa = qa[~qa["doc_ids"].map(lambda d: d[0] in {"d0", "d1", "d2"}) | (qa["split"] == "train")]
    for seed in range(5):
        split = hold_back(documents, qa, like(PARAMS.evaluation.drill, share=0.5, seed=seed))
        assert len(split.new_documents) == 5 and not set(split.new_documents["doc_id"]) & {"d0", "d1", "d2"}
    # more wanted than have probes: every document with a probe, no more
    assert len(hold_back(documents, qa, like(PARAMS.evaluation.drill, share=0.8)).new_documents) == 7
    assert len(hold_back(documents, qa, like(PARAMS.evaluation.drill, share=0.1)).new_documents) == 1


def test_drill_table_has_a_row_per_arm():
    documents, qa = _corpus()
    split = hold_back(documents, qa, like(PARAMS.evaluation.drill, share=0.1, max_questions=1))
    assert len(split.probes) == 1
    text = to_markdown([ArmResult("rag", 1.5, 0.0, 0.1, 0.5, 0.6)], split)
    assert "| rag | 1.5 | 0.000 | 0.100 | 0.500 | 0.600 |" in text and "1 of 10 documents" in text
