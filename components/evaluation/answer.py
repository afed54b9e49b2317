"""One grid cell answering its questions: prompts, batched greedy generation, per-question scores, summary.

Scores are deterministic (greedy decoding, string metrics), so a cell scores the same on every run.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from components.config import GenerationConfig, PromptConfig
from components.evaluation.grid import Cell
from components.llm.generation import chat_prompt, generate, user_message
from components.llm.prediction_cache import PredictionCache
from components.retrieval.metrics import METRICS, latency_summary, score_retrieval
from components.retrieval.search import Hit

logger = logging.getLogger(__name__)


def answer_cell(
    model,
    tokenizer,
    questions: pd.DataFrame,
    hits: list[list[Hit]] | None,
    prompts: PromptConfig,
    generation: GenerationConfig,
    metrics: dict,
    top_k: int | None = None,
    cache: PredictionCache | None = None,
) -> pd.DataFrame:
    """Answer every question of a cell and score each answer; one row per question.

    Args:
        metrics: loaded evaluate modules by name: ``qa_match`` (required), ``rouge_l`` and
            ``answer_support`` (scored when given; support only with retrieval, NaN without).
        cache: answers already generated for the same scope and prompt are reused from it.

    With retrieval (``hits`` and the retriever's ``top_k``), each row also carries the retrieved
    doc ids, chunk ids, scores and texts and the retrieval metrics of ``components.retrieval.metrics``.
    """
    prompts = [
        chat_prompt(
            tokenizer,
            prompts.system,
            user_message(prompts, q, None if hits is None else [h.text for h in hits[i]]),
        )
        for i, q in enumerate(questions["question"])
    ]

    def run(batch: list[str]) -> list:
        return generate(model, tokenizer, batch, generation)

    generations = cache.generate(prompts, run) if cache is not None else run(prompts)
    predictions = [g.answer for g in generations]
    references = [list(a) for a in questions["answers"]]
    scores = metrics["qa_match"].compute(predictions=predictions, references=references)
    rows = pd.DataFrame(
        {
            "qa_id": questions["qa_id"],
            "question": questions["question"],
            "answers": references,
            "prediction": predictions,
            "exact_match": scores["exact_match_per_example"],
            "f1": scores["f1_per_example"],
            "prompt_tokens": [g.prompt_tokens for g in generations],
            "completion_tokens": [g.completion_tokens for g in generations],
            "latency_s": [g.latency_s for g in generations],
        }
    ).assign(**trace_columns(prompts, hits))
    if "rouge_l" in metrics:
        rows["rouge_l"] = metrics["rouge_l"].compute(predictions=predictions, references=references)[
            "rouge_l_per_example"
        ]
    if "answer_support" in metrics:
        rows["answer_support"] = (
            np.nan
            if hits is None
            else metrics["answer_support"].compute(
                predictions=predictions, contexts=[[h.text for h in row] for row in hits]
            )["answer_support_per_example"]
        )
    if hits is not None:
        if top_k is None:
            raise ValueError("answer_cell needs the retriever's top_k to score retrieval")
        scores = score_retrieval(rows["retrieved_doc_ids"].tolist(), [list(g) for g in questions["doc_ids"]], top_k)
        for name in METRICS:
            rows[name] = scores[name].to_numpy()
    return rows


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


def summarize(cell: Cell, rows: pd.DataFrame, retrieval_latency_s: list[float] | None) -> dict:
    """A cell's metrics: answer quality, retrieval quality, latency and tokens."""
    metrics = {
        "questions": len(rows),
        "exact_match": float(rows["exact_match"].mean()),
        "f1": float(rows["f1"].mean()),
        "latency_mean_s": float(rows["latency_s"].mean()),
        "latency_p50_s": float(np.percentile(rows["latency_s"], 50)),
        "latency_p95_s": float(np.percentile(rows["latency_s"], 95)),
        "prompt_tokens_mean": float(rows["prompt_tokens"].mean()),
        "completion_tokens_mean": float(rows["completion_tokens"].mean()),
    }
    for name in ("rouge_l", "answer_support"):
        if name in rows and rows[name].notna().any():
            metrics[name] = float(rows[name].mean())  # NaN rows (empty answers) are skipped
    if "recall_at_k" in rows:
        metrics.update({name: float(rows[name].mean()) for name in METRICS})
        metrics.update(latency_summary(retrieval_latency_s))
    logger.info("%s: EM %.3f F1 %.3f", cell.name, metrics["exact_match"], metrics["f1"])
    return metrics
