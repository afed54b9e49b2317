import math

import pytest

from components.evaluation.metrics import load_metric


@pytest.fixture(scope="module")
def qa_match():
    return load_metric("qa_match")


def test_squad_normalisation_and_best_of_answers(qa_match):
    result = qa_match.compute(
        predictions=["The BOL.", "Paris, France", "nothing"],
        references=[["BOL"], ["Lyon", "paris france"], ["x"]],
    )
    assert result["exact_match_per_example"] == [1.0, 1.0, 0.0]
    assert result["exact_match"] == pytest.approx(2 / 3)


def test_token_f1_gives_partial_credit(qa_match):
    result = qa_match.compute(predictions=["the code of bolivia is BOL"], references=[["BOL"]])
    # tokens after normalisation: code, of, bolivia, is, bol -> precision 1/5, recall 1
    assert result["f1"] == pytest.approx(2 * 0.2 * 1 / 1.2)
    assert result["exact_match"] == 0.0


def test_unknown_metric_is_refused():
    with pytest.raises(FileNotFoundError, match="no evaluate module 'bleu'"):
        load_metric("bleu")


def test_rouge_l_by_hand_best_of_answers():
    rouge = load_metric("rouge_l")
    result = rouge.compute(
        predictions=["the capital is La Paz", "Sucre", ""],
        references=[["La Paz"], ["Lima", "sucre"], ["x"]],
    )
    # LCS "la paz": precision 2/5, recall 2/2 -> F = 2 * 0.4 * 1 / 1.4
    assert result["rouge_l_per_example"] == pytest.approx([2 * 0.4 / 1.4, 1.0, 0.0])
    assert result["rouge_l"] == pytest.approx((2 * 0.4 / 1.4 + 1.0) / 3)


def test_answer_support_by_hand():
    support = load_metric("answer_support")
    result = support.compute(
        predictions=["La Paz, Bolivia", "Lima", "the", "Quito"],
        contexts=[["The seat of government is La Paz."], ["Sucre is the capital."], ["anything"], []],
    )
    # "la paz bolivia": 2 of 3 tokens in the context; "lima": 0; "the" normalises to nothing: NaN; no context: 0
    per = result["answer_support_per_example"]
    assert per[0] == pytest.approx(2 / 3) and per[1] == 0.0 and math.isnan(per[2]) and per[3] == 0.0
    assert result["answer_support"] == pytest.approx((2 / 3) / 3)


def test_answer_contained_does_not_reward_brevity_and_counts_whole_words(qa_match):
    result = qa_match.compute(
        predictions=["The alpha-3 code of Bolivia is BOL.", "BOLIVIA", "It is BOL", ""],
        references=[["BOL"], ["BOL"], ["bol", "x"], ["BOL"]],
    )
    assert result["answer_contained_per_example"] == [1.0, 0.0, 1.0, 0.0]  # "BOLIVIA" is not the word BOL
    assert result["f1_per_example"][0] < 0.4  # the same right answer, punished by F1 for its wording
    assert result["answer_tokens_per_example"] == [6.0, 1.0, 3.0, 0.0]  # normalised words (articles dropped)


def test_rouge_l_scores_any_script_not_only_ascii():
    rouge = load_metric("rouge_l")
    greek = rouge.compute(predictions=["η πρωτεύουσα είναι η Αθήνα"], references=[["Αθήνα"]])
    assert greek["rouge_l"] > 0.0  # rouge_score's own tokenizer would drop every Greek letter
    same = rouge.compute(predictions=["東京 です"], references=[["東京 です"]])
    assert same["rouge_l"] == 1.0
