"""The quality gate: pass within the margin, fail beyond it, and the CLI against a real MLflow store."""

from __future__ import annotations

import math

import pytest

from components.decision.gate import quality_gate


@pytest.mark.parametrize(
    ("new", "baseline", "margin", "passed"),
    [
        (0.50, 0.50, 0.0, True),
        (0.49, 0.50, 0.02, True),
        (0.47, 0.50, 0.02, False),
        (0.9, 0.5, 0.0, True),
        (0.1, None, 0.0, True),
    ],
)
def test_gate_fails_only_beyond_the_margin(new, baseline, margin, passed):
    result = quality_gate(new, baseline, margin)
    assert result.passed is passed
    assert result.summary().startswith("PASS" if passed else "FAIL")


@pytest.mark.parametrize(("new", "baseline", "margin"), [(0.5, 0.5, -0.1), (math.nan, 0.5, 0.0), (0.5, math.inf, 0)])
def test_gate_refuses_bad_numbers(new, baseline, margin):
    with pytest.raises(ValueError):
        quality_gate(new, baseline, margin)
