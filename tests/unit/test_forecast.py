"""The forecast of an adapter's learning curve at 1 and 3 epochs, with intervals from question resamples."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from components.decision.forecast import fit, forecast
from tests.conftest import PARAMS, like

STATS = like(PARAMS.evaluation.statistics, resamples=300, seed=0)


def _true(e):
    return 0.6 - 0.5 * np.exp(-np.asarray(e) / 0.5)


def test_a_saturating_curve_is_extrapolated_to_its_later_values():
    measured = np.array([0.0, 0.1, 0.2, 0.3, 0.4, 0.5])
    at = fit(measured, _true(measured))[0]
    assert at == pytest.approx(_true([1.0, 3.0]), abs=0.01)


def test_a_flat_curve_forecasts_no_gain():
    measured = np.array([0.0, 0.01, 0.02, 0.03])
    assert fit(measured, np.full(4, 0.2))[0] == pytest.approx([0.2, 0.2], abs=1e-6)


def test_the_forecast_interval_comes_from_resampled_questions():
    rng = np.random.default_rng(0)
    steps, epochs = [0, 10, 20, 30, 40], [0.0, 0.1, 0.2, 0.3, 0.4]
    rows = []
    for step, e in zip(steps, epochs, strict=True):
        p = _true(e)
        rows += [{"step": step, "qa_id": f"q{i:02d}", "f1": float(rng.random() < p)} for i in range(60)]
    points = [{"step": s, "epochs": e, "f1": 0.0} for s, e in zip(steps, epochs, strict=True)]
    f = forecast("lora", points, pd.DataFrame(rows), "f1", STATS)
    mid, low, high = f.at[3.0]
    assert low <= mid <= high and high - low > 0.02  # 60 noisy questions: a real interval
    gain, gain_low, gain_high = f.gain(3.0)
    assert gain == pytest.approx(mid - f.measured)
    assert forecast("lora", points[:2], pd.DataFrame(rows), "f1", STATS) is None  # two points: no forecast


def test_a_cell_projected_past_the_top_of_the_metric_stays_within_it():
    """The ISO report once showed a cell projected to f1 0.932 (0.242-1.061): dev mean plus the forecast gain can
    pass 1, which no main metric can reach; the projection is kept within 0-1, and whether it could overturn the
    recommendation is judged on the kept value."""
    from components.decision.finetuning import FineTuning, overturn
    from components.decision.forecast import Forecast

    f = Forecast("raft", 0.16, 0.278, {1.0: (0.78, 0.18, 0.94), 3.0: (0.87, 0.18, 1.0)})
    table = pd.DataFrame({"cell": ["raft+fulltext", "raft+none"], "model": ["raft", "raft"], "mean": [0.339, 0.04]})
    projected = overturn(FineTuning([], {"raft": f}, {}), table, "raft+fulltext")["raft"]
    assert projected["high"] == 1.0 and projected["low"] == pytest.approx(0.339 + 0.18 - 0.278)
    assert projected["projected"] == pytest.approx(0.339 + 0.87 - 0.278)
    assert not projected["could"]  # its own best cell is the recommendation
