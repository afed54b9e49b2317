"""The per-step training code, free of Ray, pydantic and pandas.

The Ray Train worker (``components.training.trainer.train_loop_per_worker``), the single-process
benchmark baseline (``bench/train.py``) and the GPU check (``bench/gpu_check.py``, which runs
where only torch, transformers and peft are installed) all call these functions, so every path
trains with the same batching, LoRA setup and optimiser step. Only the standard library is
imported at module level; torch and peft are imported where they are used.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator

IGNORE_INDEX = -100


def step_order(n_examples: int, rank: int, world: int, per_rank: int, steps: int, seed: int) -> list[list[int]]:
    """Example indices for each of ``steps`` steps on this rank, in random order (epochs reshuffled)."""
    per_step = per_rank * world
    order = _shuffled(n_examples, steps * per_step, seed)
    return [order[s * per_step : (s + 1) * per_step][rank::world] for s in range(steps)]


def bucketed_order(
    lengths: list[int], rank: int, world: int, per_rank: int, steps: int, seed: int, pool: int = 16
) -> list[list[int]]:
    """Like :func:`step_order`, but each step holds examples of similar length (less padding).

    The shuffled stream is cut into pools of ``pool`` steps; each pool is sorted by length, cut
    into steps, and the steps of the pool are shuffled again, so long and short steps still mix.
    Every example appears exactly as often as in :func:`step_order`.
    """
    per_step = per_rank * world
    order = _shuffled(len(lengths), steps * per_step, seed)
    rng = random.Random(seed + 7919)
    result: list[list[int]] = []
    for start in range(0, len(order), pool * per_step):
        block = sorted(order[start : start + pool * per_step], key=lambda i: lengths[i])
        group = [block[k : k + per_step] for k in range(0, len(block), per_step)]
        rng.shuffle(group)
        result += [g[rank::world] for g in group]
    return result


def _shuffled(n: int, needed: int, seed: int) -> list[int]:
    order: list[int] = []
    epoch = 0
    while len(order) < needed:
        block = list(range(n))
        random.Random(seed + epoch).shuffle(block)
        order += block
        epoch += 1
    return order[:needed]


def plan_order(
    examples: list[dict], batching: str, rank: int, world: int, per_rank: int, steps: int, seed: int
) -> list[list[int]]:
    """The batching strategy named by config: ``random`` or ``bucketed`` (by token length)."""
    if batching == "random":
        return step_order(len(examples), rank, world, per_rank, steps, seed)
    if batching == "bucketed":
        return bucketed_order([len(e["input_ids"]) for e in examples], rank, world, per_rank, steps, seed)
    raise ValueError(f"unknown batching {batching!r}; choose random or bucketed")


def collate(batch: list[dict]):
    """Right-padded ``input_ids``, ``labels`` (IGNORE_INDEX on padding) and ``attention_mask``."""
    import torch

    width = max(len(e["input_ids"]) for e in batch)
    ids = torch.zeros((len(batch), width), dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, e in enumerate(batch):
        n = len(e["input_ids"])
        ids[row, :n] = torch.tensor(e["input_ids"])
        labels[row, :n] = torch.tensor(e["labels"])
        mask[row, :n] = 1
    return ids, labels, mask


def micro_batches(examples: list[dict], indices: list[int], grad_accum: int) -> Iterator[tuple]:
    """Split one step's examples into ``grad_accum`` collated micro-batches (fewer if too few)."""
    size = math.ceil(len(indices) / grad_accum)
    for k in range(0, len(indices), size):
        yield collate([examples[i] for i in indices[k : k + size]])


def add_lora(model, r: int, alpha: int, dropout: float, target_modules: list[str] | str):
    """Wrap a causal LM with a peft LoRA adapter; only the adapter weights train.

    ``target_modules`` lists module names (``["q_proj", "v_proj"]``) or is ``"all-linear"``.
    """
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(
        r=r,
        lora_alpha=alpha,
        lora_dropout=dropout,
        # "all-linear": peft finds every linear layer but the output head
        target_modules=target_modules if isinstance(target_modules, str) else list(target_modules),
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, lora)


def make_optimizer(model, learning_rate: float, steps: int):
    """AdamW over the trainable parameters and a linear decay to zero over ``steps``."""
    import torch

    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=learning_rate)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: max(0.0, 1.0 - s / max(steps, 1)))
    return optimizer, scheduler


def train_step(model, optimizer, scheduler, micro: list[tuple], device, bf16: bool = False) -> tuple[float, int]:
    """One optimiser step over gradient-accumulated micro-batches.

    The loss of each micro-batch is weighted by its share of supervised tokens, so the step's
    gradient equals that of one batch holding all of them. Under DDP (and FSDP) the gradients are
    reduced only on the last micro-batch.

    Returns:
        The step's mean loss per supervised token and the number of (non-padding) tokens seen.
    """
    import contextlib

    import torch

    supervised = [int((labels[:, 1:] != IGNORE_INDEX).sum()) for _, labels, _ in micro]
    total = max(sum(supervised), 1)
    step_loss, tokens = 0.0, 0
    for k, (ids, labels, mask) in enumerate(micro):
        last = k == len(micro) - 1
        if hasattr(model, "set_requires_gradient_sync"):  # FSDP2: reduce-scatter the gradients on the last only
            model.set_requires_gradient_sync(last)
        sync = contextlib.nullcontext() if last or not hasattr(model, "no_sync") else model.no_sync()
        autocast = (
            torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)
            if bf16
            else contextlib.nullcontext()
        )
        with sync, autocast:
            out = model(input_ids=ids.to(device), attention_mask=mask.to(device), labels=labels.to(device))
            loss = out.loss * (supervised[k] / total)
            loss.backward()
        step_loss += float(loss.detach())
        tokens += int(mask.sum())
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return step_loss, tokens


def held_out_loss(model, examples: list[dict], device, batch_size: int = 8, bf16: bool = False) -> tuple[float, int]:
    """Summed next-token loss over the supervised tokens of ``examples``, and their count.

    Forward passes only (no gradients, dropout off; the model's training mode is restored).
    Sums, not a mean, so data-parallel workers can add theirs before dividing.
    """
    import contextlib

    import torch

    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    autocast = (
        torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)
        if bf16
        else contextlib.nullcontext()
    )
    try:
        with torch.no_grad(), autocast:
            for k in range(0, len(examples), batch_size):
                ids, labels, mask = collate(examples[k : k + batch_size])
                logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float()
                targets = labels[:, 1:].to(device)
                nll = torch.nn.functional.cross_entropy(
                    logits[:, :-1].reshape(-1, logits.size(-1)),
                    targets.reshape(-1),
                    ignore_index=IGNORE_INDEX,
                    reduction="sum",
                )
                total += float(nll)
                count += int((targets != IGNORE_INDEX).sum())
    finally:
        model.train(was_training)
    return total, count


def peak_memory_mb(device) -> float:
    """Peak memory of this process: CUDA allocator peak on GPU, max resident set size on CPU."""
    import torch

    if torch.device(device).type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    import resource
    import sys

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 2**10  # bytes on macOS, KiB on Linux
