"""Power, said plainly: the smallest difference the dev split resolves, and how many groups the margin needs.

From the same paired resamples as the verdicts: the half-width of a cell's simultaneous interval of
the difference to the best is the smallest difference that comparison can resolve. A cell can be
called *equivalent* only when that half-width is below the margin; it shrinks about as
``1 / sqrt(groups)``, so ``groups * (half_width / margin)^2`` groups would bring it to the margin. A
cell the data leaves inconclusive with a half-width above the margin is *underpowered*: the top
mean is then not a finding, and the report names the cells and the groups needed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd


@dataclass(frozen=True)
class Power:
    groups: int  # independent dev question groups
    margin: float
    resolvable: float  # median half-width of the simultaneous intervals of the differences to the best
    needed: int  # groups the margin needs for that median comparison
    underpowered: dict[str, int]  # inconclusive cell -> groups its comparison needs

    def text(self) -> str:
        line = (
            f"**Power:** with {self.groups} dev question groups a difference to the best is resolved to about "
            f"+-{self.resolvable:.3f} (the median half-width of the simultaneous intervals); the margin {self.margin} "
            f"needs about {self.needed:,} groups."
        )
        if not self.underpowered:
            return line
        cells = ", ".join(self.underpowered)
        return line + (
            f" **Underpowered:** {cells} cannot be told apart from the best with {self.groups} groups; about "
            f"{max(self.underpowered.values()):,} needed. The top mean among them is not a finding."
        )


def groups_needed(groups: int, half_width: float, margin: float) -> int:
    """Groups that would shrink ``half_width`` (measured on ``groups``) to ``margin``, at 1/sqrt(n)."""
    if half_width <= margin:
        return groups
    return math.ceil(groups * (half_width / margin) ** 2)


def power(stats: pd.DataFrame, groups: int, margin: float) -> Power:
    """The power of the dev comparison (``stats``: the decision table with ``diff_low``, ``diff_high``, ``verdict``)."""
    stats = stats.set_index("cell") if "cell" in stats else stats
    others = stats[stats["verdict"] != "best"]
    if others.empty:
        return Power(groups, margin, 0.0, groups, {})
    half = (others["diff_high"] - others["diff_low"]) / 2
    resolvable = float(half.median())
    unclear = others[others["verdict"].isin(["inconclusive", "better"]) & (half > margin)]
    by_cell = dict(zip(others.index, half, strict=True))
    cells = unclear.index
    return Power(
        groups=groups,
        margin=margin,
        resolvable=resolvable,
        needed=groups_needed(groups, resolvable, margin),
        underpowered={c: groups_needed(groups, by_cell[c], margin) for c in cells},
    )
