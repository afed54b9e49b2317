"""Training a base model too large for one worker: gradient checkpointing, and FSDP shards over the workers.

Both on CPU: gradient checkpointing in one process (the same step with recomputed activations), and
a real Ray Train run of two workers whose FSDP2 shards talk over gloo (``params/finetune.yaml``
``ray.strategy: fsdp``), stopped and resumed, so the gathered adapter and optimiser state are used.
"""

from __future__ import annotations

import pytest
from safetensors.torch import load_file

from components.training.trainer import plan_steps, train_adapter
from tests.conftest import PARAMS, code_examples, like


def test_gradient_checkpointing_takes_the_same_step(base_model_dir):
    import torch

    from components.llm.models import load_model
    from components.training import parallel
    from components.training.train_step import add_lora, collate, make_optimizer, train_step

    examples, cfg = code_examples(base_model_dir, 2, "gc")
    micro = [collate(examples)]

    def one_step(checkpointing: bool):
        torch.manual_seed(0)
        model = add_lora(load_model(base_model_dir).train(), cfg.r, cfg.alpha, 0.0, cfg.target_modules)
        if checkpointing:
            parallel.enable_gradient_checkpointing(model)
        optimizer, scheduler = make_optimizer(model, 1e-3, 4)
        loss, _ = train_step(model, optimizer, scheduler, micro, "cpu")
        return loss, {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}, model

    loss, weights, _ = one_step(False)
    loss_gc, weights_gc, model_gc = one_step(True)
    assert model_gc.is_gradient_checkpointing
    assert loss_gc == pytest.approx(loss, rel=1e-5)
    for name, value in weights.items():  # the optimiser moved every LoRA weight the same way
        torch.testing.assert_close(weights_gc[name], value, rtol=1e-4, atol=1e-6)


@pytest.fixture(scope="module")
def ray_session():
    import ray

    yield
    ray.shutdown()


def test_fsdp_shards_the_model_over_two_workers_and_resumes(base_model_dir, tmp_path, ray_session):
    """Each worker holds half of the model; the adapter and optimiser state are gathered for the checkpoint,
    a stopped run resumes from it, and the adapter kept is a plain peft adapter."""
    from components.llm.models import load_model

    examples, cfg = code_examples(base_model_dir, 8, "fsdp")
    cfg = cfg.model_copy(update={"eval_every": 2, "patience": None, "checkpoint_every": 2})
    ray_cfg = like(PARAMS.finetune.ray, num_workers=2, max_failures=0, strategy="fsdp", gradient_checkpointing=True)
    planned = plan_steps(len(examples), cfg, 2)
    args = (examples, base_model_dir, cfg, ray_cfg)
    dev = examples[:2]
    first = train_adapter(*args, tmp_path / "a1", tmp_path / "ray", stop_after=2, eval_examples=dev)
    assert first["step"] == 2
    result = train_adapter(*args, tmp_path / "a2", tmp_path / "ray", eval_examples=dev, curve_dir=tmp_path / "curve")
    assert result["step"] == planned == 4 and result["resumed_at"] == [2]
    assert 0.45 < result["shard_fraction"] < 0.55, result["shard_fraction"]  # half of the model per worker
    assert [e["step"] for e in result["evals"]] == [2, 4]
    assert sorted(p.name for p in (tmp_path / "curve").iterdir()) == ["step-000002", "step-000004"]

    weights = load_file(str(tmp_path / "a2" / "adapter_model.safetensors"))
    assert weights and all("lora_" in k for k in weights)
    assert {tuple(v.shape) for k, v in weights.items() if "lora_A" in k} == {(cfg.r, 576)}  # whole, not shards
    load_model(base_model_dir, tmp_path / "a2")  # peft loads it as any adapter
