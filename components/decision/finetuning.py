"""Fine-tuning is never ruled out by its budget: budgets, under-trained verdicts and forecasts, with the
report section that shows them.

For each adapter: its :class:`~components.decision.training.Budget` (epochs at the kept snapshot, its
learning curve on the tuning slice) and a :class:`~components.decision.forecast.Forecast` at 1 and 3
epochs. A cell whose adapter is under-trained gets the verdict "not ruled out (under-trained)" where
dev would have said "worse". The forecast's gain, added to the adapter's best dev cell, says whether
more training could overturn the recommendation.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from components.config import StatisticsConfig
from components.decision.forecast import TARGET_EPOCHS, Forecast, forecast
from components.decision.training import UNDER_TRAINED, Budget, budget


@dataclass(frozen=True)
class FineTuning:
    budgets: list[Budget]
    forecasts: dict[str, Forecast]  # adapter -> its forecast (adapters with a curve of 3 points or more)
    curves: dict[str, list[dict]]

    @property
    def under_trained(self) -> list[str]:
        return [b.adapter for b in self.budgets if b.under_trained]


def assess(
    train: dict[str, dict],
    curves: dict[str, list[dict]],
    curve_scores: pd.DataFrame,
    metric: str,
    min_gain: float,
    cfg: StatisticsConfig,
    groups: pd.Series | None,
) -> FineTuning:
    """Each adapter's budget and forecast from ``finetune.json``, ``curves.json`` and the per-question curve scores."""
    budgets = [budget(a, t, t["examples_per_step"], curves.get(a, []), metric, min_gain) for a, t in train.items()]
    forecasts = {}
    for adapter, points in curves.items():
        mine = curve_scores[curve_scores["adapter"] == adapter] if "adapter" in curve_scores else curve_scores.iloc[:0]
        found = forecast(adapter, points, mine, metric, cfg, groups) if not mine.empty else None
        if found is not None:
            forecasts[adapter] = found
    return FineTuning(budgets, forecasts, curves)


def relabel(table: pd.DataFrame, under_trained: list[str]) -> pd.DataFrame:
    """The decision table with "worse" turned into "not ruled out (under-trained)" for under-trained adapters."""
    out = table.copy()
    out.loc[out["model"].isin(under_trained) & (out["verdict"] == "worse"), "verdict"] = UNDER_TRAINED
    return out


def _unit(score: float) -> float:
    """A projected score kept in the range of the main metrics (a share or a mean of per-question scores in 0-1)."""
    return min(1.0, max(0.0, score))


def overturn(ft: FineTuning, table: pd.DataFrame, recommended: str) -> dict[str, dict]:
    """Per forecast adapter: its best dev cell, and that cell's dev mean plus the forecast gain at 3 epochs
    (``projected``, ``low``, ``high``, within the metric's range 0-1); ``could`` when the high end passes the
    recommendation's dev mean."""
    rec = float(table.set_index("cell").loc[recommended, "mean"])
    out = {}
    for adapter, f in ft.forecasts.items():
        own = table[table["model"] == adapter].sort_values("mean", ascending=False)
        if own.empty:
            continue
        cell = own.iloc[0]
        gain, low, high = f.gain(TARGET_EPOCHS[-1])
        mean = float(cell["mean"])
        out[adapter] = {
            "cell": cell["cell"],
            "dev": mean,
            "projected": _unit(mean + gain),
            "low": _unit(mean + low),
            "high": _unit(mean + high),
            "could": cell["cell"] != recommended and mean + high > rec,
        }
    return out


def finetuning_lines(ft: FineTuning, table: pd.DataFrame, recommended: str, metric: str) -> list[str]:
    """The report's section: budgets and curves (tune), forecasts, and whether they could overturn the choice."""
    if not ft.budgets:
        return []
    answered = int(max((p.get("questions", 0) for points in ft.curves.values() for p in points), default=0))
    lines = [
        "## Fine-tuning budgets, learning curves and forecasts (tune)",
        "",
        f"Each snapshot (and step 0, the base model) answered {answered} tune questions in the adapter's own cell; "
        "epochs are counted at the snapshot kept (the best by tune loss).",
        "",
        f"| adapter | examples | epochs seen | curve (step: {metric}) |",
        "| --- | --- | --- | --- |",
    ]
    for b in ft.budgets:
        curve = ", ".join(f"{int(p['step'])}: {p[metric]:.3f}" for p in ft.curves.get(b.adapter, [])) or "-"
        lines.append(f"| {b.adapter} | {b.examples:,} | {b.epochs:.2f} | {curve} |")
    lines += ["", *(f"- {b.sentence(metric)}" for b in ft.budgets), ""]
    if not ft.forecasts:
        return lines
    paths = overturn(ft, table, recommended)
    lines += [
        "Forecast: a saturating curve fitted to each learning curve, with intervals from question resamples; an "
        "extrapolation from the last measured epoch (its error on longer runs: docs/decision.md).",
        "",
        "| adapter | measured | at 1 epoch | at 3 epochs | its best dev cell | that cell at 3 epochs (dev) "
        "| could overturn |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for adapter, f in ft.forecasts.items():
        one, three = f.at[TARGET_EPOCHS[0]], f.at[TARGET_EPOCHS[-1]]
        p = paths.get(adapter)
        cell = f"{p['cell']} ({p['dev']:.3f})" if p else "-"
        projected = f"{p['projected']:.3f} ({p['low']:.3f}-{p['high']:.3f})" if p else "-"
        could = "yes" if p and p["could"] else "no"
        lines.append(
            f"| {adapter} | {f.measured:.3f} at {f.measured_epochs:.2f} | {one[0]:.3f} ({one[1]:.3f}-{one[2]:.3f}) | "
            f"{three[0]:.3f} ({three[1]:.3f}-{three[2]:.3f}) | {cell} | {projected} | {could} |"
        )
    overturning = [a for a, p in paths.items() if p["could"]]
    lines += [
        "",
        f"More training **could overturn** the recommendation: {', '.join(overturning)} (the high end of the forecast "
        f"passes {recommended}'s dev score)."
        if overturning
        else f"By these forecasts, 3 epochs of training would not overturn {recommended}.",
        "",
    ]
    return lines


def under_trained_note(cells: list[str]) -> str:
    """The recommendation's sentence naming the cells not ruled out because their adapters are under-trained."""
    if not cells:
        return ""
    return (
        f" Not ruled out (under-trained): {', '.join(cells)}: their adapters saw less than one epoch and were still "
        "improving (or had not left their floor yet); see the forecasts below."
    )
