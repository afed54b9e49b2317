"""LoRA fine-tuning with Ray Train: data-parallel workers, transformers + peft.

Training data, per adapter config:

- corpus: every document, cut into ``max_length``-token windows, full language-model loss
  (continued pre-training: the knowledge the RAG arm retrieves, taught to the weights);
- qa: each train-split question in the evaluation's closed-book chat prompt, loss on the answer
  tokens only (the model learns the answer format and the trained facts).

The Ray Train ``TorchTrainer`` runs ``train_loop_per_worker`` on each worker (DDP over gloo on
CPU); rank 0 saves the adapter as the run's checkpoint. ``RAY_ADDRESS`` (read by Ray itself)
selects an existing cluster.
"""

from __future__ import annotations

import logging
import math
import os
import random
import shutil
import tempfile
import time
from pathlib import Path

import pandas as pd

from components.config import AdapterConfig, PromptConfig, RayConfig
from components.generation import chat_prompt, user_message

logger = logging.getLogger(__name__)

IGNORE_INDEX = -100


def corpus_examples(texts: list[str], tokenizer, max_length: int) -> list[dict]:
    """Windows of ``max_length`` tokens over each document, ending with EOS; loss on every token."""
    examples = []
    for text in texts:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        for start in range(0, len(ids), max_length):
            window = ids[start : start + max_length]
            if len(window) > 1:
                examples.append({"input_ids": window, "labels": list(window)})
    return examples


def qa_examples(qa: pd.DataFrame, tokenizer, prompts: PromptConfig, max_length: int) -> list[dict]:
    """Closed-book chat examples, one per (question, first answer); loss on the answer only."""
    examples = []
    for question, answers in zip(qa["question"], qa["answers"]):
        prompt = chat_prompt(tokenizer, prompts.system, user_message(prompts, question, None))
        full = chat_prompt(tokenizer, prompts.system, user_message(prompts, question, None), answer=answers[0])
        prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        full_ids = tokenizer(full, add_special_tokens=False)["input_ids"][:max_length]
        if full_ids[: len(prompt_ids)] != prompt_ids or len(full_ids) <= len(prompt_ids):
            raise ValueError(f"chat template does not extend the prompt for question {question!r}")
        labels = [IGNORE_INDEX] * len(prompt_ids) + full_ids[len(prompt_ids) :]
        examples.append({"input_ids": full_ids, "labels": labels})
    return examples


def build_examples(
    documents: pd.DataFrame, qa_train: pd.DataFrame, tokenizer, cfg: AdapterConfig, prompts: PromptConfig
) -> list[dict]:
    """All training examples an adapter config asks for."""
    examples = []
    if cfg.corpus:
        examples += corpus_examples(documents["text"].tolist(), tokenizer, cfg.max_length)
    if cfg.qa:
        examples += qa_examples(qa_train, tokenizer, prompts, cfg.max_length)
    return examples


def plan_steps(n_examples: int, cfg: AdapterConfig, world_size: int) -> int:
    """Optimiser steps: full epochs over the data, capped by ``max_steps``."""
    per_epoch = math.ceil(n_examples / (cfg.batch_size * world_size))
    total = per_epoch * cfg.epochs
    return min(total, cfg.max_steps) if cfg.max_steps else total


def _batches(examples: list[dict], rank: int, world: int, batch_size: int, steps: int, seed: int):
    """Yield ``steps`` padded batches for this rank: every rank gets the same number of steps."""
    import torch

    order: list[int] = []
    epoch = 0
    needed = steps * batch_size * world
    while len(order) < needed:
        block = list(range(len(examples)))
        random.Random(seed + epoch).shuffle(block)
        order += block
        epoch += 1
    mine = order[rank:needed:world]
    for step in range(steps):
        batch = [examples[i] for i in mine[step * batch_size : (step + 1) * batch_size]]
        width = max(len(e["input_ids"]) for e in batch)
        ids = torch.zeros((len(batch), width), dtype=torch.long)
        labels = torch.full((len(batch), width), IGNORE_INDEX, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, e in enumerate(batch):
            n = len(e["input_ids"])
            ids[row, :n] = torch.tensor(e["input_ids"])
            labels[row, :n] = torch.tensor(e["labels"])
            mask[row, :n] = 1
        yield ids, labels, mask


def train_loop_per_worker(config: dict) -> None:
    """One Ray Train worker: LoRA on the base model, DDP across workers, adapter from rank 0."""
    import ray.train
    import ray.train.torch
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    cfg = AdapterConfig(**config["adapter"])
    torch.set_num_threads(config["threads"])
    torch.manual_seed(cfg.seed)
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()

    model = AutoModelForCausalLM.from_pretrained(config["base_dir"])
    lora = LoraConfig(
        r=cfg.r,
        lora_alpha=cfg.alpha,
        lora_dropout=cfg.dropout,
        target_modules=list(cfg.target_modules),
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(model, lora)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    ddp_model = ray.train.torch.prepare_model(model)
    device = ray.train.torch.get_device()
    optimizer = torch.optim.AdamW([p for p in ddp_model.parameters() if p.requires_grad], lr=cfg.learning_rate)
    steps = config["steps"]
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0 - s / max(steps, 1))

    ddp_model.train()
    tokens, start = 0, time.perf_counter()
    history: list[dict] = []
    report_every = max(1, config["report_every"])
    for step, (ids, labels, mask) in enumerate(
        _batches(config["examples"], rank, world, cfg.batch_size, steps, cfg.seed), start=1
    ):
        ids, labels, mask = ids.to(device), labels.to(device), mask.to(device)
        loss = ddp_model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        tokens += int(mask.sum()) * world  # every rank processes a batch of similar size
        if step % report_every == 0 or step == steps:
            elapsed = time.perf_counter() - start
            metrics = {
                "step": step,
                "loss": float(loss.detach()),
                "tokens_per_s": tokens / max(elapsed, 1e-9),
                "trainable_params": trainable,
                "train_time_s": elapsed,
            }
            history.append({"step": step, "loss": metrics["loss"], "tokens_per_s": metrics["tokens_per_s"]})
            if step == steps and rank == 0:
                metrics["history"] = history
                with tempfile.TemporaryDirectory() as tmp:
                    model.save_pretrained(tmp)
                    ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp))
            else:
                ray.train.report(metrics)


def _ensure_ray(ray_cfg: RayConfig) -> None:
    import ray

    if ray.is_initialized():
        return
    if os.environ.get("RAY_ADDRESS"):
        ray.init()  # an existing cluster
    else:
        needed = ray_cfg.num_workers * ray_cfg.cpus_per_worker + 1  # + the train controller
        ray.init(num_cpus=max(needed, os.cpu_count() or 1), include_dashboard=True)


def train_adapter(
    examples: list[dict],
    base_dir: Path,
    cfg: AdapterConfig,
    ray_cfg: RayConfig,
    out_dir: Path,
    storage_dir: Path,
) -> dict:
    """Train one LoRA adapter with Ray Train and copy it to ``out_dir``.

    Returns:
        Training metrics: steps, final loss, tokens/s, wall time, loss history.
    """
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    if not examples:
        raise ValueError(f"adapter {cfg.name!r}: no training examples")
    _ensure_ray(ray_cfg)
    steps = plan_steps(len(examples), cfg, ray_cfg.num_workers)
    logger.info(
        "training %s: %d examples, %d steps on %d worker(s)", cfg.name, len(examples), steps, ray_cfg.num_workers
    )
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={
            "adapter": cfg.model_dump(),
            "base_dir": str(base_dir.resolve()),
            "examples": examples,
            "steps": steps,
            "threads": ray_cfg.cpus_per_worker,
            "report_every": max(1, steps // 20),
        },
        scaling_config=ScalingConfig(
            num_workers=ray_cfg.num_workers,
            use_gpu=ray_cfg.use_gpu,
            resources_per_worker={"CPU": ray_cfg.cpus_per_worker},
        ),
        run_config=RunConfig(storage_path=str(storage_dir.resolve()), name=f"{cfg.name}-{int(time.time())}"),
    )
    start = time.perf_counter()
    result = trainer.fit()
    wall = time.perf_counter() - start
    if result.checkpoint is None:
        raise RuntimeError(f"adapter {cfg.name!r}: training finished without a checkpoint")
    with result.checkpoint.as_directory() as ckpt:
        shutil.copytree(ckpt, out_dir, dirs_exist_ok=True)
    metrics = dict(result.metrics)
    metrics.update({"wall_time_s": wall, "examples": len(examples), "workers": ray_cfg.num_workers})
    logger.info("trained %s in %.0f s: loss %.3f, %.0f tokens/s", cfg.name, wall, metrics["loss"], metrics["tokens_per_s"])
    return metrics
