"""The report says when fine-tuning lost by budget: data not covered, or a curve still climbing at the end."""

from __future__ import annotations

from components.decision.training import budget, still_improving

CLIMBING = [{"step": 10, "f1": 0.05}, {"step": 20, "f1": 0.12}, {"step": 30, "f1": 0.21}]
FLAT = [{"step": 10, "f1": 0.05}, {"step": 20, "f1": 0.20}, {"step": 30, "f1": 0.205}]


def _train(step: int, stopped_early: bool) -> dict:
    return {"step": step, "examples": 1000, "stopped_early": stopped_early}


def test_an_adapter_cut_off_by_its_budget_while_improving_is_flagged_with_its_last_gain():
    b = budget("lora", _train(30, stopped_early=False), 8, CLIMBING, "f1", min_gain=0.02)
    assert b.still_improving and round(b.last_gain, 3) == 0.09
    assert b.epochs == 0.24 and "still improving at the end of its budget" in b.sentence("f1")
    assert "0.24 epochs of its 1,000 examples" in b.sentence("f1")


def test_a_converged_adapter_is_not_flagged():
    flat = budget("lora", _train(30, stopped_early=False), 8, FLAT, "f1", min_gain=0.02)
    assert not flat.still_improving and "flattened" in flat.sentence("f1")
    stopped = budget("lora", _train(20, stopped_early=True), 50, CLIMBING, "f1", min_gain=0.02)
    assert not stopped.still_improving and "stopped early" in stopped.sentence("f1")
    assert "saw each of its 1,000 examples at least once" in stopped.sentence("f1")


def test_a_curve_of_one_point_says_nothing():
    assert still_improving(CLIMBING[:1], "f1", 0.02) == (False, None)
