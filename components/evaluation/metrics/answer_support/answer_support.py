"""Answer support: the share of an answer's tokens that occur in the context it was given.

A local Hugging Face ``evaluate`` module::

    evaluate.load("components/metrics/answer_support")

Tokens are SQuAD-normalised (lower-case, no punctuation, no articles) and counted as a set: an
answer whose every token appears somewhere in the retrieved passages scores 1.0, one made up
entirely from the model's weights scores 0.0. An empty answer has no tokens to support: NaN.
Closed-book cells have no context and are not scored.
"""

import math
import re
import string

import datasets
import evaluate

_DESCRIPTION = "Share of (normalised) answer tokens present in the retrieved context."
_KWARGS_DESCRIPTION = """
Args:
    predictions: list of predicted answers (str).
    contexts: list of lists of retrieved passages (list[str]) for each prediction.
Returns:
    answer_support: mean over the answers with at least one token (NaN if none has).
    answer_support_per_example: per-prediction share in [0, 1], NaN for an empty answer.
"""

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = set(string.punctuation)


def tokens(text: str) -> set[str]:
    text = "".join(ch for ch in text.lower() if ch not in _PUNCT)
    return set(_ARTICLES.sub(" ", text).split())


def support(prediction: str, passages: list[str]) -> float:
    answer = tokens(prediction)
    if not answer:
        return math.nan
    context = set().union(*(tokens(p) for p in passages)) if passages else set()
    return len(answer & context) / len(answer)


class AnswerSupport(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Value("string"),
                    "contexts": datasets.Sequence(datasets.Value("string")),
                }
            ),
        )

    def _compute(self, predictions, contexts):
        if len(predictions) != len(contexts):
            raise ValueError(f"{len(predictions)} predictions but {len(contexts)} contexts")
        scores = [support(p, c) for p, c in zip(predictions, contexts, strict=True)]
        scored = [s for s in scores if not math.isnan(s)]
        mean = sum(scored) / len(scored) if scored else math.nan
        return {"answer_support": mean, "answer_support_per_example": scores}
