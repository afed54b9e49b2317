import pandas as pd
import pytest

from components.config import AdapterConfig
from components.finetune import IGNORE_INDEX, _batches, build_examples, plan_steps, qa_examples
from components.models import load_tokenizer


@pytest.fixture(scope="module")
def tokenizer(base_model_dir):
    return load_tokenizer(base_model_dir)


def test_qa_examples_train_on_the_answer_tokens_only(tokenizer, params):
    qa = pd.DataFrame({"question": ["What is the ISO 3166-1 alpha-3 code of Bolivia?"], "answers": [["BOL"]]})
    (example,) = qa_examples(qa, tokenizer, params.evaluation.prompts, max_length=128)
    supervised = [t for t, label in zip(example["input_ids"], example["labels"]) if label != IGNORE_INDEX]
    assert tokenizer.decode(supervised).strip() == "BOL<|im_end|>"
    assert example["labels"][0] == IGNORE_INDEX


def test_corpus_windows_cover_each_document(tokenizer, params):
    cfg = AdapterConfig(name="t", max_length=16, qa=False)
    docs = pd.DataFrame({"text": ["word " * 40, "short"]})
    examples = build_examples(docs, pd.DataFrame(), tokenizer, cfg, params.evaluation.prompts)
    assert all(len(e["input_ids"]) <= 16 and e["labels"] == e["input_ids"] for e in examples)
    assert len(examples) >= 3


def test_plan_steps_and_equal_batches_per_rank():
    cfg = AdapterConfig(name="t", batch_size=4, epochs=2)
    assert plan_steps(30, cfg, world_size=2) == 8
    assert plan_steps(30, cfg.model_copy(update={"max_steps": 3}), world_size=2) == 3
    examples = [{"input_ids": [1] * (i % 5 + 2), "labels": [1] * (i % 5 + 2)} for i in range(30)]
    ranks = [list(_batches(examples, r, 2, 4, 8, seed=0)) for r in range(2)]
    assert [len(r) for r in ranks] == [8, 8]
    ids, labels, mask = ranks[0][0]
    assert ids.shape == labels.shape == mask.shape and ids.shape[0] == 4
    assert (labels[mask == 0] == IGNORE_INDEX).all()
