"""What more training could bring: a saturating curve fitted to an adapter's learning curve.

An adapter trained for a fraction of an epoch has not shown what fine-tuning can do; ruling it out on
that budget would decide the question by the budget. Its learning curve (the main metric on the
tuning slice at step 0, the base model, and at every snapshot) is fitted with

    score(e) = a - c * exp(-e / tau),   a in [0, 1],

``e`` in epochs: a curve that rises (c > 0) or falls (c < 0) towards an asymptote ``a``. For each
``tau`` of a log grid (from a tenth of the first snapshot's epochs to a thousand epochs) ``a`` and
``c`` are a linear least-squares fit; the ``tau`` of the smallest squared error wins. The forecast
at 1 and 3 epochs comes with an interval from the same fit on grouped resamples of the questions
(:func:`components.decision.statistics.resample_weights`). It is an extrapolation, often far
beyond the measured range: its error is measured by ``bench/forecast.py`` (fit on the first half of
a longer run, compared with the measured second half), and the report says how far it reaches.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from components.config import StatisticsConfig
from components.decision.statistics import resample_weights

TARGET_EPOCHS = (1.0, 3.0)


@dataclass(frozen=True)
class Forecast:
    """An adapter's expected main metric at ``TARGET_EPOCHS``, with intervals."""

    adapter: str
    measured_epochs: float  # the last measured point
    measured: float  # its score
    at: dict[float, tuple[float, float, float]]  # epochs -> (forecast, low, high)

    def gain(self, epochs: float) -> tuple[float, float, float]:
        """The forecast gain over the last measured point at ``epochs``: (gain, low, high)."""
        mid, low, high = self.at[epochs]
        return mid - self.measured, low - self.measured, high - self.measured


def _taus(epochs: np.ndarray) -> np.ndarray:
    positive = epochs[epochs > 0]
    start = (positive.min() if len(positive) else 0.01) / 10
    return np.geomspace(start, 1000.0, 60)


def fit(epochs: np.ndarray, scores: np.ndarray, targets: tuple[float, ...] = TARGET_EPOCHS) -> np.ndarray:
    """The fitted curve's value at ``targets`` for each row of ``scores`` (resamples x points).

    Args:
        epochs: the points' epochs (at least two distinct).
        scores: one curve per row, one column per point of ``epochs``.
    """
    scores = np.atleast_2d(scores)
    taus = _taus(epochs)
    basis = np.exp(-epochs[None, :] / taus[:, None])  # taus x points
    best_sse = np.full(len(scores), np.inf)
    best = np.zeros((len(scores), len(targets)))
    for tau, b in zip(taus, basis, strict=True):
        design = np.stack([np.ones_like(b), -b], axis=1)  # points x 2: score = a - c * b
        coef, *_ = np.linalg.lstsq(design, scores.T, rcond=None)  # 2 x resamples
        a = np.clip(coef[0], 0.0, 1.0)
        c = (b @ (a[None, :] - scores.T)) / (b @ b)  # the best c for the clipped asymptote
        sse = ((design @ np.stack([a, c]) - scores.T) ** 2).sum(axis=0)
        at = a[:, None] - c[:, None] * np.exp(-np.asarray(targets)[None, :] / tau)
        better = sse < best_sse - 1e-12
        best_sse = np.where(better, sse, best_sse)
        best[better] = at[better]
    return np.clip(best, 0.0, 1.0)


def forecast(
    adapter: str,
    points: list[dict],
    scores: pd.DataFrame,
    metric: str,
    cfg: StatisticsConfig,
    groups: pd.Series | None = None,
    targets: tuple[float, ...] = TARGET_EPOCHS,
) -> Forecast | None:
    """The forecast of one adapter's curve at ``targets`` epochs (None with fewer than 3 points).

    Args:
        points: its curve (``step``, ``epochs``, the metric), step 0 first.
        scores: its per-question scores (``step``, ``qa_id``, the metric), resampled by question group.
        groups: qa_id -> leakage group.
    """
    if len(points) < 3 or "epochs" not in points[0]:
        return None
    epochs = np.array([p["epochs"] for p in points], dtype=float)
    matrix = scores.pivot_table(index="qa_id", columns="step", values=metric, aggfunc="first")
    matrix = matrix[[p["step"] for p in points]].dropna()
    if matrix.empty:
        return None
    keys = matrix.index.to_series()
    if groups is not None:
        keys = groups.reindex(matrix.index).fillna(keys)
    weights = resample_weights(keys.astype(str).to_numpy(), cfg.resamples, cfg.seed)
    values = matrix.to_numpy(dtype=float)
    means = (weights @ values) / weights.sum(axis=1, keepdims=True)
    observed = fit(epochs, values.mean(axis=0), targets)[0]
    resampled = fit(epochs, means, targets)
    alpha = 1 - cfg.confidence
    low, high = np.quantile(resampled, [alpha / 2, 1 - alpha / 2], axis=0)
    at = {t: (float(observed[i]), float(low[i]), float(high[i])) for i, t in enumerate(targets)}
    return Forecast(adapter, float(epochs[-1]), float(values.mean(axis=0)[-1]), at)
