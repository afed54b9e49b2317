"""Semantic similarity of each answer to its references: cosine of sentence embeddings, best over the references.

A local Hugging Face ``evaluate`` module (the hub is not reachable)::

    evaluate.load("components/evaluation/metrics/semantic_similarity")
    .compute(predictions=[...], references=[[...], ...], model="<sentence-transformers folder>")

For long answers (a sentence or more), token overlap undercounts a paraphrase of the gold answer
and exact match never fires; a similarity in the embedder's space does not reward length or
wording. The model is the pipeline's own embedder, loaded from a local folder.
"""

import datasets
import evaluate
import numpy as np

_DESCRIPTION = "Cosine similarity of sentence embeddings of the answer and its best-matching reference."
_KWARGS_DESCRIPTION = """
Args:
    predictions: list of predicted answers (str).
    references: list of lists of accepted answers (list[str]) for each prediction.
    model: path of a sentence-transformers model folder.
    batch_size: texts per encoding batch (default 64).
Returns:
    semantic_similarity: mean of the per-answer similarities, in [-1, 1].
    semantic_similarity_per_example: the best cosine per prediction; 0.0 for an empty prediction.
"""
_MODELS: dict = {}


class SemanticSimilarity(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="Reimers and Gurevych 2019, Sentence-BERT.",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Value("string"),
                    "references": datasets.Sequence(datasets.Value("string")),
                }
            ),
        )

    def _compute(self, predictions, references, model, batch_size=64):
        if len(predictions) != len(references):
            raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
        if model not in _MODELS:
            from sentence_transformers import SentenceTransformer

            _MODELS[model] = SentenceTransformer(model, device="cpu")
        encoder = _MODELS[model]
        flat = [a for refs in references for a in refs]
        vectors = encoder.encode(
            list(predictions) + flat, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True
        )
        answers, golds = vectors[: len(predictions)], vectors[len(predictions) :]
        scores, start = [], 0
        for pred, vec, refs in zip(predictions, answers, references, strict=True):
            block = golds[start : start + len(refs)]
            start += len(refs)
            scores.append(float(np.max(block @ vec)) if pred.strip() and len(refs) else 0.0)
        return {
            "semantic_similarity": float(np.mean(scores)) if scores else 0.0,
            "semantic_similarity_per_example": scores,
        }
