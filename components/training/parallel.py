"""How the training workers share a model: data-parallel copies (DDP) or shards of one model (FSDP).

``ray.strategy: ddp`` (the default) keeps a whole copy of the base model on every worker and
all-reduces the adapter's gradients: the model must fit one GPU. ``fsdp`` shards the model over
the workers with PyTorch's ``fully_shard`` (FSDP2): each decoder layer and the root hold
1/world of the parameters, gathered layer by layer for the forward and backward passes, so a model
larger than one GPU's memory trains across several. On CPU it runs over gloo (tested there); on
GPUs over nccl. ``ray.gradient_checkpointing`` recomputes each layer's activations in the backward
pass instead of keeping them: less memory for longer sequences, about a third more compute.

Under FSDP the adapter's weights and optimiser state are sharded too: :func:`lora_state` and
:func:`optimizer_state` gather them whole (collectives: every rank calls them) before rank 0 saves.
Only the trainable (LoRA) weights are gathered, never the frozen base model.
"""

from __future__ import annotations

STRATEGIES = ("ddp", "fsdp")


def enable_gradient_checkpointing(model) -> None:
    """Recompute activations in the backward pass (non-reentrant: works with frozen inputs and LoRA)."""
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.config.use_cache = False  # the KV cache is useless in training and conflicts with recomputation


def wrap(model, strategy: str, device):
    """The model as the workers train it: DDP (Ray Train's ``prepare_model``) or FSDP shards.

    Raises:
        ValueError: an unknown strategy.
    """
    if strategy == "ddp":
        import ray.train.torch

        return ray.train.torch.prepare_model(model)
    if strategy != "fsdp":
        raise ValueError(f"unknown ray.strategy {strategy!r}; choose one of {STRATEGIES}")
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    model.to(device)
    mesh = init_device_mesh(device.type, (dist.get_world_size(),))
    layers = set(getattr(_inner(model), "_no_split_modules", None) or [])
    if not layers:
        raise ValueError(f"{type(_inner(model)).__name__} names no layer class to shard (_no_split_modules)")
    for module in list(model.modules()):
        if type(module).__name__ in layers:
            fully_shard(module, mesh=mesh)
    fully_shard(model, mesh=mesh)
    return model


def _inner(model):
    """The transformers model under a peft wrapper."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def is_sharded(model) -> bool:
    """Whether the model's parameters are FSDP shards (DTensors)."""
    return any(hasattr(p, "full_tensor") for p in model.parameters())


def shard_fraction(model, total: int) -> float:
    """The share of the model's ``total`` parameters this worker holds (1.0 with DDP, about 1/world with FSDP)."""
    local = sum(p.to_local().numel() if hasattr(p, "to_local") else p.numel() for p in model.parameters())
    return local / max(total, 1)


def lora_state(model) -> dict | None:
    """The trainable weights, whole, on CPU, for ``save_pretrained(state_dict=...)``; None when the model is
    not sharded (it saves its own). Under FSDP every rank must call it (each weight is gathered)."""
    if not is_sharded(model):
        return None
    state = {}
    for name, p in model.named_parameters():
        if p.requires_grad:
            whole = p.full_tensor() if hasattr(p, "full_tensor") else p
            state[name] = whole.detach().cpu()
    return state


def optimizer_state(model, optimizer) -> dict:
    """The optimiser's state to checkpoint: its own, or under FSDP gathered whole (every rank calls it)."""
    if not is_sharded(model):
        return optimizer.state_dict()
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    return get_optimizer_state_dict(model, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def load_optimizer_state(model, optimizer, saved: dict) -> None:
    """Resume the optimiser from :func:`optimizer_state`'s output (whole on every rank under FSDP)."""
    if not is_sharded(model):
        optimizer.load_state_dict(saved)
        return
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    set_optimizer_state_dict(model, optimizer, saved, options=StateDictOptions(full_state_dict=True))
