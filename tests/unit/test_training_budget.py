"""Fine-tuning is never ruled out by its budget: data not covered, a curve still climbing, or one flat at its floor."""

from __future__ import annotations

import pandas as pd

from components.decision.finetuning import relabel
from components.decision.training import UNDER_TRAINED, budget, still_improving
from components.training.worker import new_state, should_stop, update_best

CLIMBING = [{"step": 10, "f1": 0.05}, {"step": 20, "f1": 0.12}, {"step": 30, "f1": 0.21}]
FLAT = [{"step": 10, "f1": 0.05}, {"step": 20, "f1": 0.20}, {"step": 30, "f1": 0.205}]
AT_FLOOR = [{"step": 0, "f1": 0.0}, {"step": 10, "f1": 0.0}, {"step": 20, "f1": 0.01}]  # NQ's closed-book LoRA


def _train(step: int, stopped_early: bool, kept: int | None = None) -> dict:
    best = {"step": kept} if kept is not None else None
    return {"step": step, "examples": 1000, "stopped_early": stopped_early, "best": best}


def test_an_adapter_cut_off_by_its_budget_while_improving_is_under_trained_with_its_last_gain():
    b = budget("lora", _train(30, stopped_early=False), 8, CLIMBING, "f1", min_gain=0.02)
    assert b.still_improving and round(b.last_gain, 3) == 0.09 and b.under_trained
    assert b.epochs == 0.24 and "still improving at the end of its budget" in b.sentence("f1")
    assert "0.24 epochs of its 1,000 examples" in b.sentence("f1") and UNDER_TRAINED in b.sentence("f1")


def test_epochs_are_counted_at_the_snapshot_kept_not_the_last_step():
    b = budget("lora", _train(30, stopped_early=False, kept=10), 8, FLAT, "f1", min_gain=0.02)
    assert b.kept_step == 10 and b.epochs == 0.08 and "step 10 of 30" in b.sentence("f1")


def test_a_curve_flat_at_its_floor_before_an_epoch_is_under_trained():
    b = budget("lora", _train(20, stopped_early=False), 8, AT_FLOOR, "f1", min_gain=0.02)
    assert b.flat_at_floor and not b.still_improving and b.under_trained
    assert "flat at its floor" in b.sentence("f1")


def test_a_converged_or_early_stopped_adapter_is_not_under_trained():
    flat = budget("lora", _train(30, stopped_early=False), 8, FLAT, "f1", min_gain=0.02)
    assert not flat.still_improving and not flat.under_trained and "flattened" in flat.sentence("f1")
    stopped = budget("lora", _train(20, stopped_early=True), 50, CLIMBING, "f1", min_gain=0.02)
    assert not stopped.still_improving and not stopped.under_trained and "stopped early" in stopped.sentence("f1")
    assert "saw each of its 1,000 examples at least once" in stopped.sentence("f1")
    full = budget("lora", _train(200, stopped_early=False), 8, CLIMBING, "f1", min_gain=0.02)
    assert full.epochs == 1.6 and not full.under_trained  # past one epoch: its budget did not rule it out


def test_an_under_trained_adapter_is_never_worse():
    table = pd.DataFrame(
        {
            "cell": ["raft+vec", "lora+none", "lora+vec", "base+none"],
            "model": ["raft", "lora", "lora", "base"],
            "verdict": ["best", "worse", "inconclusive", "worse"],
        }
    )
    out = relabel(table, ["lora"])
    assert out["verdict"].tolist() == ["best", UNDER_TRAINED, "inconclusive", "worse"]


def test_a_curve_of_one_point_says_nothing():
    assert still_improving(CLIMBING[:1], "f1", 0.02) == (False, None)


def test_early_stopping_fires_on_a_curve_that_stops_improving():
    # the shipped budget gives four evaluations (20 steps, eval_every 5) against patience 2: it can stop
    # training before its planned end, here at step 15 of 20
    state, stopped_at = new_state(), None
    for step, loss in zip((5, 10, 15, 20), (1.5, 1.6, 1.495, 1.4), strict=True):  # 1.495: below min_delta
        state["evals"].append({"step": step, "tune_loss": loss})
        update_best(state, loss, min_delta=0.01)
        if should_stop(state, patience=2):
            stopped_at = step
            break
    assert stopped_at == 15 and state["best"]["step"] == 5


def test_patience_running_out_on_the_planned_last_step_is_not_an_early_stop():
    """NQ's closed-book LoRA: tune loss flat from step 10, patience reached at step 20 of 20, f1 0 throughout.
    The budget ended there anyway: the adapter is flat at its floor after 0.08 epochs, under-trained."""
    train = {**_train(20, stopped_early=True, kept=10), "planned_steps": 20}
    b = budget("lora", train, 8, AT_FLOOR, "f1", min_gain=0.02)
    assert not b.stopped_early and b.flat_at_floor and b.under_trained and "stopped early" not in b.sentence("f1")
    cut = budget("lora", {**train, "step": 15}, 8, AT_FLOOR, "f1", min_gain=0.02)  # stopped 5 steps early
    assert cut.stopped_early and not cut.under_trained


def test_a_budget_too_short_for_patience_says_so():
    from components.training.trainer import evaluations, warn_if_early_stopping_cannot_fire
    from tests.conftest import PARAMS

    lora = PARAMS.finetune.adapters[0]
    assert evaluations(20, 5) == 4 and evaluations(10, 4) == 3 and evaluations(10, None) == 0
    assert not warn_if_early_stopping_cannot_fire(lora, 20, evaluated=True)  # the shipped budget: it can fire
    assert warn_if_early_stopping_cannot_fire(lora.model_copy(update={"eval_every": 10}), 20, evaluated=True)
