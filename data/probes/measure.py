"""Measure which probes a model answers closed-book, with the pipeline's own prompts, decoding and metrics.

The model is the base model of ``params/finetune.yaml`` (de-quantised once into ``--model-dir`` by
the pipeline's ``prepare_base_model``, as ``ragtune model`` does), or any model folder given there.
Prompts, greedy decoding, batch size and the answer-cap rule are ``params/evaluation.yaml``'s; the cap
follows the probes' own answers (the pipeline follows the train answers) unless ``--max-new-tokens``
sets it. ``--few-shot-from`` puts pairs of another QA file before each probe, as the pipeline's
few-shot cells do. Each answer is scored by the local ``qa_match`` evaluate module; a probe counts as
answered when its main metric reaches ``answered_threshold`` (``answer_contained`` is shown beside).
Prints a table per task and writes the per-question answers as JSONL::

    python data/probes/measure.py data/probes/general.jsonl --model-dir /tmp/base --max-new-tokens 16 \
        --out /tmp/answers.jsonl
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import pandas as pd

from components.config import load_params
from components.evaluation.answer import answer_cell
from components.evaluation.metrics import load_metric
from components.llm.generation import answer_cap, few_shot_turns
from components.llm.models import load_model, load_tokenizer, prepare_base_model


def read_probes(path: Path) -> pd.DataFrame:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return pd.DataFrame(
        {
            "qa_id": [r["id"] for r in rows],
            "task": [r.get("task", "") for r in rows],
            "question": [r["question"] for r in rows],
            "answers": [r["answers"] for r in rows],
        }
    )


def summary(rows: pd.DataFrame, metric: str, threshold: float) -> pd.DataFrame:
    rows = rows.assign(answered=rows[metric] >= threshold)
    table = rows.groupby("task", sort=False).agg(
        probes=("qa_id", "size"),
        answered=("answered", "sum"),
        exact_match=("exact_match", "mean"),
        f1=("f1", "mean"),
        answer_contained=("answer_contained", "mean"),
    )
    total = pd.DataFrame(
        {
            "probes": [len(rows)],
            "answered": [int(rows["answered"].sum())],
            "exact_match": [rows["exact_match"].mean()],
            "f1": [rows["f1"].mean()],
            "answer_contained": [rows["answer_contained"].mean()],
        },
        index=["all"],
    )
    table = pd.concat([table, total])
    table.insert(2, "share_answered", table["answered"] / table["probes"])
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("probes", type=Path)
    parser.add_argument("--params", type=Path, default=Path("params"))
    parser.add_argument("--model-dir", type=Path, required=True, help="made from params' base model when absent")
    parser.add_argument("--out", type=Path, help="per-question answers and scores (JSONL)")
    parser.add_argument("--max-new-tokens", type=int, help="the answer cap (default: the pipeline's rule)")
    parser.add_argument("--few-shot-from", type=Path, help="a QA JSONL whose pairs precede each probe (few-shot)")
    parser.add_argument("--k", type=int, default=3, help="few-shot pairs (with --few-shot-from)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    params = load_params(args.params)
    cfg = params.evaluation
    if not (args.model_dir / "config.json").is_file():
        print(prepare_base_model(params.finetune.base_model, args.model_dir))
    tokenizer = load_tokenizer(args.model_dir)
    model = load_model(args.model_dir)
    probes = read_probes(args.probes)
    cap = args.max_new_tokens or answer_cap([a[0] for a in probes["answers"]], tokenizer, cfg.generation)
    examples = []
    if args.few_shot_from is not None:
        examples = few_shot_turns(cfg.prompts, read_probes(args.few_shot_from), args.k, cfg.few_shot.seed)
    generation = cfg.generation.model_copy(update={"max_new_tokens": cap})
    scorers = {"qa_match": load_metric("qa_match").compute}
    start = time.perf_counter()
    rows = answer_cell(model, tokenizer, probes, None, cfg.prompts, generation, scorers, examples=examples)
    seconds = time.perf_counter() - start
    rows["task"] = probes["task"]
    print(
        f"{len(rows)} probes, answer cap {cap} new tokens, batch {generation.batch_size}, greedy, "
        f"{len(examples)} few-shot pairs, "
        f"{seconds:.0f} s; answered: {cfg.main_metric} >= {cfg.answered_threshold}"
    )
    print(summary(rows, cfg.main_metric, cfg.answered_threshold).to_string(float_format="%.3f"))
    if args.out is not None:
        keep = ["qa_id", "task", "question", "answers", "prediction", "exact_match", "f1", "answer_contained"]
        args.out.write_text(rows[keep].to_json(orient="records", lines=True, force_ascii=False), encoding="utf-8")


if __name__ == "__main__":
    main()
