"""The grid run: retrieval once per retriever and split, then every cell answers and is scored.

The ``evaluate`` stage opens the inputs and the worker pool and runs the protocol
(:mod:`components.evaluation.protocol`), which calls :func:`retrieve` and :func:`evaluate_cells`
once for dev and once for test on that one pool; ``bench/grid.py`` calls the same functions.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pandas as pd

from components.config import AdapterConfig, GenerationConfig, ParallelConfig, PromptConfig
from components.evaluation import sharding
from components.evaluation.answer import build_rows, render_prompts, summarize
from components.evaluation.executors import ModelVariant, PieceOutput, Task, local_dir, open_pool
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
    parallel: ParallelConfig  # where answers are generated: this process, or Ray actors (executors.open_pool)
    store: ObjectStore | None  # where the actors fetch the models from; None: the driver's paths


@dataclass(frozen=True)
class CellResult:
    cell: Cell
    split: str
    rows: pd.DataFrame  # one row per question: prediction, scores, tokens, cap, latency share
    metrics: dict[str, float]
    params: dict  # what the cell's MLflow run records
    generated: int  # answers generated now (the rest came from the prediction cache)
    node: str  # where its answers were generated: "local", or the Ray node id(s), comma-separated


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
    """A cell's MLflow params: model and adapter config, retriever config and index version, prompt, generation
    and the precision it ran in."""
    from components.llm.engines import machine_precision

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
        "precision": machine_precision(setup.generation),  # generation.dtype as resolved on this machine
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
    """What the driver keeps of a cell while its pieces run: prompts, the cache, what it already had."""

    cell: Cell
    found: Retrieved | None
    prompts: list[str]
    cache: PredictionCache
    cached: dict[int, object]
    order: list[int]  # the cache's misses, in the length order they are generated in


def _plan(cells, questions, retrieved, setup, tokenizer) -> tuple[dict[str, _Plan], list[sharding.CellWork]]:
    """Render every cell's prompts, look them up in the prediction cache, and list what is left to generate."""
    from components.llm.engines import machine_precision

    plans, work, hashes = {}, [], {}
    n = min(setup.latency_questions, len(questions))
    precision = machine_precision(setup.generation)  # auto resolved here: the answers differ slightly by precision
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
            "precision": precision,
        }
        cache = PredictionCache(setup.cache_dir, scope)
        cached, missing = cache.lookup(prompts)
        order = sorted(missing, key=lambda i: len(prompts[i]))  # the batches the transformers engine makes
        plans[cell.name] = _Plan(cell, found, prompts, cache, cached, order)
        work.append(sharding.CellWork(cell.name, cell.model, [prompts[i] for i in order], prompts[:n]))
    return plans, work


def _tasks(work: list[sharding.CellWork], setup: GridSetup, workers: int) -> list[list[Task]]:
    """Each worker's tasks: the work split by (model variant, batch of questions) (:func:`sharding.split`)."""
    from components.llm.engines import lora_rank

    adapters = [d for m, d in setup.adapter_dirs.items() if m in {w.model for w in work}]
    rank = lora_rank(adapters) if setup.generation.engine == "vllm" else 0
    variants = {
        m: ModelVariant(m, local_dir(setup.base_dir), local_dir(setup.adapter_dirs.get(m)))
        for m in {w.model for w in work}
    }
    plan = sharding.split(work, workers, setup.generation.batch_size, setup.parallel.timed_cost)
    return [[Task(variants[p.model], p, setup.generation, rank) for p in pieces] for pieces in plan]


def evaluate_cells(
    cells: list[Cell],
    questions: pd.DataFrame,
    retrieved: dict[str, Retrieved],
    setup: GridSetup,
    split: str,
    pool=None,
) -> Iterator[CellResult]:
    """Answer and score every cell on ``questions``; results are yielded as each cell's answers are complete.

    The driver renders the prompts, answers from the prediction cache what it can, and has ``pool``
    (:func:`components.evaluation.executors.open_pool`; one is opened for this call when None)
    generate the rest, split by (model variant, batch of questions) over its workers.
    """
    if pool is None:
        with open_pool(setup.parallel, setup.store, os.environ.get("RAY_ADDRESS")) as opened:
            yield from evaluate_cells(cells, questions, retrieved, setup, split, opened)
        return
    from components.progress import Progress

    score = scorers(setup.similarity_model)
    plans, work = _plan(cells, questions, retrieved, setup, load_tokenizer(setup.base_dir))
    plan = _tasks(work, setup, pool.size)
    expected, pieces = sharding.pieces_per_cell([[t.piece for t in tasks] for tasks in plan]), {}
    total = sum(len(w.prompts) + len(w.timed) for w in work)
    with Progress(total, f"answer {split}", "answers", enabled=total > 0) as progress:
        outputs = pool.run(plan, progress)
        for cell in [c.name for c in cells if c.name not in expected]:  # nothing to generate, nothing timed
            yield _result(plans[cell], [], questions, setup, split, score)
        for out in outputs:
            pieces.setdefault(out.cell, []).append(out)
            if len(pieces[out.cell]) == expected[out.cell]:
                yield _result(plans[out.cell], pieces.pop(out.cell), questions, setup, split, score)


def _result(plan: _Plan, outs: list[PieceOutput], questions, setup, split, score) -> CellResult:
    """A cell's answers put back together from its pieces (and the cache), scored."""
    outs = sorted(outs, key=lambda o: o.start)
    generated = [g for o in outs for g in o.generations]
    timed = [s for o in outs for s in o.latencies_s]
    plan.cache.store([plan.prompts[i] for i in plan.order], generated)
    generations = {**plan.cached, **dict(zip(plan.order, generated, strict=True))}
    found = plan.found
    hits = found.hits if found else None
    answers = [generations[i] for i in range(len(plan.prompts))]
    rows = build_rows(questions, plan.prompts, answers, hits, score, found.top_k if found else None)
    if found:
        rows["retrieval_latency_s"] = found.latencies_s  # per question: the trace's retriever span
    # the first questions, answered alone: the trace's LLM span (else a batch share)
    rows["query_latency_s"] = [*timed, *[float("nan")] * (len(rows) - len(timed))]
    retrieval_s = found.latencies_s if found else [0.0] * len(timed)
    latencies = [g + r for g, r in zip(timed, retrieval_s, strict=False)]
    metrics = summarize(plan.cell, rows, latencies, found.latencies_s if found else None)
    metrics.update(training_metrics(setup.training.get(plan.cell.model)))
    params = cell_params(plan.cell, setup, found, split)
    if outs:  # where the answers were generated decides their precision (cached ones: this machine's)
        params["precision"] = ",".join(sorted({o.precision for o in outs}))
    node = ",".join(sorted({o.node for o in outs})) or "local"
    return CellResult(plan.cell, split, rows, metrics, params, len(plan.order), node)
