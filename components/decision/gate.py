"""The quality gate of CI on new data: is the new champion worse than the previous one by more than a margin?

A pure function: the CLI (``ragtune gate``) reads data/metrics/best.json and asks MLflow for the
previous best; this module only compares numbers.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GateResult:
    """The outcome of :func:`quality_gate`, with a one-line reason for the CI summary."""

    passed: bool
    metric: str
    new: float
    baseline: float | None
    margin: float

    @property
    def delta(self) -> float | None:
        return None if self.baseline is None else self.new - self.baseline

    def summary(self) -> str:
        if self.baseline is None:
            return f"PASS: no previous champion; new {self.metric} {self.new:.4f} becomes the baseline"
        verdict = "PASS" if self.passed else "FAIL"
        return (
            f"{verdict}: new {self.metric} {self.new:.4f} vs previous {self.baseline:.4f} "
            f"(delta {self.delta:+.4f}, allowed drop {self.margin:.4f})"
        )


def quality_gate(new: float, baseline: float | None, margin: float, metric: str = "f1") -> GateResult:
    """Pass unless ``new`` is below ``baseline`` by more than ``margin`` (higher is better).

    Raises:
        ValueError: ``margin`` is negative or a score is not a finite number.
    """
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    for name, value in (("new", new), ("baseline", baseline)):
        if value is not None and not (value == value and abs(value) != float("inf")):
            raise ValueError(f"{name} {metric} is not a finite number: {value}")
    passed = baseline is None or new >= baseline - margin
    return GateResult(passed=passed, metric=metric, new=new, baseline=baseline, margin=margin)
