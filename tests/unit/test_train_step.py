"""Batching, gradient accumulation and the shared train step (no Ray)."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from components.training.train_step import (
    IGNORE_INDEX,
    bucketed_order,
    collate,
    micro_batches,
    plan_order,
    step_order,
    train_step,
)


@settings(max_examples=50, deadline=None)
@given(
    n=st.integers(1, 40),
    world=st.integers(1, 3),
    per_rank=st.integers(2, 5),  # one example per step leaves nothing to group
    steps=st.integers(1, 12),
    seed=st.integers(0, 5),
)
def test_bucketing_keeps_the_examples_of_random_order_and_equal_steps_per_rank(n, world, per_rank, steps, seed):
    lengths = [(i * 7) % 13 + 1 for i in range(n)]
    plain = [step_order(n, r, world, per_rank, steps, seed) for r in range(world)]
    bucketed = [bucketed_order(lengths, r, world, per_rank, steps, seed) for r in range(world)]
    for ranks in (plain, bucketed):
        assert all(len(r) == steps and all(len(s) == per_rank for s in r) for r in ranks)
    flat = lambda ranks: sorted(i for r in ranks for s in r for i in s)  # noqa: E731
    assert flat(plain) == flat(bucketed)  # same multiset of examples, only grouped differently


def test_bucketing_reduces_padding():
    lengths = [2 + (i * 37) % 60 for i in range(64)]
    examples = [{"input_ids": [1] * n, "labels": [1] * n} for n in lengths]

    def padding(batching):
        order = plan_order(examples, batching, 0, 1, 4, 16, seed=0)
        return sum(len(s) * max(lengths[i] for i in s) - sum(lengths[i] for i in s) for s in order)

    assert padding("bucketed") < padding("random") / 3


def test_collate_pads_with_ignored_labels():
    ids, labels, mask = collate(
        [{"input_ids": [5, 6, 7], "labels": [IGNORE_INDEX, 6, 7]}, {"input_ids": [8], "labels": [8]}]
    )
    assert ids.shape == (2, 3) and mask.tolist() == [[1, 1, 1], [1, 0, 0]]
    assert (labels[mask == 0] == IGNORE_INDEX).all()


class _TinyLM(torch.nn.Module):
    """A real (if small) causal LM with the transformers call signature, for exact gradient checks."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.emb = torch.nn.Embedding(20, 8)
        self.out = torch.nn.Linear(8, 20)

    def forward(self, input_ids, attention_mask, labels):
        logits = self.out(self.emb(input_ids))
        loss = torch.nn.functional.cross_entropy(
            logits[:, :-1].reshape(-1, 20), labels[:, 1:].reshape(-1), ignore_index=IGNORE_INDEX
        )
        return type("Out", (), {"loss": loss})


def _one_step(examples, accum: int) -> tuple[float, int, torch.Tensor]:
    """One real optimiser step (plain SGD, lr 0.1) over ``accum`` micro-batches; the loss, tokens and new weights."""
    model = _TinyLM()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)
    micro = list(micro_batches(examples, list(range(len(examples))), accum))
    assert len(micro) == accum
    loss, tokens = train_step(model, optimizer, scheduler, micro, "cpu")
    assert all(p.grad is None for p in model.parameters())  # the step cleared its gradients
    return loss, tokens, model.out.weight.detach().clone()


def test_gradient_accumulation_takes_the_same_step_as_one_big_batch():
    # examples of different lengths: micro-batches hold different numbers of supervised tokens
    examples = [
        {"input_ids": [1 + i, 2 + i, 3, 4 + i][: 2 + i % 3], "labels": [1 + i, 2 + i, 3, 4 + i][: 2 + i % 3]}
        for i in range(6)
    ]
    whole, accumulated = _one_step(examples, 1), _one_step(examples, 3)
    assert abs(whole[0] - accumulated[0]) < 1e-5 and whole[1] == accumulated[1]
    assert torch.allclose(whole[2], accumulated[2], atol=1e-6)  # the same weights after the step
    assert not torch.allclose(whole[2], _TinyLM().out.weight, atol=1e-4)  # and the step did move them


def test_lora_on_all_linear_layers_adapts_the_mlp_too():
    from transformers import LlamaConfig, LlamaForCausalLM

    from components.training.train_step import add_lora

    def tiny():
        config = LlamaConfig(
            vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2
        )
        return LlamaForCausalLM(config)

    def adapted(model) -> set[str]:
        return {n.split(".lora_")[0].rsplit(".", 1)[-1] for n, p in model.named_parameters() if p.requires_grad}

    assert adapted(add_lora(tiny(), 4, 8, 0.0, ["q_proj", "v_proj"])) == {"q_proj", "v_proj"}
    everything = adapted(add_lora(tiny(), 4, 8, 0.0, "all-linear"))
    assert {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"} == everything  # no lm_head


class _RunsCodeWhenUnpickled:
    """What a writer of the shared checkpoint bucket could leave in trainer_state.pt."""

    def __init__(self, marker) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))  # unpickling creates the marker file


def test_checkpoint_state_loads_as_data_only(tmp_path):
    """A checkpoint's trainer state (run state, AdamW, the LambdaLR schedule) round-trips with
    weights_only=True; a state whose unpickling would run code is refused before it runs."""
    import pickle

    import torch

    from components.training.train_step import make_optimizer
    from components.training.worker import STATE_FILE, load_state, new_state

    model = torch.nn.Linear(3, 2)
    optimizer, scheduler = make_optimizer(model, 1e-3, 10)
    model(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    scheduler.step()
    state = {**new_state(), "step": 1, "evals": [{"step": 1, "dev_loss": 0.5}], "best": {"step": 1, "dev_loss": 0.5}}
    torch.save(
        {"state": state, "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()},
        tmp_path / STATE_FILE,
    )
    saved = load_state(tmp_path / STATE_FILE)
    assert saved["state"] == state and saved["scheduler"]["last_epoch"] == 1
    assert torch.equal(saved["optimizer"]["state"][0]["exp_avg"], optimizer.state_dict()["state"][0]["exp_avg"])

    marker = tmp_path / "ran"
    torch.save({"state": _RunsCodeWhenUnpickled(marker)}, tmp_path / "evil.pt")
    with pytest.raises(pickle.UnpicklingError):
        load_state(tmp_path / "evil.pt")
    assert not marker.exists()
