"""Benchmark: what the dashboard's GenAI logging adds to the grid, side by side with answering the same questions.

For every cell of params/evaluation.yaml's grid, on the first N questions of the split, with the
same component calls as `ragtune evaluate`:

- answer: ``answer_cell`` with an empty prediction cache (generation and scoring: the grid's work;
  model loading is left out, which makes the overhead look larger, not smaller);
- trace: ``components.tracking.genai.log_evaluation`` over those rows (a trace per question with its
  retriever and LLM spans, the scorers' assessments, the dataset, the means) into a fresh sqlite store;
- genai.evaluate: ``mlflow.genai.evaluate`` re-scoring the same stored traces with the same scorers
  (what that call adds on top of traces that already exist: it logs each assessment on its own).

Run it with PYTHONPATH=. from the repository root, after `ragtune run` (it needs data/index and data/models):

    .venv/bin/python bench/tracing.py [--project .] [--max-questions 32]

Prints a table and writes bench/results/tracing.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import tempfile
import time
from pathlib import Path

import lancedb
import mlflow
import pandas as pd
import torch

from components import tracking
from components.catalog import Catalog
from components.config import load_params
from components.evaluation.answer import answer_cell
from components.evaluation.grid import grid, grid_retrievers, select_questions
from components.evaluation.metrics import load_metric
from components.evaluation.run import ANSWER_METRICS, retrieve
from components.evaluation.scores import scored
from components.llm.models import load_model, load_tokenizer
from components.llm.prediction_cache import PredictionCache
from components.retrieval.open import Embedders, open_retrievers, run_params_of
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
    args = parser.parse_args()
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    os.environ.pop("MLFLOW_TRACKING_URI", None)  # a fresh local store, whatever server the shell points at
    root = args.project.resolve()
    params = load_params(root / "params")
    catalog, cfg = Catalog(root, params.data.paths), params.evaluation
    questions = select_questions(pd.read_parquet(catalog.qa), cfg.split, args.max_questions)
    in_grid = [params.retrieval.retriever(n) for n in grid_retrievers(cfg.grid_retrievers, params.retrieval.retrievers)]
    opened = open_retrievers(in_grid, lancedb.connect(str(catalog.index)), Embedders(params.retrieval.embedders))
    retrieved = retrieve(opened, questions, run_params_of(opened, params.retrieval, params.data.chunkers))
    metrics = {name: load_metric(name) for name in ANSWER_METRICS}
    tokenizer = load_tokenizer(catalog.base_model)
    dataset = genai.split_dataset(questions, cfg.split, str(catalog.qa))
    rows_out, loaded = [], None
    with tempfile.TemporaryDirectory() as tmp:
        experiment_id = tracking.setup(Path(tmp), "bench-tracing")  # a fresh sqlite store, created untimed
        parent = tracking.start_parent("bench", {}, {})
        for cell in grid([a.name for a in params.finetune.adapters], list(retrieved)):
            if loaded is None or loaded[0] != cell.model:
                adapter = None if cell.model == "base" else catalog.adapter(cell.model)
                loaded = (cell.model, load_model(catalog.base_model, adapter))
            hits = retrieved.get(cell.retriever)
            cache = PredictionCache(Path(tmp) / "cache", {"cell": cell.name})
            t0 = time.perf_counter()
            rows = answer_cell(
                loaded[1],
                tokenizer,
                questions,
                hits.hits if hits else None,
                cfg.prompts,
                cfg.generation,
                metrics,
                top_k=hits.top_k if hits else None,
                cache=cache,
            )
            answer_s = time.perf_counter() - t0
            if hits:
                rows["retrieval_latency_s"] = hits.latencies_s
            run_id = tracking.log_cell(parent, cell.name, {}, {}, rows, {})
            t1 = time.perf_counter()
            genai.log_evaluation(run_id, rows, cell, dataset, scored(rows.columns))
            trace_s = time.perf_counter() - t1
            evaluate_s = rescore_with_mlflow(run_id, experiment_id, scored(rows.columns))
            rows_out.append(
                {
                    "cell": cell.name,
                    "questions": len(rows),
                    "answer_s": round(answer_s, 2),
                    "trace_s": round(trace_s, 2),
                    "trace_pct": round(100 * trace_s / answer_s, 1),
                    "genai_evaluate_s": round(evaluate_s, 2),
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
        "mlflow": mlflow.__version__,
        "max_new_tokens": cfg.generation.max_new_tokens,
        "batch_size": cfg.generation.batch_size,
        "totals_s": {k: round(v, 2) for k, v in total.items()},
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    (out_dir / "tracing.json").write_text(json.dumps({"meta": meta, "rows": rows_out}, indent=2) + "\n")


if __name__ == "__main__":
    main()
