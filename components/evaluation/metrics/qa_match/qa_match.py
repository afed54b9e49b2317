"""Exact match, token F1, answer containment and answer length for QA, with SQuAD answer normalisation.

A local Hugging Face ``evaluate`` module: load it by path (the hub is not reachable)::

    evaluate.load("components/metrics/qa_match")

Each prediction is scored against every accepted answer and the best score counts, as in the
official SQuAD v1.1 script (lower-case, strip punctuation and articles, collapse whitespace).
Exact match and F1 reward brevity: a right answer wrapped in a sentence scores low. So two
measures sit beside them: ``answer_contained`` (the normalised gold answer appears, as whole words,
in the normalised prediction) and ``answer_tokens`` (the prediction's length in normalised words).
"""

import collections
import re
import string

import datasets
import evaluate

_DESCRIPTION = "Exact match and token-level F1 against a list of accepted answers (SQuAD normalisation)."
_KWARGS_DESCRIPTION = """
Args:
    predictions: list of predicted answers (str).
    references: list of lists of accepted answers (list[str]) for each prediction.
Returns:
    exact_match: mean exact match in [0, 1].
    f1: mean token F1 in [0, 1].
    answer_contained: share of predictions that contain a gold answer (whole words, normalised).
    answer_tokens: mean length of the predictions in normalised words.
    <name>_per_example: each of the above per prediction, in input order.
"""
_CITATION = "Rajpurkar et al. 2016, SQuAD: 100,000+ Questions for Machine Comprehension of Text."

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = set(string.punctuation)


def normalize_answer(text: str) -> str:
    text = "".join(ch for ch in text.lower() if ch not in _PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact(prediction: str, answer: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(answer))


def token_f1(prediction: str, answer: str) -> float:
    pred, gold = normalize_answer(prediction).split(), normalize_answer(answer).split()
    if not pred or not gold:
        return float(pred == gold)
    common = collections.Counter(pred) & collections.Counter(gold)
    overlap = sum(common.values())
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(pred), overlap / len(gold)
    return 2 * precision * recall / (precision + recall)


def contained(prediction: str, answer: str) -> float:
    """1.0 when the normalised answer appears in the normalised prediction as a run of whole words."""
    pred, gold = normalize_answer(prediction).split(), normalize_answer(answer).split()
    if not gold:
        return float(not pred)
    n = len(gold)
    return float(any(pred[i : i + n] == gold for i in range(len(pred) - n + 1)))


class QaMatch(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Value("string"),
                    "references": datasets.Sequence(datasets.Value("string")),
                }
            ),
        )

    def _compute(self, predictions, references):
        if len(predictions) != len(references):
            raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
        em = [max((exact(p, a) for a in refs), default=0.0) for p, refs in zip(predictions, references, strict=True)]
        f1 = [max((token_f1(p, a) for a in refs), default=0.0) for p, refs in zip(predictions, references, strict=True)]
        inside = [
            max((contained(p, a) for a in refs), default=0.0) for p, refs in zip(predictions, references, strict=True)
        ]
        length = [float(len(normalize_answer(p).split())) for p in predictions]
        n = max(len(em), 1)
        return {
            "exact_match": sum(em) / n,
            "f1": sum(f1) / n,
            "answer_contained": sum(inside) / n,
            "answer_tokens": sum(length) / n,
            "exact_match_per_example": em,
            "f1_per_example": f1,
            "answer_contained_per_example": inside,
            "answer_tokens_per_example": length,
        }
