import pandas as pd
import pytest

from components.config import AdapterConfig, CorpusSource, QASource, RaftSource, load_params
from components.finetune import (
    IGNORE_INDEX,
    TrainingInputs,
    build_examples,
    plan_steps,
    qa_examples,
    raft_contexts,
    raft_examples,
    weighted,
)
from components.generation import chat_prompt, user_message
from components.models import load_tokenizer


@pytest.fixture(scope="module")
def tokenizer(base_model_dir):
    return load_tokenizer(base_model_dir)


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


def _supervised(example: dict, tokenizer) -> str:
    return tokenizer.decode(
        [t for t, label in zip(example["input_ids"], example["labels"], strict=True) if label != IGNORE_INDEX]
    )


def test_qa_examples_train_on_the_answer_tokens_only(tokenizer, params):
    qa = pd.DataFrame({"question": ["What is the ISO 3166-1 alpha-3 code of Bolivia?"], "answers": [["BOL"]]})
    (example,) = qa_examples(qa, tokenizer, params.evaluation.prompts, max_length=128)
    assert _supervised(example, tokenizer).strip() == "BOL<|im_end|>"
    assert example["labels"][0] == IGNORE_INDEX


def test_corpus_windows_cover_each_document(tokenizer, params):
    cfg = AdapterConfig(name="t", max_length=16, data=[CorpusSource(source="corpus")])
    inputs = TrainingInputs(documents=pd.DataFrame({"text": ["word " * 40, "short"]}), qa=pd.DataFrame())
    examples = build_examples(inputs, tokenizer, cfg, params.evaluation.prompts)
    assert all(len(e["input_ids"]) <= 16 and e["labels"] == e["input_ids"] for e in examples)
    assert len(examples) >= 3


@pytest.mark.parametrize("p_gold, expected", [(1.0, True), (0.0, False)])
def test_raft_gold_kept_with_probability_p_and_distractors_from_other_docs(p_gold, expected):
    contexts = raft_contexts(QA, CHUNKS, top_k=3, p_gold=p_gold, seed=0)
    for (_, passages, kept), doc in zip(contexts, ["d/BO", "d/AD", "d/FR", "d/IT"], strict=True):
        gold_texts = set(CHUNKS.loc[CHUNKS["doc_id"] == doc, "text"])
        assert kept is expected and len(passages) == 3 and len(set(passages)) == 3
        assert sum(p in gold_texts for p in passages) == int(expected)
    # the gold chunk is the one holding the answer, not merely the document's first chunk
    assert "ISO 3166-1 assigns Bolivia the alpha-3 code BOL." in contexts[0][1] if expected else True
    assert raft_contexts(QA, CHUNKS, 3, 0.5, seed=1) == raft_contexts(QA, CHUNKS, 3, 0.5, seed=1)  # deterministic


def test_raft_gold_rate_follows_p():
    many = pd.concat([QA] * 50, ignore_index=True)
    kept = [k for _, _, k in raft_contexts(many, CHUNKS, top_k=2, p_gold=0.7, seed=3)]
    assert 0.55 < sum(kept) / len(kept) < 0.85


def test_raft_prompt_is_the_evaluations_with_context_prompt_and_loss_on_answer(tokenizer, params):
    prompts = params.evaluation.prompts
    train = QA[QA["split"] == "train"]
    examples = raft_examples(train, CHUNKS, tokenizer, prompts, max_length=512, top_k=3, p_gold=1.0, seed=0)
    (question, passages, _) = raft_contexts(train, CHUNKS, 3, 1.0, 0)[0]
    expected = chat_prompt(
        tokenizer, prompts.system, user_message(prompts, question, passages)
    )  # what evaluate renders
    prompt_ids = tokenizer(expected, add_special_tokens=False)["input_ids"]
    assert examples[0]["input_ids"][: len(prompt_ids)] == prompt_ids
    assert all(label == IGNORE_INDEX for label in examples[0]["labels"][: len(prompt_ids)])
    assert _supervised(examples[0], tokenizer).strip() == "BOL<|im_end|>"


def test_raft_drops_prompts_longer_than_max_length(tokenizer, params):
    assert raft_examples(QA, CHUNKS, tokenizer, params.evaluation.prompts, 24, 3, 1.0, 0) == []


def test_sources_use_train_questions_only(tokenizer, params):
    cfg = AdapterConfig(
        name="t",
        max_length=256,
        data=[
            CorpusSource(source="corpus", augment=["qa_text", "statement"]),
            QASource(source="qa"),
            RaftSource(source="raft", retriever="r", p_gold=1.0),
        ],
    )
    inputs = TrainingInputs(
        documents=pd.DataFrame({"text": ["Some text."]}), qa=QA, chunks={"r": CHUNKS}, top_k={"r": 2}
    )
    text = "\n".join(
        tokenizer.decode(e["input_ids"]) for e in build_examples(inputs, tokenizer, cfg, params.evaluation.prompts)
    )
    assert "Bolivia?" in text and "Andorra?" in text
    assert "France?" not in text and "Italy?" not in text  # test and dev questions never trained on
    assert 'The answer to the question "What is the alpha-3 code of Bolivia?" is BOL.' in text  # statement form
    assert "Question: What is the alpha-3 code of Andorra?\nAnswer: AND" in text  # qa_text form


def test_weights_repeat_and_sample():
    examples = [{"input_ids": [i], "labels": [i]} for i in range(10)]
    assert len(weighted(examples, 2.0, 0)) == 20 and len(weighted(examples, 0.5, 0)) == 5
    assert weighted(examples, 0.5, 0) == weighted(examples, 0.5, 0)


def test_plan_steps_counts_gradient_accumulation():
    cfg = AdapterConfig(name="t", batch_size=4, epochs=2)
    assert plan_steps(30, cfg, world_size=2) == 8
    assert plan_steps(30, cfg.model_copy(update={"grad_accum": 2}), world_size=2) == 4
    assert plan_steps(30, cfg.model_copy(update={"max_steps": 3}), world_size=2) == 3


def test_params_validate_sources(tmp_path):
    import shutil

    from components.config import ConfigError

    shutil.copytree("params", tmp_path / "params")
    path = tmp_path / "params" / "finetune.yaml"
    path.write_text(path.read_text().replace("retriever: vector-minilm-k3", "retriever: nope"))
    with pytest.raises(ConfigError, match="raft retriever 'nope' is unknown"):
        load_params(tmp_path / "params")
    path.write_text(path.read_text().replace("source: raft", "source: rafts"))
    with pytest.raises(ConfigError, match="finetune.yaml: adapters.1.data.0"):
        load_params(tmp_path / "params")
