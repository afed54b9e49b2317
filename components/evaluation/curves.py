"""Learning curves: each adapter's training snapshots scored on dev questions by generation.

The dev loss that early stopping watches is a proxy; the curve scores what the grid scores (the
main metric of answers), in the adapter's own cell: closed-book, or with its RAFT retriever. The
report reads from it whether more training could change the verdict
(:func:`components.decision.training.still_improving`).
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from components.config import AdapterConfig, RaftSource
from components.evaluation.answer import answer_cell
from components.evaluation.grid import NO_RETRIEVAL
from components.evaluation.run import GridSetup, Retrieved, scorers
from components.io import dir_hash
from components.llm.models import load_model, load_tokenizer
from components.llm.prediction_cache import PredictionCache

logger = logging.getLogger(__name__)


def home_retriever(adapter: AdapterConfig) -> str:
    """The retriever an adapter was trained to read (its RAFT source's), else none: closed-book."""
    return next((s.retriever for s in adapter.data if isinstance(s, RaftSource)), NO_RETRIEVAL)


def snapshots(curve_dir: Path) -> list[tuple[int, Path]]:
    """An adapter's training snapshots (``step-<n>`` folders), by step."""
    found = [(int(p.name.removeprefix("step-")), p) for p in curve_dir.glob("step-*") if p.is_dir()]
    return sorted(found)


def score_curve(
    adapter: AdapterConfig,
    curve_dir: Path,
    questions: pd.DataFrame,
    retrieved: Retrieved | None,
    setup: GridSetup,
    main_metric: str,
) -> list[dict]:
    """One point per snapshot: its step, training tokens and compute seconds, dev loss, and main metric on dev."""
    evals = {e["step"]: e for e in setup.training.get(adapter.name, {}).get("evals", [])}
    score = scorers(setup.similarity_model)
    tokenizer = load_tokenizer(setup.base_dir)
    points = []
    for step, folder in snapshots(curve_dir):
        model = load_model(setup.base_dir, folder)
        cache = PredictionCache(
            setup.cache_dir,
            {
                "base_model": setup.model_info,
                "adapter": dir_hash(folder),
                "retrieval": retrieved.params if retrieved else "none",
                "prompts": setup.prompts.model_dump(),
                "generation": setup.generation.model_dump(),
            },
        )
        hits = retrieved.hits if retrieved else None
        rows = answer_cell(
            model,
            tokenizer,
            questions,
            hits,
            setup.prompts,
            setup.generation,
            score,
            retrieved.top_k if retrieved else None,
            cache,
        )
        point = {k: evals[step][k] for k in ("tokens", "compute_s", "dev_loss")} if step in evals else {}
        points.append({"step": step, **point, main_metric: float(rows[main_metric].mean()), "questions": len(rows)})
        logger.info("learning curve of %s: step %d, %s %.3f", adapter.name, step, main_metric, points[-1][main_metric])
    return points


def score_curves(grid, curve_dir, questions: pd.DataFrame, main_metric: str) -> dict[str, list[dict]]:
    """Every adapter's learning curve (see :func:`score_curve`), on ``questions``.

    Args:
        grid: the evaluate stage's :class:`components.evaluation.prepare.Grid` (retrievers opened).
        curve_dir: adapter name -> the folder of its snapshots.
    """
    from components.evaluation.run import retrieve

    homes = {name: home_retriever(cfg) for name, cfg in grid.setup.adapters.items()}
    opened = {n: grid.retrievers[n] for n in set(homes.values()) if n in grid.retrievers}
    retrieved = retrieve(opened, questions, grid.run_params)
    return {
        name: score_curve(cfg, curve_dir(name), questions, retrieved.get(homes[name]), grid.setup, main_metric)
        for name, cfg in grid.setup.adapters.items()
    }
