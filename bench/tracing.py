"""Benchmark: what the dashboard's GenAI logging adds to the grid, side by side with answering the same questions.

For the grid ``ragtune evaluate`` runs (params/evaluation.yaml: its retrievers chosen the same way,
its few-shot cells), on the first N questions of a split, with the same component calls:

- answer: ``evaluate_cells`` for each model variant's cells with an empty prediction cache: the
  model loaded once, every answer generated in batches and scored, the timed pass
  (``latency_questions`` answered one at a time): the grid's own work;
- trace: ``components.tracking.genai.log_evaluation`` over each cell's rows (a trace per question
  with its retriever and LLM spans, the scores' assessments, the managed dataset as input, the
  means), into a fresh sqlite store, spans in batches of ``tracing.span_batch``;
- genai.evaluate: ``mlflow.genai.evaluate`` re-scoring the same stored traces with the same scorers
  (what that call adds on top of traces that already exist: it logs each assessment on its own).

Run it with PYTHONPATH=. from the repository root, after `ragtune run` (it needs its data/ outputs):

    .venv/bin/python bench/tracing.py [--project .] [--max-questions 32] [--split dev]

Prints a table (one row per cell; a model variant's answering time is shared by its cells in
proportion to their questions) and writes bench/results/tracing.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import platform
import tempfile
import time
from pathlib import Path

import mlflow
import pandas as pd
import torch

from components import tracking
from components.catalog import Catalog
from components.config import load_params
from components.evaluation.prepare import prepare_grid
from components.evaluation.run import evaluate_cells, retrieve
from components.evaluation.scores import scored
from components.tracking import genai, scorers

ROOT = Path(__file__).resolve().parents[1]


def rescore_with_mlflow(run_id: str, experiment_id: str, scores: dict) -> float:
    """Seconds ``mlflow.genai.evaluate`` takes to score the stored traces of ``run_id`` again, in a new run."""
    traces = mlflow.search_traces(locations=[experiment_id], run_id=run_id)
    start = time.perf_counter()
    with mlflow.start_run(run_name="genai.evaluate"):
        mlflow.genai.evaluate(data=traces, scorers=scorers.scorers(scores))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, default=ROOT)
    parser.add_argument("--max-questions", type=int, default=32)
    parser.add_argument("--split", default="dev", help="the split whose questions every cell answers")
    args = parser.parse_args()
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    os.environ.pop("MLFLOW_TRACKING_URI", None)  # a fresh local store, whatever server the shell points at
    root = args.project.resolve()
    params = load_params(root / "params")
    catalog, cfg = Catalog(root, params.data.paths), params.evaluation
    g = prepare_grid(params, catalog, None)
    questions = g.splits[args.split].head(args.max_questions)
    found = retrieve({n: r for n, r in g.retrievers.items() if n in {c.retriever for c in g.cells}}, questions,
                     g.run_params)  # fmt: skip
    rows_out = []
    with tempfile.TemporaryDirectory() as tmp:
        one = g.setup.parallel.model_copy(update={"workers": 1})  # in this process
        setup = dataclasses.replace(g.setup, cache_dir=Path(tmp) / "cache", parallel=one, store=None)  # empty cache
        experiment_id = tracking.setup(Path(tmp), "bench-tracing")  # a fresh sqlite store, created untimed
        parent = tracking.start_parent("bench", {}, {})
        dataset = genai.split_dataset(questions, args.split, experiment_id, str(catalog.qa))
        for model in dict.fromkeys(c.model for c in g.cells):
            cells = [c for c in g.cells if c.model == model]
            t0 = time.perf_counter()
            results = list(evaluate_cells(cells, questions, found, setup, args.split))
            answer_s = (time.perf_counter() - t0) / len(results)  # shared by the model variant's cells
            for result in results:
                run_id = tracking.log_cell(parent, result.cell.name, {}, {}, result.rows, {})
                scores = scored(result.rows.columns)
                t1 = time.perf_counter()
                genai.log_evaluation(run_id, result.rows, result.cell, dataset, scores, cfg.tracing.span_batch)
                trace_s = time.perf_counter() - t1
                rows_out.append(
                    {
                        "cell": result.cell.name,
                        "questions": len(result.rows),
                        "answer_s": round(answer_s, 2),
                        "trace_s": round(trace_s, 2),
                        "trace_pct": round(100 * trace_s / answer_s, 1),
                        "genai_evaluate_s": round(rescore_with_mlflow(run_id, experiment_id, scores), 2),
                    }
                )
    table = pd.DataFrame(rows_out)
    total = {k: float(table[k].sum()) for k in ("answer_s", "trace_s", "genai_evaluate_s")}
    print(table.to_string(index=False))
    print(
        f"grid: answering {total['answer_s']:.1f} s, GenAI logging {total['trace_s']:.1f} s "
        f"({100 * total['trace_s'] / total['answer_s']:.1f}% of answering); mlflow.genai.evaluate re-scoring the "
        f"stored traces {total['genai_evaluate_s']:.1f} s ({100 * total['genai_evaluate_s'] / total['answer_s']:.1f}%)"
    )
    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    meta = {
        "machine": platform.machine(),
        "cpus": torch.get_num_threads(),
        "load_average": os.getloadavg(),
        "mlflow": mlflow.__version__,
        "split": args.split,
        "max_new_tokens": setup.generation.max_new_tokens,
        "batch_size": cfg.generation.batch_size,
        "span_batch": cfg.tracing.span_batch,
        "totals_s": {k: round(v, 2) for k, v in total.items()},
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    (out_dir / "tracing.json").write_text(json.dumps({"meta": meta, "rows": rows_out}, indent=2) + "\n")


if __name__ == "__main__":
    main()
