"""The gate in front of the champion alias: is the new recommended cell non-inferior to the champion?

Both are scored on the same questions of the same split (dev: the gate chooses, so it never reads
test). The paired bootstrap of :mod:`components.decision.statistics` gives the interval of the
difference ``new - champion``; the gate passes when that interval's lower end is above ``-margin``.
A pure module: the register stage scores the models and asks it for a :class:`Verdict`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import pandas as pd

from components.config import StatisticsConfig
from components.decision.statistics import bootstrap, count_groups

NEW, CHAMPION = "new", "champion"  # the two columns of the paired scores


@dataclass(frozen=True)
class Verdict:
    """The gate's outcome, with the figures a CI summary and the register stage print."""

    passed: bool
    reason: str  # "first" (no champion yet), "same" (the champion is this very bundle), "non-inferior",
    # "inferior", "few-groups" (the recommendation rests on too few dev question groups)
    metric: str
    split: str
    new: str  # the new recommended cell
    champion: str | None  # e.g. "ragtune-qa version 3 (base+vector-minilm-k3)"; None when there is none
    margin: float
    questions: int = 0
    groups: int = 0  # distinct question groups among them (paraphrases share one)
    new_mean: float | None = None
    champion_mean: float | None = None
    diff: float | None = None  # new - champion
    diff_low: float | None = None
    diff_high: float | None = None
    confidence: float | None = None

    def summary(self) -> str:
        """A few lines: the verdict first, then why, with the figures."""
        head = f"gate {'PASS' if self.passed else 'FAIL'}"
        if self.reason == "first":
            return f"{head}: no {self.champion or 'champion'} yet; {self.new} becomes the first champion"
        if self.reason == "same":
            return f"{head}: {self.new} is the bundle {self.champion} already serves; nothing to compare"
        if self.reason == "few-groups":
            return (
                f"{head}: {self.new} was recommended on only {self.groups} independent {self.split} question groups "
                f"(fewer than statistics.min_groups): its intervals are too wide to trust; evaluate more questions, "
                f"or set gate.allow_few_groups: true in params/evaluation.yaml to judge it anyway"
            )
        rule = f"lower end {self.diff_low:+.4f} {'>' if self.passed else '<='} -margin {-self.margin:+.4f}"
        return "\n".join(
            [
                f"{head}: new {self.new} {self.metric} {self.new_mean:.4f} vs champion {self.champion} "
                f"{self.champion_mean:.4f} on the same {self.questions} {self.split} questions ({self.groups} groups)",
                f"  difference {self.diff:+.4f}, {self.confidence:.0%} paired bootstrap interval "
                f"[{self.diff_low:+.4f}, {self.diff_high:+.4f}]; {rule}",
                "  the new cell is non-inferior: the alias moves"
                if self.passed
                else "  the new cell may be worse than the champion by more than the margin: the alias stays",
            ]
        )

    def as_dict(self) -> dict:
        return asdict(self)


def first_champion(new: str, metric: str, split: str, margin: float) -> Verdict:
    """No champion to compare with: the first run passes, and says so."""
    return Verdict(True, "first", metric, split, new, None, margin)


def same_bundle(new: str, champion: str, metric: str, split: str, margin: float) -> Verdict:
    """The new cell is the very bundle the champion serves (same content hash): nothing changes."""
    return Verdict(True, "same", metric, split, new, champion, margin)


def size_guard(new: str, metric: str, split: str, margin: float, groups: int, few: bool, allow: bool) -> Verdict | None:
    """A refusal when the recommendation rests on fewer groups than ``statistics.min_groups`` (``few``,
    from best.json) and the params do not allow it; None: go on and judge."""
    if few and not allow:
        return Verdict(False, "few-groups", metric, split, new, None, margin, groups=groups)
    return None


def non_inferiority(
    scores: pd.DataFrame,
    margin: float,
    cfg: StatisticsConfig,
    *,
    new: str,
    champion: str,
    metric: str,
    split: str,
    groups: pd.Series | None = None,
) -> Verdict:
    """The verdict from paired per-question scores.

    Args:
        scores: one row per question (index: qa_id), columns :data:`NEW` and :data:`CHAMPION`.
        margin: the largest drop of the mean tolerated (> 0), in the metric's units.
        groups: question group by qa_id (paraphrases resample together); None: each question alone.

    Raises:
        ValueError: no questions, a missing or non-finite score, or a margin that is not positive.
    """
    if not margin > 0:
        raise ValueError(f"the gate's margin must be > 0, got {margin}")
    if scores.empty:
        raise ValueError("the gate has no questions to compare on")
    matrix = scores[[NEW, CHAMPION]].astype(float)
    if not all(math.isfinite(v) for v in matrix.to_numpy().ravel()):
        raise ValueError(f"the gate's scores hold a missing or non-finite {metric}")
    table = bootstrap(matrix, cfg, groups)  # paraphrases of one fact are drawn together
    if table.index[0] == NEW:  # bootstrap's differences are "cell - best": turn them into new - champion
        diff, low, high = (
            -table.loc[CHAMPION, "diff"],
            -table.loc[CHAMPION, "diff_high"],
            -table.loc[CHAMPION, "diff_low"],
        )
    else:
        diff, low, high = table.loc[NEW, "diff"], table.loc[NEW, "diff_low"], table.loc[NEW, "diff_high"]
    return Verdict(
        passed=bool(low > -margin),
        reason="non-inferior" if low > -margin else "inferior",
        metric=metric,
        split=split,
        new=new,
        champion=champion,
        margin=margin,
        questions=len(matrix),
        groups=count_groups(matrix, groups),
        new_mean=float(table.loc[NEW, "mean"]),
        champion_mean=float(table.loc[CHAMPION, "mean"]),
        diff=float(diff),
        diff_low=float(low),
        diff_high=float(high),
        confidence=cfg.confidence,
    )
