"""One grid cell answering its questions: prompts, batched greedy generation, per-question scores, summary.

Scores are deterministic (greedy decoding, string metrics), so a cell scores the same on every run.
Latency is measured in its own pass: a few questions answered one at a time, retrieval included,
so a query's latency is a query's, not a batch's wall time divided by its size.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from components.config import GenerationConfig, PromptConfig
from components.evaluation.grid import Cell
from components.llm.engines import generate
from components.llm.generation import chat_prompt, user_message
from components.llm.prediction_cache import PredictionCache
from components.retrieval.metrics import METRICS, latency_summary, score_retrieval
from components.retrieval.search import Hit

logger = logging.getLogger(__name__)

Scorer = Callable[..., dict]  # an evaluate module's compute: (predictions=..., references=... | contexts=...) -> dict
# per-question columns each scorer adds: scorer name -> {column: key of its result}
SCORED = {
    "qa_match": {
        "exact_match": "exact_match_per_example",
        "f1": "f1_per_example",
        "answer_contained": "answer_contained_per_example",
        "answer_tokens": "answer_tokens_per_example",
    },
    "rouge_l": {"rouge_l": "rouge_l_per_example"},
    "semantic_similarity": {"semantic_similarity": "semantic_similarity_per_example"},
}
MEANS = ("exact_match", "f1", "answer_contained", "answer_tokens", "rouge_l", "semantic_similarity", "answer_support")


def render_prompts(
    tokenizer,
    questions: Sequence[str],
    hits: list[list[Hit]] | None,
    prompts: PromptConfig,
    examples: Sequence[tuple[str, str]] = (),
) -> list[str]:
    """Each question in the model's chat template: closed-book, or with its retrieved passages; after ``examples``."""
    return [
        chat_prompt(
            tokenizer,
            prompts.system,
            user_message(prompts, q, None if hits is None else [h.text for h in hits[i]]),
            examples=examples,
        )
        for i, q in enumerate(questions)
    ]


def score_answers(predictions: list[str], questions: pd.DataFrame, hits, scorers: dict[str, Scorer]) -> pd.DataFrame:
    """The per-question scores of ``predictions`` by every scorer given (``qa_match`` is required)."""
    references = [list(a) for a in questions["answers"]]
    columns: dict[str, list] = {}
    for name, keys in SCORED.items():
        if name in scorers:
            result = scorers[name](predictions=predictions, references=references)
            columns.update({column: result[key] for column, key in keys.items()})
    if "answer_support" in scorers:
        columns["answer_support"] = (
            [np.nan] * len(predictions)
            if hits is None
            else scorers["answer_support"](predictions=predictions, contexts=[[h.text for h in row] for row in hits])[
                "answer_support_per_example"
            ]
        )
    return pd.DataFrame(columns, index=questions.index)


RETRIEVED = {  # row column -> the Hit field it lists, best hit first
    "retrieved_doc_ids": "doc_id",
    "retrieved_chunk_ids": "chunk_id",
    "retrieved_scores": "score",
    "retrieved_texts": "text",
}


def trace_columns(prompts: list[str], hits: list[list[Hit]] | None) -> dict[str, list]:
    """Each question's prompt and, with retrieval, its chunks' documents, ids, scores and texts (best first):
    what the MLflow trace of the question shows (``components.tracking.genai``)."""
    columns: dict[str, list] = {"prompt": prompts}
    if hits is not None:
        columns.update({name: [[getattr(h, key) for h in row] for row in hits] for name, key in RETRIEVED.items()})
    return columns


def build_rows(
    questions: pd.DataFrame,
    prompts: list[str],
    generations: list,
    hits: list[list[Hit]] | None,
    scorers: dict[str, Scorer],
    top_k: int | None,
) -> pd.DataFrame:
    """One row per question: the prompt, the answer, its scores, tokens, whether it hit the cap, the retrieved
    chunks and the retrieval metrics."""
    predictions = [g.answer for g in generations]
    rows = pd.DataFrame(
        {
            "qa_id": questions["qa_id"],
            "question": questions["question"],
            "answers": [list(a) for a in questions["answers"]],
            "prediction": predictions,
            "prompt_tokens": [g.prompt_tokens for g in generations],
            "completion_tokens": [g.completion_tokens for g in generations],
            "hit_cap": [g.hit_cap for g in generations],
            "latency_s": [g.latency_s for g in generations],
        }
    ).join(score_answers(predictions, questions, hits, scorers))
    rows = rows.assign(**trace_columns(prompts, hits))
    if hits is not None:
        if top_k is None:
            raise ValueError("scoring retrieval needs the retriever's top_k")
        scores = score_retrieval(rows["retrieved_doc_ids"].tolist(), [list(g) for g in questions["doc_ids"]], top_k)
        for name in METRICS:
            rows[name] = scores[name].to_numpy()
    return rows


def answer_cell(
    model,
    tokenizer,
    questions: pd.DataFrame,
    hits: list[list[Hit]] | None,
    prompts: PromptConfig,
    generation: GenerationConfig,
    scorers: dict[str, Scorer],
    top_k: int | None = None,
    cache: PredictionCache | None = None,
    examples: Sequence[tuple[str, str]] = (),
) -> pd.DataFrame:
    """Answer every question of a cell in this process and score each answer; one row per question.

    Args:
        scorers: evaluate modules' compute functions by name: ``qa_match`` (required), and any of
            ``rouge_l``, ``semantic_similarity``, ``answer_support`` (support only with retrieval).
        cache: answers already generated for the same scope and prompt are reused from it.
        examples: few-shot (question, answer) turns shown before each question.

    With retrieval (``hits`` and the retriever's ``top_k``), each row also carries the retrieved
    doc ids, chunk ids, scores and texts and the retrieval metrics of ``components.retrieval.metrics``.
    """
    rendered = render_prompts(tokenizer, questions["question"].tolist(), hits, prompts, examples)

    def run(batch: list[str]) -> list:
        return generate(model, tokenizer, batch, generation)

    generations = cache.generate(rendered, run) if cache is not None else run(rendered)
    return build_rows(questions, rendered, generations, hits, scorers, top_k)


def summarize(
    cell: Cell, rows: pd.DataFrame, latencies_s: list[float], retrieval_latency_s: list[float] | None
) -> dict:
    """A cell's metrics: answer quality, retrieval quality, query latency (from the timed pass) and tokens."""
    metrics = {
        "questions": len(rows),
        "latency_mean_s": float(np.mean(latencies_s)),
        "latency_p50_s": float(np.percentile(latencies_s, 50)),
        "latency_p95_s": float(np.percentile(latencies_s, 95)),
        "prompt_tokens_mean": float(rows["prompt_tokens"].mean()),
        "completion_tokens_mean": float(rows["completion_tokens"].mean()),
        "hit_cap_share": float(rows["hit_cap"].mean()),
    }
    for name in MEANS:
        if name in rows and rows[name].notna().any():
            metrics[name] = float(rows[name].mean())  # NaN rows (no context) are skipped
    if "recall_at_k" in rows:
        metrics.update({name: float(rows[name].mean()) for name in METRICS})
        metrics.update(latency_summary(retrieval_latency_s))
    logger.info(
        "%s: EM %.3f F1 %.3f contained %.3f",
        cell.name,
        metrics["exact_match"],
        metrics["f1"],
        metrics["answer_contained"],
    )
    return metrics
