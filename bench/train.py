"""Training throughput: Ray Train with 1 and 2 workers against a plain PyTorch loop, and MFU.

All three train the first adapter of params/finetune.yaml (LoRA on SmolLM2-135M) on the same
examples (its data sources over data/processed) for ``--steps`` steps with the same per-step code
(``components.training.train_step``). Model FLOPs utilisation (MFU) is the model's training FLOP/s divided
by the machine's measured float32 matmul rate on all cores (the best of 1024^2 and 2048^2 matmuls).
LoRA training costs about 4 * N_params FLOPs per token: 2N forward and 2N for the activation
gradients of the backward pass; the frozen base weights get no weight gradients, which the usual
6N of full fine-tuning counts (attention scores and the adapters themselves are left out; both are
small at these lengths and ranks).

    python bench/train.py --steps 10          # needs `ragtune ingest` and `ragtune model` outputs
    python bench/train.py --root /path/to/project

Prints a table and writes bench/results/train.json (git-ignored).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

logger = logging.getLogger("bench.train")


FLOPS_PER_TOKEN = 4  # x N_params for LoRA: forward 2N + activation gradients 2N (no weight gradients)


def matmul_flops(sizes: tuple[int, ...] = (1024, 2048), seconds: float = 1.0) -> float:
    """Best float32 FLOP/s of n x n matmuls on this process's torch threads (about ``seconds`` each)."""
    import torch

    best = 0.0
    for n in sizes:
        a, b = torch.randn(n, n), torch.randn(n, n)
        a @ b
        reps, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds or reps < 3:
            a @ b
            reps += 1
        best = max(best, 2 * n**3 * reps / elapsed)
    return best


def plain_loop(examples: list[dict], base_dir: Path, cfg, steps: int) -> dict:
    """The same LoRA steps in this process, no Ray, no DDP."""
    import torch
    from transformers import AutoModelForCausalLM

    from components.training.train_step import add_lora, make_optimizer, micro_batches, plan_order, train_step

    torch.manual_seed(cfg.seed)
    model = add_lora(AutoModelForCausalLM.from_pretrained(base_dir), cfg.r, cfg.alpha, cfg.dropout, cfg.target_modules)
    optimizer, scheduler = make_optimizer(model, cfg.learning_rate, steps)
    order = plan_order(examples, cfg.batching, 0, 1, cfg.batch_size * cfg.grad_accum, steps, cfg.seed)
    model.train()
    tokens, start = 0, time.perf_counter()
    for s in range(steps):
        _, n = train_step(model, optimizer, scheduler, list(micro_batches(examples, order[s], cfg.grad_accum)), "cpu")
        tokens += n
    elapsed = time.perf_counter() - start
    return {
        "tokens_per_s": tokens / elapsed,
        "train_time_s": elapsed,
        "wall_time_s": elapsed,
        "threads": torch.get_num_threads(),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--root", type=Path, default=Path.cwd(), help="project root: params/, data/processed, data/models/base"
    )
    p.add_argument("--steps", type=int, default=10)
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

    import ray
    import torch

    from components.catalog import Catalog
    from components.config import load_params
    from components.llm.models import load_tokenizer
    from components.training.examples import build_examples
    from components.training.inputs import load_inputs
    from components.training.trainer import train_adapter

    params = load_params(args.root / "params")
    catalog = Catalog(args.root, params.data.paths)
    base_dir = catalog.base_model
    cfg = params.finetune.adapters[0].model_copy(update={"max_steps": args.steps, "checkpoint_every": None})
    inputs = load_inputs(catalog, [cfg], params.retrieval)
    examples = build_examples(inputs, load_tokenizer(base_dir), cfg, params.evaluation.prompts)
    n_params = _count_params(base_dir)

    rows = []
    flops = matmul_flops()
    rows.append(
        (
            f"plain PyTorch, 1 process x {torch.get_num_threads()} threads",
            plain_loop(examples, base_dir, cfg, args.steps),
        )
    )
    with tempfile.TemporaryDirectory() as tmp:
        for workers in (1, 2):
            ray_cfg = params.finetune.ray.model_copy(
                update={"num_workers": workers, "cpus_per_worker": 1, "max_failures": 0}
            )
            m = train_adapter(examples, base_dir, cfg, ray_cfg, Path(tmp) / f"a{workers}", Path(tmp) / f"ray{workers}")
            rows.append((f"Ray Train, {workers} worker(s) x 1 thread", m))
    ray.shutdown()

    result = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "steps": args.steps,
        "batch_size_per_worker": cfg.batch_size,
        "grad_accum": cfg.grad_accum,
        "max_length": cfg.max_length,
        "examples": len(examples),
        "n_params": n_params,
        "matmul_flops": flops,
        "flops_per_token": f"{FLOPS_PER_TOKEN}*N",
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "runs": [],
    }
    header = f"{'run':<38} {'tokens/s':>9} {'train s':>8} {'wall s':>8} {'MFU':>6}"
    lines = [header, "-" * len(header)]
    for name, m in rows:
        mfu = FLOPS_PER_TOKEN * n_params * m["tokens_per_s"] / flops
        result["runs"].append(
            {
                "run": name,
                "tokens_per_s": m["tokens_per_s"],
                "train_time_s": m["train_time_s"],
                "wall_time_s": m["wall_time_s"],
                "mfu": mfu,
            }
        )
        lines.append(
            f"{name:<38} {m['tokens_per_s']:>9.1f} {m['train_time_s']:>8.1f} {m['wall_time_s']:>8.1f} {mfu:>6.1%}"
        )
    lines.append(
        f"matmul float32: {flops / 1e9:.1f} GFLOP/s on {torch.get_num_threads()} threads; "
        f"N = {n_params / 1e6:.1f} M params; MFU = {FLOPS_PER_TOKEN}*N*tokens/s / matmul"
    )
    print("\n".join(lines))  # noqa: T201  (a benchmark script prints its table)
    out = ROOT / "bench" / "results" / "train.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


def _count_params(base_dir: Path) -> int:
    """Parameters of the base model, from its safetensors headers (no weights loaded)."""
    from safetensors import safe_open

    total = 0
    for f in base_dir.glob("*.safetensors"):
        with safe_open(str(f), "pt") as st:
            for key in st.keys():  # noqa: SIM118
                n = 1
                for d in st.get_slice(key).get_shape():
                    n *= d
                total += n
    return total


if __name__ == "__main__":
    main()
