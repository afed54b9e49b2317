"""The grid run: retrieval once per retriever and split, then every cell answers and is scored.

The ``evaluate`` stage opens the inputs and runs the protocol (:mod:`components.evaluation.protocol`),
which calls :func:`retrieve` and :func:`evaluate_cells` once for dev and once for test;
``bench/grid.py`` calls the same functions.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pandas as pd

from components.config import AdapterConfig, GenerationConfig, PromptConfig
from components.evaluation.answer import build_rows, render_prompts, summarize
from components.evaluation.executors import CellWork, Job, local_dir, run_local, run_on_ray
from components.evaluation.grid import NO_RETRIEVAL, Cell
from components.evaluation.metrics import load_metric
from components.io import dir_hash
from components.llm.models import load_tokenizer
from components.llm.prediction_cache import PredictionCache
from components.retrieval.search import Hit, Retriever
from components.storage import ObjectStore

logger = logging.getLogger(__name__)

ANSWER_METRICS = ("qa_match", "rouge_l", "answer_support")


@dataclass(frozen=True)
class Retrieved:
    """One retriever's hits for every question of a split, their latencies, and its run params."""

    hits: list[list[Hit]]
    latencies_s: list[float]
    top_k: int
    params: dict


@dataclass(frozen=True)
class GridSetup:
    """Everything the cells of one grid share."""

    base_dir: Path
    adapter_dirs: dict[str, Path]  # adapter name -> its trained folder
    adapters: dict[str, AdapterConfig]
    prompts: PromptConfig
    generation: GenerationConfig  # with the answer cap of this run
    examples: list[tuple[str, str]]  # the few-shot turns
    model_info: dict  # model.json: the base model's provenance
    training: dict[str, dict]  # adapter name -> its finetune.json entry
    cache_dir: Path  # the prediction cache
    similarity_model: str | None  # an embedder folder: semantic similarity is scored (long answers)
    latency_questions: int  # questions per cell answered one at a time for the latency
    workers: int  # 1: answer in this process; more: that many Ray actors (executors.run_on_ray)
    cpus_per_worker: int
    store: ObjectStore | None  # where the actors fetch the models from; None: the driver's paths


@dataclass(frozen=True)
class CellResult:
    cell: Cell
    split: str
    rows: pd.DataFrame  # one row per question: prediction, scores, tokens, cap, latency share
    metrics: dict[str, float]
    params: dict  # what the cell's MLflow run records
    generated: int  # answers generated now (the rest came from the prediction cache)
    node: str  # where its answers were generated: "local" or a Ray node id


def retrieve(
    retrievers: dict[str, Retriever], questions: pd.DataFrame, params: dict[str, dict]
) -> dict[str, Retrieved]:
    """Search every question once per retriever (the hits are shared by every model variant)."""
    out = {}
    for name, retriever in retrievers.items():
        hits, latencies = retriever.search(questions["question"].tolist())
        out[name] = Retrieved(hits, latencies, retriever.cfg.top_k, params[name])
    return out


def cell_params(cell: Cell, setup: GridSetup, retrieved: Retrieved | None, split: str) -> dict:
    """A cell's MLflow params: model and adapter config, retriever config and index version, prompt, generation."""
    params = {
        "model": cell.model,
        "retriever": cell.retriever,
        "shots": cell.shots,
        "base_model": setup.model_info["name"],
        "base_model_source": setup.model_info["source"],
        "adapter": setup.adapters[cell.model].model_dump() if cell.model in setup.adapters else "none",
        "retrieval": retrieved.params["retrieval"] if retrieved else "none",
        "top_k": retrieved.top_k if retrieved else 0,
        "prompt_system": setup.prompts.system,
        "prompt_template": setup.prompts.closed_book if cell.retriever == NO_RETRIEVAL else setup.prompts.with_context,
        "generation": setup.generation.model_dump(),
        "split": split,
    }
    if retrieved:
        params.update(retrieved.params)
    return params


def training_metrics(train: dict | None) -> dict[str, float]:
    """The adapter's training figures a cell run carries beside its own metrics."""
    if train is None:
        return {}
    return {
        "train_compute_s": train["compute_s"],
        "train_tokens_per_s": train["tokens_per_s"],
        "train_final_loss": train["loss"],
        "train_steps": train["step"],
    }


def scorers(similarity_model: str | None) -> dict:
    """The evaluate modules every cell is scored with, as compute functions."""
    loaded = {name: load_metric(name).compute for name in ANSWER_METRICS}
    if similarity_model is not None:
        loaded["semantic_similarity"] = partial(load_metric("semantic_similarity").compute, model=similarity_model)
    return loaded


@dataclass(frozen=True)
class _Plan:
    """What the driver keeps of a cell while its job runs: prompts, the cache and what it already had."""

    cell: Cell
    found: Retrieved | None
    prompts: list[str]
    cache: PredictionCache
    cached: dict[int, object]
    missing: list[int]


def _plan(cells, questions, retrieved, setup, tokenizer) -> tuple[dict[str, _Plan], list[Job]]:
    """Render every cell's prompts, look them up in the prediction cache, and group the rest into one job per model."""
    plans, jobs, hashes = {}, {}, {}
    n = min(setup.latency_questions, len(questions))
    for cell in cells:
        adapter_dir = setup.adapter_dirs.get(cell.model)
        if cell.model not in hashes:
            hashes[cell.model] = "none" if adapter_dir is None else dir_hash(adapter_dir)
        found = retrieved.get(cell.retriever)
        examples = setup.examples if cell.shots else []
        prompts = render_prompts(
            tokenizer, questions["question"].tolist(), found.hits if found else None, setup.prompts, examples
        )
        scope = {
            "base_model": setup.model_info,
            "adapter": hashes[cell.model],
            "retrieval": found.params if found else "none",
            "prompts": setup.prompts.model_dump(),
            "generation": setup.generation.model_dump(),
        }
        cache = PredictionCache(setup.cache_dir, scope)
        cached, missing = cache.lookup(prompts)
        plans[cell.name] = _Plan(cell, found, prompts, cache, cached, missing)
        job = jobs.setdefault(
            cell.model, Job(cell.model, local_dir(setup.base_dir), local_dir(adapter_dir), setup.generation, [])
        )
        job.cells.append(CellWork(cell.name, [prompts[i] for i in missing], prompts[:n]))
    return plans, list(jobs.values())


def evaluate_cells(
    cells: list[Cell], questions: pd.DataFrame, retrieved: dict[str, Retrieved], setup: GridSetup, split: str
) -> Iterator[CellResult]:
    """Answer and score every cell on ``questions``; each model variant is loaded once, here or on a Ray worker.

    The driver renders the prompts, answers from the prediction cache what it can, and sends the rest
    (and the timed latency pass) as one job per model variant to the executor
    (:mod:`components.evaluation.executors`); results are scored and yielded as they come back.
    """
    score = scorers(setup.similarity_model)
    plans, jobs = _plan(cells, questions, retrieved, setup, load_tokenizer(setup.base_dir))
    if setup.workers > 1:
        outputs = run_on_ray(jobs, setup.workers, setup.cpus_per_worker, os.environ.get("RAY_ADDRESS"), setup.store)
    else:
        outputs = run_local(jobs)
    for out in outputs:
        plan = plans[out.cell]
        plan.cache.store([plan.prompts[i] for i in plan.missing], out.generations)
        generations = {**plan.cached, **dict(zip(plan.missing, out.generations, strict=True))}
        found = plan.found
        hits = found.hits if found else None
        answers = [generations[i] for i in range(len(plan.prompts))]
        rows = build_rows(questions, plan.prompts, answers, hits, score, found.top_k if found else None)
        if found:
            rows["retrieval_latency_s"] = found.latencies_s  # per question: the trace's retriever span
        retrieval_s = found.latencies_s if found else [0.0] * len(out.latencies_s)
        latencies = [g + r for g, r in zip(out.latencies_s, retrieval_s, strict=False)]
        metrics = summarize(plan.cell, rows, latencies, found.latencies_s if found else None)
        metrics.update(training_metrics(setup.training.get(plan.cell.model)))
        params = cell_params(plan.cell, setup, found, split)
        yield CellResult(plan.cell, split, rows, metrics, params, len(plan.missing), out.node)
