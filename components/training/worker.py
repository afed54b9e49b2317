"""The Ray Train worker: LoRA on the base model, DDP across workers, checkpoints from rank 0.

The ``TorchTrainer`` (:mod:`components.training.trainer`) runs :func:`train_loop_per_worker` on each
worker (DDP over gloo on CPU, nccl on GPU with bf16 autocast). Every ``checkpoint_every`` steps
rank 0 reports a checkpoint holding the adapter, the optimiser and scheduler state and the step; a
restarted worker group (``max_failures``) resumes from it through ``ray.train.get_checkpoint()``.
The base model comes as a :class:`~components.training.storage.StoredDir`: a local path, or a
folder in the object store that each node downloads once into a local cache.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from components.config import AdapterConfig
from components.training.train_step import micro_batches, plan_order

STATE_FILE = "trainer_state.pt"


def train_loop_per_worker(config: dict) -> None:
    """One Ray Train worker: LoRA on the base model, DDP across workers, checkpoints from rank 0."""
    import ray.train
    import ray.train.torch
    import torch
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    import components
    from components.training.train_step import add_lora, held_out_loss, make_optimizer, peak_memory_mb, train_step

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
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    steps = config["steps"]
    state = {"step": 0, "tokens": 0, "train_time_s": 0.0, "history": [], "resumed_at": []}
    checkpoint = ray.train.get_checkpoint()
    saved = None
    if checkpoint is not None:
        with checkpoint.as_directory() as d:
            set_peft_model_state_dict(model, load_file(str(Path(d) / "adapter_model.safetensors")))
            saved = torch.load(Path(d) / STATE_FILE, weights_only=False)
        state = saved["state"]
        state["resumed_at"] = [*state["resumed_at"], state["step"]]
    ddp_model = ray.train.torch.prepare_model(model)
    optimizer, scheduler = make_optimizer(ddp_model, cfg.learning_rate, steps)
    if saved is not None:
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])

    order = plan_order(config["examples"], cfg.batching, rank, world, cfg.batch_size * cfg.grad_accum, steps, cfg.seed)
    report_every = max(1, config["report_every"])
    eval_examples, eval_every = config.get("eval_examples") or [], config.get("eval_every")
    ddp_model.train()

    def evaluate() -> float:
        """Held-out loss per supervised token: each rank scores its share, the sums are all-reduced."""
        total, count = held_out_loss(model, eval_examples[rank::world], device, cfg.batch_size, bf16=bf16)
        if world > 1:
            import torch.distributed as dist

            sums = torch.tensor([total, float(count)], dtype=torch.float64, device=device)
            dist.all_reduce(sums)
            total, count = float(sums[0]), int(sums[1])
        return total / max(count, 1)

    def report(final: bool) -> None:
        metrics = {
            "step": state["step"],
            "loss": state["history"][-1]["loss"] if state["history"] else float("nan"),
            "tokens_per_s": state["tokens"] / max(state["train_time_s"], 1e-9),
            "train_time_s": state["train_time_s"],
            "trainable_params": trainable,
            "peak_memory_mb": peak_memory_mb(device),
            "restarts": len(state["resumed_at"]),
        }
        if "dev_loss" in state:
            metrics["dev_loss"] = state["dev_loss"]
        due = final or (cfg.checkpoint_every and state["step"] % cfg.checkpoint_every == 0)
        if final:
            metrics.update(
                history=state["history"], resumed_at=state["resumed_at"], components_file=components.__file__
            )
        if due and rank == 0:
            with tempfile.TemporaryDirectory() as tmp:
                model.save_pretrained(tmp)
                torch.save(
                    {"state": state, "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()},
                    Path(tmp) / STATE_FILE,
                )
                ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp))
        else:
            ray.train.report(metrics)

    for step in range(state["step"] + 1, steps + 1):
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
            state["dev_loss"] = evaluate()
            state["history"][-1]["dev_loss"] = state["dev_loss"]
        checkpoint_due = bool(cfg.checkpoint_every) and step % cfg.checkpoint_every == 0
        if step == steps or step % report_every == 0 or checkpoint_due or eval_due or step == config["stop_after"]:
            report(final=step == steps or step == config["stop_after"])
        if step == config["stop_after"]:
            return  # a time slice: the run resumes from this checkpoint when started again
    if saved is not None and saved["state"]["step"] >= steps:
        report(final=True)  # a finished run started again: hand back its final checkpoint


def _record_pid(folder: Path, rank: int) -> None:
    """Write this worker's pid to ``folder/rank-<rank>.pid`` (an operator finds the worker to inspect)."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".rank-{rank}.pid.{os.getpid()}"
    tmp.write_text(str(os.getpid()), encoding="utf-8")
    os.replace(tmp, folder / f"rank-{rank}.pid")
