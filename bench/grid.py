"""Benchmark: wall time of the LLM grid (the `evaluate` stage's work), per cell, cold and cached.

Runs every cell of params/evaluation.yaml's grid on the first N questions of the split with the
same component calls as `ragtune evaluate` (retrieval once per retriever; the model is loaded per cell
so that its load time shows), first with an empty prediction cache, then again with the cache it filled.
Run it with PYTHONPATH=. from the repository root.

    .venv/bin/python bench/grid.py [--project .] [--max-questions 16]

Prints a table and writes bench/results/grid.json. Needs a project where `ragtune index`,
`ragtune model` and `ragtune finetune` have run (data/index, data/models).
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import lancedb
import pandas as pd
import torch

from components.catalog import Catalog
from components.config import load_params
from components.evaluation.answer import answer_cell
from components.evaluation.grid import NO_RETRIEVAL, grid, grid_retrievers, select_questions
from components.evaluation.metrics import load_metric
from components.evaluation.run import ANSWER_METRICS, retrieve
from components.llm.models import load_model, load_tokenizer
from components.llm.prediction_cache import PredictionCache
from components.retrieval.open import Embedders, open_retrievers, run_params_of

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, default=ROOT)
    parser.add_argument("--max-questions", type=int, default=16)
    args = parser.parse_args()
    root = args.project.resolve()
    params = load_params(root / "params")
    catalog, cfg = Catalog(root, params.data.paths), params.evaluation
    questions = select_questions(pd.read_parquet(catalog.qa), cfg.split, args.max_questions)
    names = grid_retrievers(cfg.grid_retrievers, params.retrieval.retrievers)
    in_grid = [params.retrieval.retriever(n) for n in names]
    opened = open_retrievers(in_grid, lancedb.connect(str(catalog.index)), Embedders(params.retrieval.embedders))
    retrieved = retrieve(opened, questions, run_params_of(opened, params.retrieval, params.data.chunkers))
    metrics = {name: load_metric(name) for name in ANSWER_METRICS}
    base_dir = catalog.base_model
    tokenizer = load_tokenizer(base_dir)
    rows, start_all = [], time.perf_counter()
    with tempfile.TemporaryDirectory() as cache_dir:
        for cell in grid([a.name for a in params.finetune.adapters], list(retrieved)):
            t0 = time.perf_counter()
            adapter = None if cell.model == "base" else catalog.adapter(cell.model)
            model = load_model(base_dir, adapter)
            load_s = time.perf_counter() - t0
            hits = None if cell.retriever == NO_RETRIEVAL else retrieved[cell.retriever]
            timings = {}
            for run in ("cold", "cached"):
                cache = PredictionCache(Path(cache_dir), {"cell": cell.name})
                t1 = time.perf_counter()
                answer_cell(
                    model,
                    tokenizer,
                    questions,
                    hits.hits if hits else None,
                    cfg.prompts,
                    cfg.generation,
                    metrics,
                    top_k=hits.top_k if hits else None,
                    cache=cache,
                )
                timings[run] = time.perf_counter() - t1
            rows.append(
                {
                    "cell": cell.name,
                    "questions": len(questions),
                    "load_s": round(load_s, 1),
                    "cold_s": round(timings["cold"], 1),
                    "cached_s": round(timings["cached"], 2),
                }
            )
    total = time.perf_counter() - start_all
    print(pd.DataFrame(rows).to_string(index=False))
    print(f"grid total {total:.1f} s for {len(rows)} cells x {len(questions)} questions")
    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    meta = {
        "machine": platform.machine(),
        "cpus": torch.get_num_threads(),
        "torch": torch.__version__,
        "max_new_tokens": cfg.generation.max_new_tokens,
        "batch_size": cfg.generation.batch_size,
        "total_s": round(total, 1),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    (out_dir / "grid.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
