"""GPU check of the training step and batched generation, without Ray or the SmolLM2 weights.

Builds the SmolLM2-135M architecture from ``bench/smollm2_config.json`` with random weights,
adds LoRA with the settings of the ``lora-r8-qv`` adapter (params/finetune.yaml), and runs the
same per-step code the Ray Train worker runs (``components.training.train_step``: batching, gradient
accumulation, bf16 autocast on CUDA) for ``--steps`` steps, then batched greedy generation.
Prints one JSON object: training tokens/s, generation tokens/s, peak memory.

Needs only torch, transformers, peft and numpy (plus this repository on the path, which the
script adds itself; ``components.training.train_step`` imports nothing else at module level).

    python bench/gpu_check.py                       # cuda, 30 steps
    python bench/gpu_check.py --device cpu --steps 2
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from components.training.train_step import (  # noqa: E402  (after the path insert)
    add_lora,
    make_optimizer,
    micro_batches,
    peak_memory_mb,
    plan_order,
    train_step,
)


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=16, help="examples per step")
    p.add_argument("--grad-accum", type=int, default=1)
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--r", type=int, default=8)
    p.add_argument("--alpha", type=int, default=16)
    p.add_argument("--dropout", type=float, default=0.05)
    p.add_argument("--targets", default="q_proj,v_proj")
    p.add_argument("--gen-batch", type=int, default=16)
    p.add_argument("--gen-prompt-len", type=int, default=96)
    p.add_argument("--gen-tokens", type=int, default=24)
    p.add_argument("--config", default=str(ROOT / "bench" / "smollm2_config.json"))
    return p.parse_args()


def main() -> None:
    from transformers import AutoConfig, AutoModelForCausalLM

    args = _args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda, but torch sees no GPU (try --device cpu)")
    bf16 = device.type == "cuda"
    torch.manual_seed(0)
    config = AutoConfig.from_pretrained(args.config)
    model = AutoModelForCausalLM.from_config(config).to(device)  # random weights: speed, not quality
    model = add_lora(model, args.r, args.alpha, args.dropout, args.targets.split(","))
    params = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)

    # random token sequences of varied length, like the corpus windows and chat examples
    gen = torch.Generator().manual_seed(0)
    n_examples = args.steps * args.batch_size
    lengths = torch.randint(args.seq_len // 2, args.seq_len + 1, (n_examples,), generator=gen).tolist()
    examples = []
    for n in lengths:
        ids = torch.randint(3, config.vocab_size, (n,), generator=gen).tolist()
        examples.append({"input_ids": ids, "labels": ids})
    order = plan_order(examples, "bucketed", 0, 1, args.batch_size, args.steps, seed=0)
    optimizer, scheduler = make_optimizer(model, 2e-4, args.steps)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()

    model.train()
    losses, tokens, step_times = [], 0, []
    for s in range(args.steps):
        micro = list(micro_batches(examples, order[s], args.grad_accum))
        t0 = time.perf_counter()
        loss, n = train_step(model, optimizer, scheduler, micro, device, bf16=bf16)
        if device.type == "cuda":
            torch.cuda.synchronize()
        step_times.append(time.perf_counter() - t0)
        losses.append(loss)
        tokens += n
    warm = step_times[1:] or step_times  # the first step includes kernel selection / allocator warm-up
    warm_tokens = tokens - sum(len(examples[i]["input_ids"]) for i in order[0]) if len(step_times) > 1 else tokens
    train_tps = warm_tokens / sum(warm)
    train_peak = peak_memory_mb(device)

    model.eval()
    prompts = torch.randint(3, config.vocab_size, (args.gen_batch, args.gen_prompt_len), generator=gen).to(device)
    mask = torch.ones_like(prompts)
    with torch.inference_mode(), torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=bf16):
        t0 = time.perf_counter()
        out = model.generate(
            input_ids=prompts,
            attention_mask=mask,
            max_new_tokens=args.gen_tokens,
            min_new_tokens=args.gen_tokens,
            do_sample=False,
            pad_token_id=config.pad_token_id,
        )
        if device.type == "cuda":
            torch.cuda.synchronize()
        gen_s = time.perf_counter() - t0
    new_tokens = (out.shape[1] - prompts.shape[1]) * args.gen_batch

    result = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "dtype": "bf16-autocast" if bf16 else "float32",
        "params": params,
        "trainable_params": trainable,
        "steps": args.steps,
        "batch_size": args.batch_size,
        "grad_accum": args.grad_accum,
        "seq_len_max": args.seq_len,
        "train_tokens": tokens,
        "train_tokens_per_s": round(train_tps, 1),
        "train_step_s_median": round(sorted(warm)[len(warm) // 2], 4),
        "approx_train_tflops": round(6 * params * train_tps / 1e12, 3),  # 6 * N * tokens/s approximation
        "first_loss": round(losses[0], 4),
        "last_loss": round(losses[-1], 4),
        "train_peak_memory_mb": round(train_peak, 1),
        "gen_batch": args.gen_batch,
        "gen_new_tokens_per_s": round(new_tokens / gen_s, 1),
        "gen_answers_per_s": round(args.gen_batch / gen_s, 2),
        "peak_memory_mb": round(peak_memory_mb(device), 1),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
