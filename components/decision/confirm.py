"""Test confirms: two rules fixed before the test answers are read, each able to say no.

The test split is scored once, after dev made the recommendation, on the cells dev left standing
and on reference cells: the best dev cell of every other family (``evaluation.test_cells``). Two
questions are answered apart:

- **the choice**: does any reference cell beat the recommendation on test beyond the margin? A
  reference *beats* it when the paired, grouped, simultaneous (Bonferroni over the references)
  interval of ``reference - recommendation`` lies above zero and the difference itself exceeds
  ``statistics.margin``. None does: "confirmed"; one does: "not confirmed", naming it. Fewer than
  ``statistics.min_groups`` test groups: "too few test groups" (too little to judge either way).
- **the estimate**: does the recommendation's test mean lie within its dev interval? Below it, the
  dev score was "overestimated on dev" (the winner's curse of choosing the best of several cells on
  the same questions), and the test figure is what to expect.

``register`` refuses a choice that is not "confirmed" unless ``gate.allow_unconfirmed``.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from components.catalog.artifacts import Confirmation, Reference
from components.config import StatisticsConfig
from components.decision.families import family
from components.decision.statistics import compare_to, count_groups, per_question

Z95 = 1.96  # dev and test means "agree within sampling error" when |dev - test| / se is at most this


def _family(row: pd.Series) -> str:
    return family(row["model"], row["retriever"], int(row["shots"]))


def confirm(
    dev: pd.DataFrame,
    test_rows: pd.DataFrame,
    chosen: str,
    metric: str,
    cfg: StatisticsConfig,
    groups: pd.Series | None,
) -> Confirmation:
    """The test split's word on ``chosen`` (see the module docstring).

    Args:
        dev: the dev decision table (``cell``, ``model``, ``retriever``, ``shots``, ``mean``, ``ci_low``, ``ci_high``).
        test_rows: the per-question rows of every cell scored on test (``qa_id``, ``cell``, ``metric``).
        groups: each question's leakage group (index: qa_id), resampled together.
    """
    if test_rows.empty or chosen not in set(test_rows["cell"]):
        return Confirmation(
            choice="not scored",
            estimate="not scored",
            beaten_by=None,
            mean=None,
            ci_low=None,
            ci_high=None,
            questions=0,
            groups=0,
            references=[],
            text="**Test did not score the recommended cell: nothing confirms it.**",
        )
    matrix = per_question(test_rows, metric)
    table = compare_to(matrix, chosen, cfg, groups)
    n_groups = count_groups(matrix, groups)
    info = dev.set_index("cell")
    references = [
        Reference(
            cell=cell,
            family=_family(info.loc[cell]),
            mean=float(row["mean"]),
            diff=float(row["diff"]),
            diff_low=float(row["diff_low"]),
            diff_high=float(row["diff_high"]),
            beats=bool(row["diff_low"] > 0 and row["diff"] > cfg.margin),
        )
        for cell, row in table.drop(index=chosen).sort_values("mean", ascending=False, kind="stable").iterrows()
    ]
    beaten = [r for r in references if r.beats]
    choice = "too few test groups" if n_groups < cfg.min_groups else "not confirmed" if beaten else "confirmed"
    own, on_dev = table.loc[chosen], info.loc[chosen]
    if on_dev["ci_low"] <= own["mean"] <= on_dev["ci_high"]:
        estimate = "reproduced"
    else:
        estimate = "overestimated on dev" if own["mean"] < on_dev["ci_low"] else "underestimated on dev"
    confirmation = Confirmation(
        choice=choice,
        estimate=estimate,
        beaten_by=max(beaten, key=lambda r: r.diff).cell if beaten else None,
        mean=float(own["mean"]),
        ci_low=float(own["ci_low"]),
        ci_high=float(own["ci_high"]),
        questions=len(matrix),
        groups=n_groups,
        references=references,
        text="",
    )
    return confirmation.model_copy(update={"text": confirmation_text(confirmation, chosen, on_dev, metric, cfg)})


def confirmation_text(c: Confirmation, chosen: str, dev: pd.Series, metric: str, cfg: StatisticsConfig) -> str:
    """The confirmation paragraph: the choice, then the estimate, each with its rule and figures."""
    pct = round(cfg.confidence * 100)
    scored = f"{c.questions} test questions ({c.groups} groups)"
    if c.choice == "confirmed":
        refs = ", ".join(r.cell for r in c.references) or "no reference cell"
        choice = (
            f"**Test confirms the choice.** On the {scored} no reference cell beats {chosen} by more than the margin "
            f"{cfg.margin} (references: {refs})."
        )
    elif c.choice == "not confirmed":
        r = next(r for r in c.references if r.cell == c.beaten_by)
        choice = (
            f"**Test does not confirm the choice.** On the {scored} {r.cell} ({r.family}) scores {metric} {r.mean:.3f} "
            f"against {c.mean:.3f}: {r.diff:+.3f} (simultaneous {pct}% CI {r.diff_low:+.3f} to {r.diff_high:+.3f}), "
            f"above zero and beyond the margin {cfg.margin}. `register` refuses this recommendation unless "
            "gate.allow_unconfirmed."
        )
    else:
        choice = (
            f"**Too few test groups to judge the choice:** {c.groups} independent groups, fewer than "
            f"statistics.min_groups = {cfg.min_groups}. `register` refuses it unless gate.allow_unconfirmed."
        )
    interval = f"{metric} {c.mean:.3f} (CI {c.ci_low:.3f}-{c.ci_high:.3f})"
    dev_ci = f"{dev['mean']:.3f} (CI {dev['ci_low']:.3f}-{dev['ci_high']:.3f})"
    estimate = {
        "reproduced": f"**The estimate is reproduced:** {chosen} scores {interval} on test, within its dev interval "
        f"{dev_ci}.",
        "overestimated on dev": f"**The estimate was overestimated on dev:** {chosen} scores {interval} on test, below "
        f"its dev interval {dev_ci} (the best of several cells chosen on the same questions looks better than it "
        f"is). Expect {c.mean:.3f}.",
        "underestimated on dev": f"**The estimate was underestimated on dev:** {chosen} scores {interval} on test, "
        f"above its dev interval {dev_ci}.",
    }[c.estimate]
    return f"{choice} {estimate}"


def calibration(dev: pd.DataFrame, test: pd.DataFrame | None) -> dict | None:
    """How well dev predicts test over the cells scored on both: the share whose means agree within sampling
    error (|dev - test| / sqrt(se_dev^2 + se_test^2) <= 1.96) and the rank correlation (Spearman) of the means.

    Returns:
        ``cells``, ``agree`` (how many), ``share``, ``spearman`` (None below 3 cells or without variation),
        ``z`` (cell -> its statistic); None when fewer than 2 cells were scored on both.
    """
    if test is None:
        return None
    both = dev.set_index("cell")[["mean", "se"]].join(
        test.set_index("cell")[["mean", "se"]], rsuffix="_test", how="inner"
    )
    if len(both) < 2:
        return None
    spread = np.sqrt(both["se"] ** 2 + both["se_test"] ** 2)
    diff = (both["mean"] - both["mean_test"]).abs()
    z = pd.Series(
        np.where(spread > 0, diff / spread.where(spread > 0, 1.0), np.where(diff > 0, np.inf, 0.0)), both.index
    )
    rho = both["mean"].rank().corr(both["mean_test"].rank()) if len(both) >= 3 else None
    return {
        "cells": len(both),
        "agree": int((z <= Z95).sum()),
        "share": float((z <= Z95).mean()),
        "spearman": None if rho is None or math.isnan(rho) else float(rho),
        "z": {c: float(v) for c, v in z.items()},
    }


def calibration_line(cal: dict | None) -> str:
    """One sentence of :func:`calibration`'s figures."""
    if cal is None:
        return (
            "Calibration: fewer than two cells answered both splits; score more on test (evaluation.test_cells: all)."
        )
    rho = "not defined (fewer than 3 cells)" if cal["spearman"] is None else f"{cal['spearman']:+.2f}"
    return (
        f"Calibration of dev against test over the {cal['cells']} cells scored on both: {cal['agree']} of them "
        f"({cal['share']:.0%}) agree within sampling error (|dev - test| / sqrt(se_dev^2 + se_test^2) <= {Z95}); "
        f"rank correlation (Spearman) of dev and test means {rho}."
    )
