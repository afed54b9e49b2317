"""Was each adapter given a fair budget? Its coverage of the training data and whether it was still improving.

A fine-tuned cell that loses because it saw a fraction of its data, or stopped while its curve was
still climbing, says little about fine-tuning: the report says so, with the figures.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Budget:
    """What an adapter's training covered, and where its learning curve ended."""

    adapter: str
    examples: int
    seen: int  # examples drawn (with repeats across epochs) in the steps it ran
    epochs: float  # seen / examples
    stopped_early: bool
    still_improving: bool
    last_gain: float | None  # main metric gained between the last two curve points

    def sentence(self, metric: str) -> str:
        covered = (
            f"{self.adapter} saw {self.epochs:.2f} epochs of its {self.examples:,} examples"
            if self.epochs < 1
            else f"{self.adapter} saw each of its {self.examples:,} examples at least once ({self.epochs:.1f} epochs)"
        )
        if self.stopped_early:
            return covered + "; it stopped early when its dev loss stopped improving."
        if self.still_improving:
            return covered + (
                f"; it was **still improving at the end of its budget** ({metric} {self.last_gain:+.3f} over its last "
                "interval): more training may change this verdict."
            )
        return covered + "; its learning curve had flattened by the end of its budget."


def still_improving(curve: list[dict], metric: str, min_gain: float) -> tuple[bool, float | None]:
    """Whether the last step of a learning curve gained more than ``min_gain`` on ``metric``, and that gain."""
    if len(curve) < 2:
        return False, None
    gain = curve[-1][metric] - curve[-2][metric]
    return gain > min_gain, gain


def budget(adapter: str, train: dict, per_step: int, curve: list[dict], metric: str, min_gain: float) -> Budget:
    """An adapter's budget from its ``finetune.json`` entry and its learning curve.

    Args:
        per_step: examples one optimiser step draws over all workers (batch x accumulation x workers).
    """
    seen = train["step"] * per_step
    improving, gain = still_improving(curve, metric, min_gain)
    return Budget(
        adapter=adapter,
        examples=train["examples"],
        seen=seen,
        epochs=seen / max(train["examples"], 1),
        stopped_early=bool(train["stopped_early"]),
        still_improving=improving and not train["stopped_early"],
        last_gain=gain,
    )
