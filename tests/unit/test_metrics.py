import pytest

from components.metrics import load_metric


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
