"""Benchmark: the LLM grid's wall time in one process and on Ray workers, side by side in one run.

Runs every dev cell of the project's grid (the same ``prepare_grid`` and ``evaluate_cells`` as
``ragtune evaluate``) on the first N dev questions, once per worker count, each with an empty
prediction cache, then once more with the cache the first run filled. Run it with PYTHONPATH=.
from the repository root of a project where ``ragtune run`` has finished:

    .venv/bin/python bench/grid.py [--project .] [--max-questions 16] [--workers 1 2]

Prints a table and writes bench/results/grid.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import tempfile
import time
from pathlib import Path

import torch

from components.catalog import Catalog
from components.config import load_params
from components.evaluation.prepare import prepare_grid
from components.evaluation.run import evaluate_cells, retrieve

ROOT = Path(__file__).resolve().parents[1]


def timed_grid(grid, questions, workers: int, cache_dir: Path) -> tuple[float, list[str]]:
    """Seconds for the whole grid on ``questions`` with ``workers``, and where each cell ran."""
    setup = dataclasses.replace(grid.setup, workers=workers, cache_dir=cache_dir)
    needed = {c.retriever for c in grid.cells} & set(grid.retrievers)
    start = time.perf_counter()
    retrieved = retrieve({n: grid.retrievers[n] for n in needed}, questions, grid.run_params)
    nodes = [r.node for r in evaluate_cells(grid.cells, questions, retrieved, setup, "dev")]
    return time.perf_counter() - start, nodes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, default=ROOT)
    parser.add_argument("--max-questions", type=int, default=16)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    root = args.project.resolve()
    params = load_params(root / "params")
    grid = prepare_grid(params, Catalog(root, params.data.paths), store=None)
    questions = grid.splits["dev"].head(args.max_questions)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for workers in args.workers:
            cold, nodes = timed_grid(grid, questions, workers, Path(tmp) / f"w{workers}")
            warm, _ = timed_grid(grid, questions, workers, Path(tmp) / f"w{workers}")
            rows.append(
                {"workers": workers, "cold_s": round(cold, 1), "cached_s": round(warm, 1), "nodes": sorted(set(nodes))}
            )
    base = rows[0]["cold_s"]
    for row in rows:
        row["speedup"] = round(base / row["cold_s"], 2)
    print(f"{len(grid.cells)} cells x {len(questions)} dev questions")  # noqa: T201 (a benchmark prints its table)
    print(f"{'workers':>7} {'cold s':>8} {'cached s':>9} {'speedup':>8}")  # noqa: T201
    for row in rows:
        print(f"{row['workers']:>7} {row['cold_s']:>8.1f} {row['cached_s']:>9.1f} {row['speedup']:>8.2f}")  # noqa: T201
    meta = {
        "machine": platform.machine(),
        "cpus": torch.get_num_threads(),
        "cells": len(grid.cells),
        "questions": len(questions),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    out = ROOT / "bench" / "results" / "grid.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
