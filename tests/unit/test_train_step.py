"""Batching, gradient accumulation and the shared train step (no Ray)."""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from components.training.train_step import (
    IGNORE_INDEX,
    bucketed_order,
    collate,
    make_optimizer,
    micro_batches,
    plan_order,
    step_order,
    train_step,
)


@settings(max_examples=50, deadline=None)
@given(
    n=st.integers(1, 40),
    world=st.integers(1, 3),
    per_rank=st.integers(1, 5),
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


def test_gradient_accumulation_equals_one_big_batch():
    examples = [
        {"input_ids": [1 + i, 2 + i, 3, 4 + i][: 2 + i % 3], "labels": [1 + i, 2 + i, 3, 4 + i][: 2 + i % 3]}
        for i in range(6)
    ]
    grads = []
    for accum in (1, 3):
        model = _TinyLM()
        opt, sched = make_optimizer(model, 0.0, steps=1)  # lr 0: keep the weights, compare gradients
        micro = list(micro_batches(examples, list(range(6)), accum))
        assert len(micro) == accum
        loss, tokens = train_step(model, _NoZero(opt), sched, micro, "cpu")
        grads.append((loss, tokens, model.out.weight.grad.clone()))
    assert abs(grads[0][0] - grads[1][0]) < 1e-5 and grads[0][1] == grads[1][1]
    assert torch.allclose(grads[0][2], grads[1][2], atol=1e-6)


class _NoZero:
    """An optimiser view that keeps the gradients after the step, so the test can read them."""

    def __init__(self, opt):
        self.opt = opt

    def step(self):
        self.opt.step()

    def zero_grad(self, set_to_none=True):
        pass
