"""Benchmark: answer generation throughput, batched against one question at a time.

Runs both side by side in one process on the same questions (closed-book prompts from the demo
set) and the same model, so the ratio is meaningful on a noisy shared machine.

    .venv/bin/python bench/generation.py [--questions 32] [--batch-size 16]

Prints a table and writes bench/results/generation.json. Needs `ragtune model` to have run
(it reads data/models/base).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import pandas as pd
import torch

from components.catalog import Catalog
from components.config import load_params
from components.llm.generation import chat_prompt, generate, user_message
from components.llm.models import load_model, load_tokenizer

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()
    params = load_params(ROOT / "params")
    base_dir = Catalog(ROOT, params.data.paths).base_model
    tokenizer, model = load_tokenizer(base_dir), load_model(base_dir)
    qa = pd.read_json(ROOT / "data" / "demo" / "qa.jsonl", lines=True).head(args.questions)
    prompts = [
        chat_prompt(tokenizer, params.evaluation.prompts.system, user_message(params.evaluation.prompts, q, None))
        for q in qa["question"]
    ]
    generate(model, tokenizer, prompts[:2], params.evaluation.generation)  # warm-up
    rows = []
    for batch_size in (1, args.batch_size):
        cfg = params.evaluation.generation.model_copy(update={"batch_size": batch_size})
        start = time.perf_counter()
        out = generate(model, tokenizer, prompts, cfg)
        elapsed = time.perf_counter() - start
        tokens = sum(g.completion_tokens for g in out)
        rows.append(
            {
                "batch_size": batch_size,
                "questions": len(prompts),
                "seconds": round(elapsed, 2),
                "answers_per_s": round(len(prompts) / elapsed, 2),
                "tokens_per_s": round(tokens / elapsed, 1),
            }
        )
    rows[1]["speedup"] = round(rows[1]["answers_per_s"] / rows[0]["answers_per_s"], 2)
    print(pd.DataFrame(rows).to_string(index=False))
    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    meta = {
        "machine": platform.machine(),
        "cpus": torch.get_num_threads(),
        "torch": torch.__version__,
        "max_new_tokens": params.evaluation.generation.max_new_tokens,
    }
    (out_dir / "generation.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
