"""The grid run: retrieval once per retriever, then every cell answers and is scored.

The ``evaluate`` stage opens the inputs, calls :func:`retrieve` and :func:`evaluate_grid`, and logs
each :class:`CellResult` to MLflow as it comes; ``bench/grid.py`` calls the same functions.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from components.config import AdapterConfig, GenerationConfig, PromptConfig
from components.evaluation.answer import answer_cell, summarize
from components.evaluation.grid import NO_RETRIEVAL, Cell
from components.evaluation.metrics import load_metric
from components.io import dir_hash
from components.llm.models import load_model, load_tokenizer
from components.llm.prediction_cache import PredictionCache
from components.retrieval.search import Hit, Retriever

logger = logging.getLogger(__name__)

ANSWER_METRICS = ("qa_match", "rouge_l", "answer_support")


@dataclass(frozen=True)
class Retrieved:
    """One retriever's hits for every question of the grid, their latencies, and its run params."""

    hits: list[list[Hit]]
    latencies_s: list[float]
    top_k: int
    params: dict


@dataclass(frozen=True)
class GridSetup:
    """Everything the cells of one grid share."""

    questions: pd.DataFrame
    retrieved: dict[str, Retrieved]  # grid retriever name -> its results
    base_dir: Path
    adapter_dirs: dict[str, Path]  # adapter name -> its trained folder
    adapters: dict[str, AdapterConfig]
    split: str
    prompts: PromptConfig
    generation: GenerationConfig
    model_info: dict  # model.json: the base model's provenance
    training: dict[str, dict]  # adapter name -> its finetune.json entry
    cache_dir: Path  # the prediction cache


@dataclass(frozen=True)
class CellResult:
    cell: Cell
    rows: pd.DataFrame  # one row per question: prediction, scores, tokens, latency
    metrics: dict[str, float]
    params: dict  # what the cell's MLflow run records
    generated: int  # answers generated now (the rest came from the prediction cache)


def retrieve(
    retrievers: dict[str, Retriever], questions: pd.DataFrame, params: dict[str, dict]
) -> dict[str, Retrieved]:
    """Search every question once per retriever (the hits are shared by every model variant)."""
    out = {}
    for name, retriever in retrievers.items():
        hits, latencies = retriever.search(questions["question"].tolist())
        out[name] = Retrieved(hits, latencies, retriever.cfg.top_k, params[name])
    return out


def cell_params(cell: Cell, setup: GridSetup) -> dict:
    """A cell's MLflow params: model and adapter config, retriever config and index version, prompt, generation."""
    retrieved = setup.retrieved.get(cell.retriever)
    params = {
        "model": cell.model,
        "retriever": cell.retriever,
        "base_model": setup.model_info["name"],
        "base_model_source": setup.model_info["source"],
        "adapter": setup.adapters[cell.model].model_dump() if cell.model in setup.adapters else "none",
        "retrieval": retrieved.params["retrieval"] if retrieved else "none",
        "top_k": retrieved.top_k if retrieved else 0,
        "prompt_system": setup.prompts.system,
        "prompt_template": setup.prompts.closed_book if cell.retriever == NO_RETRIEVAL else setup.prompts.with_context,
        "generation": setup.generation.model_dump(),
        "split": setup.split,
    }
    if retrieved:
        params.update(retrieved.params)
    return params


def training_metrics(train: dict | None) -> dict[str, float]:
    """The adapter's training figures a cell run carries beside its own metrics."""
    if train is None:
        return {}
    return {
        "train_wall_time_s": train["wall_time_s"],
        "train_tokens_per_s": train["tokens_per_s"],
        "train_final_loss": train["loss"],
        "train_steps": train["step"],
    }


def evaluate_grid(cells: list[Cell], setup: GridSetup) -> Iterator[CellResult]:
    """Answer and score every cell, loading each model variant once (cells of one model are adjacent)."""
    metric_modules = {name: load_metric(name) for name in ANSWER_METRICS}
    tokenizer = load_tokenizer(setup.base_dir)
    loaded = None
    for cell in cells:
        if loaded is None or loaded[0] != cell.model:
            adapter_dir = setup.adapter_dirs.get(cell.model)
            loaded = (
                cell.model,
                load_model(setup.base_dir, adapter_dir),
                "none" if adapter_dir is None else dir_hash(adapter_dir),
            )
        _, model, adapter_hash = loaded
        retrieved = setup.retrieved.get(cell.retriever)
        cache = PredictionCache(
            setup.cache_dir,
            {
                "base_model": setup.model_info,
                "adapter": adapter_hash,
                "retrieval": retrieved.params if retrieved else "none",
                "prompts": setup.prompts.model_dump(),
                "generation": setup.generation.model_dump(),
            },
        )
        rows = answer_cell(
            model,
            tokenizer,
            setup.questions,
            retrieved.hits if retrieved else None,
            setup.prompts,
            setup.generation,
            metric_modules,
            top_k=retrieved.top_k if retrieved else None,
            cache=cache,
        )
        if retrieved:
            rows["retrieval_latency_s"] = retrieved.latencies_s  # per question: the trace's retriever span
        metrics = summarize(cell, rows, retrieved.latencies_s if retrieved else None)
        metrics.update(training_metrics(setup.training.get(cell.model)))
        yield CellResult(cell, rows, metrics, cell_params(cell, setup), cache.generated)
