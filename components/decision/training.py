"""Was each adapter given a fair budget? Its coverage of the training data, where its curve ended, and
whether it is under-trained.

Fine-tuning is never ruled out by its budget: an adapter that saw less than one epoch of its data
while its learning curve was still rising, or whose curve is flat at its floor (no gain over step 0,
the base model) before it has seen its data, is *under-trained*. The decision then calls its cells
"not ruled out (under-trained)" instead of "worse", and the report gives a forecast of what more
training could bring (:mod:`components.decision.forecast`).
"""

from __future__ import annotations

from dataclasses import dataclass

UNDER_TRAINED = "not ruled out (under-trained)"  # the verdict of a cell whose adapter is under-trained


@dataclass(frozen=True)
class Budget:
    """What an adapter's training covered, and where its learning curve ended."""

    adapter: str
    examples: int
    kept_step: int  # the snapshot kept as the adapter (the best by tune loss), or the last step
    steps: int  # steps run
    seen: int  # examples drawn (with repeats across epochs) up to the kept snapshot
    epochs: float  # seen / examples: what the adapter the grid scored had seen
    stopped_early: bool
    still_improving: bool  # the curve's last gain exceeds min_gain
    flat_at_floor: bool  # no curve point above its first (step 0: the base model) by more than min_gain
    last_gain: float | None  # main metric gained between the last two curve points

    @property
    def under_trained(self) -> bool:
        """Below one epoch with a rising curve, or flat at the floor before it has seen its data."""
        return self.epochs < 1 and not self.stopped_early and (self.still_improving or self.flat_at_floor)

    def sentence(self, metric: str) -> str:
        covered = (
            f"{self.adapter} saw {self.epochs:.2f} epochs of its {self.examples:,} examples"
            if self.epochs < 1
            else f"{self.adapter} saw each of its {self.examples:,} examples at least once ({self.epochs:.1f} epochs)"
        )
        covered += f" at the snapshot kept (step {self.kept_step} of {self.steps})"
        if self.stopped_early:
            return covered + "; it stopped early when its tune loss stopped improving."
        if self.still_improving:
            text = (
                f"; it was **still improving at the end of its budget** ({metric} {self.last_gain:+.3f} over its last "
                "interval)"
            )
        elif self.flat_at_floor:
            text = "; its curve is **flat at its floor** (no gain over the base model yet)"
        else:
            return covered + "; its learning curve had flattened by the end of its budget."
        if self.under_trained:
            return covered + text + f": **under-trained**, its cells are {UNDER_TRAINED}, never worse."
        return covered + text + "."


def still_improving(curve: list[dict], metric: str, min_gain: float) -> tuple[bool, float | None]:
    """Whether the last step of a learning curve gained more than ``min_gain`` on ``metric``, and that gain."""
    if len(curve) < 2:
        return False, None
    gain = curve[-1][metric] - curve[-2][metric]
    return gain > min_gain, gain


def flat_at_floor(curve: list[dict], metric: str, min_gain: float) -> bool:
    """No point after the first rose above it by more than ``min_gain`` (a curve of one point says nothing)."""
    if len(curve) < 2:
        return False
    return max(p[metric] for p in curve[1:]) <= curve[0][metric] + min_gain


def budget(adapter: str, train: dict, per_step: int, curve: list[dict], metric: str, min_gain: float) -> Budget:
    """An adapter's budget from its ``finetune.json`` entry and its learning curve.

    Args:
        per_step: examples one optimiser step draws over all workers (batch x accumulation x workers).
        curve: its learning curve, step 0 (the base model) first when it was scored.
    """
    kept = (train.get("best") or {}).get("step", train["step"])
    improving, gain = still_improving(curve, metric, min_gain)
    # patience running out on the planned last step stopped nothing: the budget ended there anyway
    stopped = bool(train["stopped_early"]) and train["step"] < train.get("planned_steps", train["step"] + 1)
    return Budget(
        adapter=adapter,
        examples=train["examples"],
        kept_step=kept,
        steps=train["step"],
        seen=kept * per_step,
        epochs=kept * per_step / max(train["examples"], 1),
        stopped_early=stopped,
        still_improving=improving and not stopped,
        flat_at_floor=flat_at_floor(curve, metric, min_gain),
        last_gain=gain,
    )
