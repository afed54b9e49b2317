import pandas as pd
import pytest

from components.config import CorpusSource, QASource, RaftSource
from components.llm.generation import chat_prompt, user_message
from components.llm.models import load_tokenizer
from components.training.examples import TrainingInputs, build_examples, qa_examples, raft_contexts, raft_examples
from components.training.train_step import IGNORE_INDEX
from tests.conftest import PARAMS, like


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
    cfg = like(
        PARAMS.finetune.adapters[0],
        name="t",
        max_length=16,
        data=[CorpusSource(source="corpus", weight=1.0, augment={})],
    )
    inputs = TrainingInputs(documents=pd.DataFrame({"text": ["word " * 40, "short"]}), qa=pd.DataFrame())
    examples = build_examples(inputs, tokenizer, cfg, params.evaluation.prompts)
    assert all(len(e["input_ids"]) <= 16 and e["labels"] == e["input_ids"] for e in examples)
    assert len(examples) >= 3


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
    cfg = like(
        PARAMS.finetune.adapters[0],
        name="t",
        max_length=256,
        data=[
            CorpusSource(source="corpus", weight=1.0, augment={"qa_text": 1.0, "statement": 1.0}),
            QASource(source="qa", weight=1.0),
            RaftSource(source="raft", weight=1.0, retriever="r", p_gold=1.0, distractors="other_docs"),
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
