"""The Ray Train worker: LoRA on the base model, DDP across workers, tune-loss evaluations, checkpoints.

The ``TorchTrainer`` (:mod:`components.training.trainer`) runs :func:`train_loop_per_worker` on each
worker (DDP over gloo on CPU, nccl on GPU with bf16 autocast).

- Every ``eval_every`` steps the workers measure the loss on held-out tune questions (each rank its
  share, the sums all-reduced, so every rank sees the same value), rank 0 writes a snapshot of the
  adapter (the learning curve) once, to ``<run>/snapshots/step-<n>`` in the run's storage (a local
  folder or the object store), the best snapshot so far is the adapter kept, and after
  ``patience`` evaluations without an improvement of ``min_delta`` every rank stops (early stopping).
- Every ``checkpoint_every`` steps, at each evaluation and at the end, rank 0 reports a checkpoint:
  the adapter, the optimiser and scheduler state and the run's state (step, tokens, compute seconds,
  evaluations); the snapshots are not in it (each was stored once when it was taken, so a
  checkpoint uploads only what is new). A restarted worker group (``max_failures``) or a new run of the
  same adapter resumes from it through ``ray.train.get_checkpoint()``, so the compute seconds that
  produced an adapter add up across restarts and resumes.
- The base model comes as a :class:`~components.storage.StoredDir`: a local path, or a
  folder in the object store that each node downloads once into a local cache.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from components.config import AdapterConfig
from components.storage import StoredDir, put_dir
from components.training.train_step import micro_batches, plan_order

STATE_FILE = "trainer_state.pt"
SNAPSHOTS = "snapshots"  # in the run's folder: snapshots/step-<n>/, one adapter per evaluation


def snapshot_name(step: int) -> str:
    return f"step-{step:06d}"


def snapshot_at(snapshots: StoredDir, step: int) -> StoredDir:
    """The stored folder of the snapshot taken at ``step``."""
    return StoredDir(f"{snapshots.path}/{snapshot_name(step)}", "", snapshots.filesystem)


def new_state() -> dict:
    """The run's state, carried in every checkpoint."""
    return {
        "step": 0,
        "tokens": 0,
        "train_time_s": 0.0,  # optimiser steps only
        "compute_s": 0.0,  # the workers' whole time on this run (load, steps, evaluations), summed over sessions
        "history": [],
        "resumed_at": [],
        "evals": [],  # {step, tokens, train_time_s, compute_s, tune_loss} per evaluation
        "best": None,  # the evaluation whose snapshot is the adapter kept
        "since_best": 0,
        "stopped_early": False,
    }


def load_state(path: Path) -> dict:
    """A checkpoint's trainer state (run state, optimiser, scheduler), loaded with ``weights_only=True``.

    Checkpoints come from shared storage (a bucket every node and run can write): only tensors,
    numbers, strings, lists and dicts are read back, never an object whose unpickling runs code.
    The state holds nothing else (the scheduler's lambda is saved as None by PyTorch).
    """
    import torch

    return torch.load(path, weights_only=True)


def update_best(state: dict, tune_loss: float, min_delta: float) -> bool:
    """Record an evaluation's tune loss; True when it is the new best (an improvement of more than ``min_delta``)."""
    best = state["best"]
    if best is None or tune_loss < best["tune_loss"] - min_delta:
        state["best"] = dict(state["evals"][-1])
        state["since_best"] = 0
        return True
    state["since_best"] += 1
    return False


def should_stop(state: dict, patience: int | None) -> bool:
    """Early stopping: ``patience`` evaluations in a row without an improvement."""
    return patience is not None and state["since_best"] >= patience


def train_loop_per_worker(config: dict) -> None:
    """One Ray Train worker: LoRA on the base model, DDP, tune-loss evaluations, checkpoints from rank 0."""
    import ray.train
    import ray.train.torch
    import torch
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    import components
    from components.training import parallel
    from components.training.train_step import add_lora, held_out_loss, make_optimizer, peak_memory_mb, train_step

    session_start = time.perf_counter()
    cfg = AdapterConfig(**config["adapter"])
    torch.set_num_threads(config["threads"])
    torch.manual_seed(cfg.seed)
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    device = ray.train.torch.get_device()
    bf16 = device.type == "cuda"
    run_dir = config["run_dir"] or Path(tempfile.gettempdir()) / "ragtune-runs" / ctx.get_experiment_name()
    _record_pid(Path(run_dir) / "workers", rank)

    base_dir = config["base_model"].local()
    model = add_lora(AutoModelForCausalLM.from_pretrained(base_dir), cfg.r, cfg.alpha, cfg.dropout, cfg.target_modules)
    if config.get("gradient_checkpointing"):
        parallel.enable_gradient_checkpointing(model)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total_params = sum(p.numel() for p in model.parameters())
    steps = config["steps"]
    state, saved = new_state(), None
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as d:
            set_peft_model_state_dict(model, load_file(str(Path(d) / "adapter_model.safetensors")))
            saved = load_state(Path(d) / STATE_FILE)
        state = {**new_state(), **saved["state"]}
        state["resumed_at"] = [*state["resumed_at"], state["step"]]
    compute_before = state["compute_s"]
    ddp_model = parallel.wrap(model, config.get("strategy", "ddp"), device)  # DDP copies or FSDP shards
    sharded = parallel.is_sharded(ddp_model)
    shard_fraction = parallel.shard_fraction(ddp_model, total_params)  # at rest (FSDP's root stays whole in passes)
    optimizer, scheduler = make_optimizer(ddp_model, cfg.learning_rate, steps)
    if saved is not None:
        parallel.load_optimizer_state(ddp_model, optimizer, saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])

    order = plan_order(config["examples"], cfg.batching, rank, world, cfg.batch_size * cfg.grad_accum, steps, cfg.seed)
    report_every = max(1, config["report_every"])
    eval_examples, eval_every = config.get("eval_examples") or [], config.get("eval_every")
    ddp_model.train()

    def evaluate() -> float:
        """Held-out loss per supervised token: each rank scores its share, the sums are all-reduced. Under
        FSDP a forward pass is a collective, so every rank scores them all (the same passes on every rank)."""
        share = eval_examples if sharded else eval_examples[rank::world]
        total, count = held_out_loss(ddp_model if sharded else model, share, device, cfg.batch_size, bf16=bf16)
        if world > 1 and not sharded:
            import torch.distributed as dist

            sums = torch.tensor([total, float(count)], dtype=torch.float64, device=device)
            dist.all_reduce(sums)
            total, count = float(sums[0]), int(sums[1])
        return total / max(count, 1)

    def report(final: bool, checkpoint_due: bool) -> None:
        state["compute_s"] = compute_before + time.perf_counter() - session_start
        metrics = {
            "step": state["step"],
            "loss": state["history"][-1]["loss"] if state["history"] else float("nan"),
            "tokens_per_s": state["tokens"] / max(state["train_time_s"], 1e-9),
            "train_time_s": state["train_time_s"],
            "compute_s": state["compute_s"],
            "trainable_params": trainable,
            "peak_memory_mb": peak_memory_mb(device),
            "restarts": len(state["resumed_at"]),
            "shard_fraction": shard_fraction,  # of the model's parameters, held by this worker
        }
        if state["evals"]:
            metrics["tune_loss"] = state["evals"][-1]["tune_loss"]
        if final:
            metrics.update(
                history=state["history"],
                resumed_at=state["resumed_at"],
                evals=state["evals"],
                best=state["best"],
                stopped_early=state["stopped_early"],
                components_file=components.__file__,
            )
        if final or checkpoint_due:  # gathered on every rank under FSDP (collectives), saved by rank 0
            weights, optim = parallel.lora_state(ddp_model), parallel.optimizer_state(ddp_model, optimizer)
        if (final or checkpoint_due) and rank == 0:
            with tempfile.TemporaryDirectory() as tmp:
                model.save_pretrained(tmp, state_dict=weights)
                torch.save(
                    {"state": state, "optimizer": optim, "scheduler": scheduler.state_dict()},
                    Path(tmp) / STATE_FILE,
                )
                ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp))
        else:
            ray.train.report(metrics)

    for step in range(state["step"] + 1, steps + 1):
        if state["stopped_early"]:
            break
        start = time.perf_counter()
        micro = list(micro_batches(config["examples"], order[step - 1], cfg.grad_accum))
        loss, tokens = train_step(ddp_model, optimizer, scheduler, micro, device, bf16=bf16)
        state["train_time_s"] += time.perf_counter() - start
        state["tokens"] += tokens * world  # every rank processes a batch of similar size
        state["step"] = step
        state["history"].append(
            {"step": step, "loss": loss, "tokens_per_s": state["tokens"] / max(state["train_time_s"], 1e-9)}
        )
        eval_due = bool(eval_examples and eval_every) and (step % eval_every == 0 or step == steps)
        if eval_due:
            tune_loss = evaluate()
            state["history"][-1]["tune_loss"] = tune_loss
            state["compute_s"] = compute_before + time.perf_counter() - session_start
            state["evals"].append(
                {k: state[k] for k in ("step", "tokens", "train_time_s", "compute_s")} | {"tune_loss": tune_loss}
            )
            update_best(state, tune_loss, config.get("min_delta", 0.0))
            weights = parallel.lora_state(ddp_model)  # every rank: a collective under FSDP
            if rank == 0:
                with tempfile.TemporaryDirectory() as tmp:  # stored once, never again in a checkpoint
                    model.save_pretrained(tmp, state_dict=weights)
                    put_dir(Path(tmp), snapshot_at(config["snapshots"], step))
            state["stopped_early"] = should_stop(state, config.get("patience"))
        checkpoint_due = eval_due or (bool(cfg.checkpoint_every) and step % cfg.checkpoint_every == 0)
        last = step == steps or state["stopped_early"] or step == config["stop_after"]
        if last or step % report_every == 0 or checkpoint_due:
            report(final=last, checkpoint_due=checkpoint_due)
        if step == config["stop_after"] and not state["stopped_early"]:
            return  # a time slice: the run resumes from this checkpoint when started again
    if saved is not None and (saved["state"]["step"] >= steps or saved["state"].get("stopped_early")):
        report(final=True, checkpoint_due=True)  # a finished run started again: hand back its final checkpoint


def _record_pid(folder: Path, rank: int) -> None:
    """Write this worker's pid to ``folder/rank-<rank>.pid`` (an operator finds the worker to inspect)."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".rank-{rank}.pid.{os.getpid()}"
    tmp.write_text(str(os.getpid()), encoding="utf-8")
    os.replace(tmp, folder / f"rank-{rank}.pid")
