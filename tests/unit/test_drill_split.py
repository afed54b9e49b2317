import pandas as pd
import pytest

from components.evaluation.drill import (
    ArmResult,
    DrillSetup,
    change_facts,
    choose_arms,
    hold_back,
    to_markdown,
    training_inputs,
)
from components.evaluation.drill_run import drill_setup
from tests.conftest import PARAMS, best_file, choice, like


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


def test_hold_back_is_seeded_and_probes_only_dev_questions_about_new_documents():
    documents, qa = _corpus()
    split = hold_back(documents, qa, like(PARAMS.evaluation.drill, share=0.2, seed=3))
    again = hold_back(documents, qa, like(PARAMS.evaluation.drill, share=0.2, seed=3))
    new = set(split.new_documents["doc_id"])
    assert len(new) == 2 and new == set(again.new_documents["doc_id"])
    assert set(split.before_documents["doc_id"]) == set(documents["doc_id"]) - new
    assert all(set(d) <= new for d in split.probes["doc_ids"]) and len(split.probes) == 2
    assert set(split.probes["split"]) == {"dev"}  # never test: dev chooses, test confirms, and the drill does neither
    assert not any(set(d) & new for d in split.before_train["doc_ids"])
    assert len(split.after_train) == 10 and set(split.after_train["split"]) == {"train"}
    assert len(split.after_documents) == 10
    assert new != set(
        hold_back(documents, qa, like(PARAMS.evaluation.drill, share=0.2, seed=4)).new_documents["doc_id"]
    )


def test_hold_back_refuses_to_hold_back_everything_or_to_have_no_probe():
    documents, qa = _corpus(2)
    with pytest.raises(ValueError, match="holds back all"):
        hold_back(documents, qa, like(PARAMS.evaluation.drill, share=0.9))
    with pytest.raises(ValueError, match="no dev question"):
        hold_back(documents, qa.assign(split="train"), like(PARAMS.evaluation.drill, share=0.5))
    with pytest.raises(ValueError, match="no dev question"):
        hold_back(documents, qa.assign(split="test"), like(PARAMS.evaluation.drill, share=0.5))


def test_hold_back_draws_only_documents_that_have_probe_questions():
    documents, qa = _corpus()
    qa = qa[~qa["doc_ids"].map(lambda d: d[0] in {"d0", "d1", "d2"}) | (qa["split"] != "dev")]
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
    setup = DrillSetup(
        None, PARAMS.retrieval.retrievers[0], PARAMS.finetune.adapters[0], None, None, None, None, {}, {}, []
    )
    text = to_markdown([ArmResult("rag", 1.5, 0.0, 0.5, 0.2, 0.8, 0.1, 0.6)], split, setup, 0.95)
    assert "| rag | 1.5 | 0.000 | 0.500 (0.200-0.800) | 0.100 | 0.600 |" in text and "1 of 10 documents" in text
    assert "answered after (95% CI)" in text and "vector-minilm-k3" in text


def test_the_drill_drills_the_recommended_mix_and_borrows_what_it_lacks():
    cells = [{"model": "raft", "retriever": "vec"}, {"model": "base", "retriever": "bm25"}]
    none = like(PARAMS.evaluation.drill, retriever=None, adapter=None)
    assert choose_arms(none, cells, ["bm25", "vec"], ["lora", "raft"]) == ("vec", "raft")
    rag_only = [{"model": "base", "retriever": "bm25"}, {"model": "lora", "retriever": "none"}]
    assert choose_arms(none, rag_only, ["bm25", "vec"], ["lora", "raft"]) == ("bm25", "lora")
    pinned = like(none, retriever="vec", adapter="raft")
    assert choose_arms(pinned, rag_only, ["bm25", "vec"], ["lora", "raft"]) == ("vec", "raft")


def test_changed_facts_rewrite_the_held_back_documents_and_their_answers():
    documents, qa = _corpus()
    split = hold_back(documents, qa, like(PARAMS.evaluation.drill, share=0.2, seed=3))
    held = set(split.new_documents["doc_id"])
    changed_docs = documents.assign(text=documents["text"] + " (changed)")
    changed_qa = qa.assign(answers=[[f"new {a[0]}"] for a in qa["answers"]])
    facts = change_facts(split, changed_docs, changed_qa)
    assert len(facts.before_documents) == len(facts.after_documents) == 10  # every document known today
    after = facts.after_documents.set_index("doc_id")["text"]
    assert all(after[d].endswith("(changed)") for d in held) and not any(
        after[d].endswith("(changed)") for d in set(after.index) - held
    )
    assert all(a[0].startswith("new ") for a in facts.probes["answers"])  # probes expect the changed facts
    assert len(facts.before_train) == 10 and not any(a[0].startswith("new ") for a in facts.before_train["answers"])
    changed_train = facts.after_train[facts.after_train["doc_ids"].map(lambda d: bool(set(d) & held))]
    assert len(changed_train) and all(a[0].startswith("new ") for a in changed_train["answers"])
    with pytest.raises(ValueError, match="no changed version"):
        change_facts(split, changed_docs[~changed_docs["doc_id"].isin(held)], changed_qa)


def test_a_raft_recommendation_trains_on_its_own_retrievers_passages_with_the_snapshot_choice():
    # the recommended mix of both demos: the RAFT adapter (trained on vector-minilm-k3's passages) with another
    # retriever; the drill once crashed here ("no chunks given for raft retriever 'vector-minilm-k3'")
    raft = next(a for a in PARAMS.finetune.adapters if a.name == "raft-r8-qv")
    best = best_file(choice("raft-r8-qv+fulltext-k3"), few_shot_examples=[("q?", "a")])
    setup = drill_setup(PARAMS, best)
    assert (setup.retriever.name, setup.adapter.name) == ("fulltext-k3", "raft-r8-qv")
    assert set(setup.raft_chunkers) == {"vector-minilm-k3"} and setup.raft_top_k == {"vector-minilm-k3": 3}
    assert setup.adapter.eval_every == raft.eval_every and setup.adapter.patience == raft.patience  # as finetune
    assert setup.examples == [("q?", "a")]  # few-shot turns when the recommendation has them
    documents, qa = _corpus()
    qa = qa.assign(split=["tune" if i % 5 == 0 else s for i, s in enumerate(qa["split"])])
    split = hold_back(documents, qa, like(PARAMS.evaluation.drill, share=0.1))
    inputs = training_inputs(split.before_documents, split.before_train, split.tune, setup)
    assert set(inputs.chunks) == {"fulltext-k3", "vector-minilm-k3"}
    assert set(inputs.qa["split"]) == {"train", "tune"} and len(split.tune)
    assert not set(split.tune["qa_id"]) & set(split.probes["qa_id"])
