"""The gate in front of the champion alias: is the new recommended cell non-inferior to the champion?

Both are scored on the same questions of the same split (``gate.split``: test, on which neither was
chosen). The paired bootstrap of :mod:`components.decision.statistics` gives the interval of the
difference ``new - champion``, resampling question *groups* (``leakage_group``: paraphrases,
near-duplicates and questions on one gold document are drawn together); the gate passes when that
interval's lower end is above ``-margin``. Before any comparison it refuses a recommendation test
did not confirm, one made on too few dev groups, and a comparison on too few groups of its own.
With an anchor (``gate.anchor: best-ever``) the new cell must also be non-inferior to the best
champion so far, so a chain of passes cannot drift down by a margin each time.
A pure module: the register stage scores the models and asks it for a :class:`Verdict`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import pandas as pd

from components.config import StatisticsConfig
from components.decision.statistics import bootstrap, count_groups

NEW, CHAMPION = "new", "champion"  # the two columns of the paired scores


@dataclass(frozen=True)
class Verdict:
    """The gate's outcome, with the figures a CI summary and the register stage print."""

    passed: bool
    reason: str  # "first" (no champion yet), "same" (the champion is this very bundle), "non-inferior",
    # "inferior", "few-groups" (the recommendation rests on too few dev question groups), "few-gate-groups"
    # (the gate's own questions form too few groups), "unconfirmed" (test did not confirm the choice),
    # "below-anchor" (non-inferior to the champion, but not to the best champion so far)
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
    champion_version: str | None = None  # the version the gate judged against: the alias moves only from it
    min_groups: int | None = None  # statistics.min_groups, for a "few-gate-groups" refusal
    confirmation: str | None = None  # best.json's confirmation.choice, for an "unconfirmed" refusal
    beaten_by: str | None = None  # the reference cell that beat the recommendation on test
    anchor: str | None = None  # the best champion so far (gate.anchor: best-ever), e.g. "ragtune-qa version 2 (...)"
    anchor_version: str | None = None  # the anchor alias's version when judged (None: no anchor alias yet)
    anchor_mean: float | None = None  # the anchor's mean on the same questions
    anchor_diff_low: float | None = None  # lower end of the interval of new - anchor

    def summary(self) -> str:
        """A few lines: the verdict first, then why, with the figures."""
        head = f"gate {'PASS' if self.passed else 'FAIL'}"
        return head + _SUMMARIES.get(self.reason, _compared)(self)

    def as_dict(self) -> dict:
        return asdict(self)


def _first(v: Verdict) -> str:
    return f": no {v.champion or 'champion'} yet; {v.new} becomes the first champion"


def _same(v: Verdict) -> str:
    return f": {v.new} is the bundle {v.champion} already serves; nothing to compare"


def _few_groups(v: Verdict) -> str:
    return (
        f": {v.new} was recommended on only {v.groups} independent {v.split} question groups (fewer than "
        f"statistics.min_groups): its intervals are too wide to trust; evaluate more questions, or set "
        f"gate.allow_few_groups: true (with gate.judge_only: true) to judge it anyway"
    )


def _few_gate_groups(v: Verdict) -> str:
    return (
        f": the gate's {v.questions} {v.split} questions form only {v.groups} independent groups "
        f"(statistics.min_groups is {v.min_groups}): too few to tell {v.new} from {v.champion}; the alias stays. "
        f"Add questions, or judge only (gate.judge_only and gate.allow_few_groups: true)"
    )


def _unconfirmed(v: Verdict) -> str:
    beaten = f" ({v.beaten_by} beat it on test)" if v.beaten_by else ""
    return (
        f": test did not confirm the recommendation {v.new}: {v.confirmation}{beaten}; the alias stays "
        f"(gate.allow_unconfirmed: true registers it anyway)"
    )


def _below_anchor(v: Verdict) -> str:
    return (
        f": {v.new} is non-inferior to the champion {v.champion} but not to the best champion so far, {v.anchor}: "
        f"{v.metric} {v.new_mean:.4f} vs {v.anchor_mean:.4f}, lower end of the difference {v.anchor_diff_low:+.4f} "
        f"<= -margin {-v.margin:+.4f}; the alias stays"
    )


def _compared(v: Verdict) -> str:
    rule = f"lower end {v.diff_low:+.4f} {'>' if v.passed else '<='} -margin {-v.margin:+.4f}"
    return "\n".join(
        [
            f": new {v.new} {v.metric} {v.new_mean:.4f} vs champion {v.champion} {v.champion_mean:.4f} on the same "
            f"{v.questions} {v.split} questions ({v.groups} groups)",
            f"  difference {v.diff:+.4f}, {v.confidence:.0%} paired bootstrap interval "
            f"[{v.diff_low:+.4f}, {v.diff_high:+.4f}]; {rule}",
            "  the new cell is non-inferior: the alias moves"
            if v.passed
            else "  the new cell may be worse than the champion by more than the margin: the alias stays",
        ]
    )


_SUMMARIES = {
    "first": _first,
    "same": _same,
    "few-groups": _few_groups,
    "few-gate-groups": _few_gate_groups,
    "unconfirmed": _unconfirmed,
    "below-anchor": _below_anchor,
}


def first_champion(new: str, metric: str, split: str, margin: float) -> Verdict:
    """No champion to compare with: the first run passes, and says so."""
    return Verdict(True, "first", metric, split, new, None, margin)


def same_bundle(new: str, champion: str, metric: str, split: str, margin: float, version: str | None = None) -> Verdict:
    """The new cell is the very bundle the champion serves (same content hash): nothing changes."""
    return Verdict(True, "same", metric, split, new, champion, margin, champion_version=version)


def confirmation_guard(
    new: str, metric: str, split: str, margin: float, choice: str, beaten_by: str | None, allow: bool
) -> Verdict | None:
    """A refusal when test did not confirm the recommendation (``choice`` of best.json's confirmation is not
    "confirmed") and the params do not allow it (``gate.allow_unconfirmed``); None: go on."""
    if choice != "confirmed" and not allow:
        return Verdict(False, "unconfirmed", metric, split, new, None, margin, confirmation=choice, beaten_by=beaten_by)
    return None


def gate_groups_guard(
    new: str, champion: str, version: str, metric: str, split: str, margin: float, questions: int, groups: int,
    min_groups: int, allow: bool,
) -> Verdict | None:  # fmt: skip
    """A refusal when the gate's own questions form fewer than ``min_groups`` independent groups; None: go on.

    Few groups make a narrow interval out of little evidence: one question with both scores 0 gives a
    zero-width interval, forty paraphrases of one fact count as one. ``allow`` (``gate.allow_few_groups``,
    judge-only runs) goes on all the same.
    """
    if groups < min_groups and not allow:
        return Verdict(
            False, "few-gate-groups", metric, split, new, champion, margin, questions=questions, groups=groups,
            champion_version=version, min_groups=min_groups,
        )  # fmt: skip
    return None


def anchored(verdict: Verdict, against: Verdict, anchor_version: str | None) -> Verdict:
    """``verdict`` (new vs champion) bounded by ``against`` (new vs the best champion so far, same questions).

    A pass that is not also non-inferior to the anchor becomes a "below-anchor" refusal.
    """
    figures = {
        "anchor": against.champion,
        "anchor_version": anchor_version,
        "anchor_mean": against.champion_mean,
        "anchor_diff_low": against.diff_low,
    }
    if verdict.passed and not against.passed:
        return replace(verdict, passed=False, reason="below-anchor", **figures)
    return replace(verdict, **figures)


def anchor_moves(verdict: Verdict) -> bool:
    """Whether the anchor alias follows the new champion: it passed and beat the anchor's mean (or there was none)."""
    if not verdict.passed or verdict.reason not in ("first", "non-inferior"):
        return False
    return verdict.anchor_mean is None or verdict.new_mean > verdict.anchor_mean


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
    version: str | None = None,
) -> Verdict:
    """The verdict from paired per-question scores.

    Args:
        scores: one row per question (index: qa_id), columns :data:`NEW` and :data:`CHAMPION`.
        margin: the largest drop of the mean tolerated (> 0), in the metric's units.
        groups: question group by qa_id (paraphrases resample together); None: each question alone.
        version: the champion's registry version (recorded: the alias moves only from it).

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
        champion_version=version,
    )
