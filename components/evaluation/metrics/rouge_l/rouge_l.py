"""ROUGE-L F-measure (longest common subsequence of tokens) of each answer against its references.

A local Hugging Face ``evaluate`` module wrapping Google's ``rouge_score`` package (the hub's
``rouge`` module is not reachable offline)::

    evaluate.load("components/metrics/rouge_l")

Each prediction is scored against every accepted answer and the best F-measure counts. Tokens are
lower-cased runs of Unicode word characters (``rouge_score``'s own tokenizer keeps ASCII letters
and digits only, which would score every answer in Greek or Japanese 0); with ``use_stemmer`` the
tokens are Porter-stemmed (English only).
"""

import re

import datasets
import evaluate
from rouge_score import rouge_scorer

_DESCRIPTION = "ROUGE-L F-measure against a list of accepted answers (best over the answers)."
_KWARGS_DESCRIPTION = """
Args:
    predictions: list of predicted answers (str).
    references: list of lists of accepted answers (list[str]) for each prediction.
    use_stemmer: Porter-stem tokens before matching (default False).
Returns:
    rouge_l: mean ROUGE-L F-measure in [0, 1].
    rouge_l_per_example: the per-prediction scores, in input order.
"""
_CITATION = "Lin 2004, ROUGE: A Package for Automatic Evaluation of Summaries."


class _WordTokenizer:
    """Lower-cased runs of Unicode word characters, optionally Porter-stemmed."""

    def __init__(self, use_stemmer: bool) -> None:
        from nltk.stem import porter

        self.stemmer = porter.PorterStemmer() if use_stemmer else None

    def tokenize(self, text: str) -> list[str]:
        words = re.findall(r"\w+", text.lower())
        return [self.stemmer.stem(w) for w in words] if self.stemmer else words


class RougeL(evaluate.Metric):
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

    def _compute(self, predictions, references, use_stemmer=False):
        if len(predictions) != len(references):
            raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
        scorer = rouge_scorer.RougeScorer(["rougeL"], tokenizer=_WordTokenizer(use_stemmer))
        scores = [
            max((scorer.score(a, p)["rougeL"].fmeasure for a in refs), default=0.0)
            for p, refs in zip(predictions, references, strict=True)
        ]
        return {"rouge_l": sum(scores) / max(len(scores), 1), "rouge_l_per_example": scores}
