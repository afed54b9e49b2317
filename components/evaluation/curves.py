"""Learning curves: each adapter's training snapshots scored by generation on tune questions (held out of
training; never dev or test: dev chooses the cell, so the curve must not be read on it).

The tune loss that early stopping watches is a proxy; the curve scores what the grid scores (the
main metric of answers), in the adapter's own cell: closed-book, or with its RAFT retriever, from
step 0 (the base model) to the last snapshot. The report reads from it whether the adapter was
under-trained and what more training could bring (:mod:`components.decision.training`,
:mod:`components.decision.forecast`).

The snapshots are scored as the grid's cells are, by :func:`components.evaluation.run.evaluate_cells`:
each snapshot is a model variant (``<adapter>@step-<n>``), so on the evaluate stage's worker pool
(Ray actors with ``evaluation.parallel.workers > 1``) the snapshots of every adapter are split over
the workers, fetched from the object store when one is set, and answered there; the driver keeps
the prediction cache and the scoring.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from components.config import AdapterConfig, RaftSource
from components.evaluation.grid import NO_RETRIEVAL, Cell
from components.evaluation.run import GridSetup, Retrieved

logger = logging.getLogger(__name__)


def home_retriever(adapter: AdapterConfig) -> str:
    """The retriever an adapter was trained to read (its RAFT source's), else none: closed-book."""
    return next((s.retriever for s in adapter.data if isinstance(s, RaftSource)), NO_RETRIEVAL)


def snapshots(curve_dir: Path) -> list[tuple[int, Path]]:
    """An adapter's training snapshots (``step-<n>`` folders), by step."""
    found = [(int(p.name.removeprefix("step-")), p) for p in curve_dir.glob("step-*") if p.is_dir()]
    return sorted(found)


@dataclass(frozen=True)
class Curve:
    """An adapter's learning curve: one summary point per snapshot, and the per-question scores behind them."""

    points: list[dict]  # step, epochs, tokens, compute_s, tune_loss, main metric, questions
    scores: pd.DataFrame  # step, qa_id, main metric: what the forecast resamples


def _steps(adapter: AdapterConfig, curve_dir: Path, home: str) -> tuple[list[tuple[int, Cell]], dict[str, Path]]:
    """The curve's points as grid cells, by step: the base model at step 0, then each snapshot as a model
    variant of its own, all in the adapter's own cell; and each variant's snapshot folder."""
    steps, dirs = [(0, Cell("base", home, 0))], {}
    for step, folder in snapshots(curve_dir):
        variant = f"{adapter.name}@{folder.name}"
        dirs[variant] = folder
        steps.append((step, Cell(variant, home, 0)))
    return steps, dirs


def _answered(curves: dict, questions, retrieved: dict[str, Retrieved], setup: GridSetup, pool) -> dict:
    """Every point of every curve answered and scored in one grid run (one split over the workers); by cell name.

    Args:
        curves: adapter name -> (its config, its steps and snapshot folders of :func:`_steps`).
    """
    from dataclasses import replace

    from components.evaluation.run import evaluate_cells

    cells, dirs, configs = {}, {}, {}
    for cfg, (steps, folders) in curves.values():
        cells.update({cell.name: cell for _, cell in steps})
        dirs.update(folders)
        configs.update(dict.fromkeys(folders, cfg))
    # one timed query per point: the curve measures quality, not latency
    snapshot_setup = replace(setup, adapter_dirs=dirs, adapters=configs, training={}, latency_questions=1)
    results = evaluate_cells(list(cells.values()), questions, retrieved, snapshot_setup, "tune", pool)
    return {r.cell.name: r for r in results}


def _curve(adapter: AdapterConfig, steps: list[tuple[int, Cell]], answered: dict, setup, main_metric: str) -> Curve:
    """One point per step: epochs (examples drawn over the adapter's examples), training tokens, compute
    seconds and tune loss (from training), and the main metric; and the per-question scores behind them."""
    training = setup.training.get(adapter.name, {})
    evals = {e["step"]: e for e in training.get("evals", [])}
    per_step = training.get("examples_per_step", 0) / max(training.get("examples", 0), 1)
    points, scores = [], []
    for step, cell in steps:
        rows = answered[cell.name].rows
        point = {k: evals[step][k] for k in ("tokens", "compute_s", "tune_loss")} if step in evals else {}
        mean = float(rows[main_metric].mean())
        points.append({"step": step, "epochs": step * per_step, **point, main_metric: mean, "questions": len(rows)})
        scores.append(pd.DataFrame({"step": step, "qa_id": rows["qa_id"], main_metric: rows[main_metric]}))
        logger.info("learning curve of %s: step %d, %s %.3f", adapter.name, step, main_metric, mean)
    return Curve(points, pd.concat(scores, ignore_index=True))


def score_curve(
    adapter: AdapterConfig,
    curve_dir: Path,
    questions: pd.DataFrame,
    retrieved: Retrieved | None,
    setup: GridSetup,
    main_metric: str,
    pool=None,
) -> Curve:
    """One point per snapshot, plus step 0: the base model in the adapter's own cell (where training starts).

    Each point has its step, epochs (examples drawn over the adapter's examples), training tokens,
    compute seconds and tune loss (from training), and the main metric on ``questions``. ``pool``:
    the workers that answer (:func:`components.evaluation.executors.open_pool`); None: one of its own.
    """
    home = home_retriever(adapter)
    steps, folders = _steps(adapter, curve_dir, home)
    found = {home: retrieved} if retrieved is not None else {}
    answered = _answered({adapter.name: (adapter, (steps, folders))}, questions, found, setup, pool)
    return _curve(adapter, steps, answered, setup, main_metric)


def score_curves(grid, curve_dir, questions: pd.DataFrame, main_metric: str, pool=None) -> dict[str, Curve]:
    """Every adapter's learning curve (see :func:`score_curve`), on ``questions`` (the tuning slice), all points
    of all adapters answered in one run on ``pool`` (the evaluate stage's; None: one of its own).

    Args:
        grid: the evaluate stage's :class:`components.evaluation.prepare.Grid` (retrievers opened).
        curve_dir: adapter name -> the folder of its snapshots.
    """
    from components.evaluation.run import retrieve

    if questions.empty:
        logger.warning("no tune questions: the learning curves are not scored (params/data.yaml split.tune)")
        return {}
    homes = {name: home_retriever(cfg) for name, cfg in grid.setup.adapters.items()}
    opened = {n: grid.retrievers[n] for n in set(homes.values()) if n in grid.retrievers}
    retrieved = retrieve(opened, questions, grid.run_params)
    curves = {name: (cfg, _steps(cfg, curve_dir(name), homes[name])) for name, cfg in grid.setup.adapters.items()}
    answered = _answered(curves, questions, retrieved, grid.setup, pool)
    return {name: _curve(cfg, steps, answered, grid.setup, main_metric) for name, (cfg, (steps, _)) in curves.items()}


def curve_scores(curves: dict[str, Curve]) -> pd.DataFrame:
    """Every adapter's per-question curve scores in one table (``adapter``, ``step``, ``qa_id``, the metric)."""
    frames = [curve.scores.assign(adapter=name) for name, curve in curves.items()]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["adapter", "step", "qa_id"])
