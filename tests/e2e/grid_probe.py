"""Run a tiny grid through ``components.evaluation.run.evaluate_cells`` and print each cell's result as JSON.

``python -m tests.e2e.grid_probe SPEC.json``: the spec names the base model, the adapter folders,
the cache folder, ``workers`` (and ``gpus_per_worker``, ``batch_size``, ``curve``: an adapter name
and a folder of its snapshots); ``RAY_ADDRESS`` in the environment selects a cluster. A separate
process, so each run joins (or starts) its own Ray. After the cells, one line ``{"workers": [...]}``:
what each worker of the pool did, and where; with ``curve``, then ``{"curve": [...]}`` (its points,
scored on the same pool) and ``{"workers_after_curve": [...]}``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path

import pandas as pd

from components.evaluation.curves import score_curve
from components.evaluation.executors import open_pool
from components.evaluation.grid import grid
from components.evaluation.run import GridSetup, evaluate_cells
from components.storage import ObjectStore
from tests.conftest import PARAMS, like

QUESTIONS = pd.DataFrame(
    {
        "qa_id": ["q1", "q2", "q3"],
        "question": ["What is the capital of France?", "What is the ISO code of Bolivia?", "Who wrote Hamlet?"],
        "answers": [["Paris"], ["BOL"], ["Shakespeare"]],
        "doc_ids": [["d1"], ["d2"], ["d3"]],
    }
)


def random_adapter(base_model_dir: Path, folder: Path) -> Path:
    """A LoRA adapter with random (not zero) weights: its answers differ from the base model's."""
    from peft import LoraConfig, get_peft_model

    from components.llm.models import load_model

    lora = LoraConfig(
        r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM", init_lora_weights=False
    )
    get_peft_model(load_model(base_model_dir), lora).save_pretrained(folder)
    return folder


def grid_setup(spec: dict, store: ObjectStore | None) -> GridSetup:
    """A tiny grid's setup: the spec's base model, adapters (name -> folder), cache folder and workers."""
    adapters = {name: like(PARAMS.finetune.adapters[0], name=name) for name in spec["adapters"]}
    return GridSetup(
        base_dir=Path(spec["base_dir"]),
        adapter_dirs={name: Path(path) for name, path in spec["adapters"].items()},
        adapters=adapters,
        prompts=PARAMS.evaluation.prompts,
        generation=like(
            PARAMS.evaluation.generation, max_new_tokens=6, min_new_tokens=4, batch_size=spec.get("batch_size", 4)
        ),
        examples=[],
        model_info={"name": "smollm2", "source": "test"},
        training={},
        cache_dir=Path(spec["cache_dir"]),
        similarity_model=None,
        latency_questions=1,
        parallel=like(
            PARAMS.evaluation.parallel,
            workers=spec["workers"],
            cpus_per_worker=1,
            gpus_per_worker=spec.get("gpus_per_worker", 0),
        ),
        store=store,
    )


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    setup = grid_setup(spec, ObjectStore.from_env(os.environ))
    with open_pool(setup.parallel, setup.store, os.environ.get("RAY_ADDRESS")) as pool:
        for result in evaluate_cells(grid(list(spec["adapters"]), [], [], 0), QUESTIONS, {}, setup, "dev", pool):
            row = {"cell": result.cell.name, "node": result.node, "predictions": result.rows["prediction"].tolist()}
            print(json.dumps({**row, "f1": result.metrics["f1"]}), flush=True)
        print(json.dumps({"workers": [dataclasses.asdict(w) for w in pool.stats]}), flush=True)
        if "curve" in spec:
            name, folder = spec["curve"]
            curve = score_curve(setup.adapters[name], Path(folder), QUESTIONS, None, setup, "f1", pool)
            print(json.dumps({"curve": curve.points}), flush=True)
            print(json.dumps({"workers_after_curve": [dataclasses.asdict(w) for w in pool.stats]}), flush=True)


if __name__ == "__main__":
    main()
