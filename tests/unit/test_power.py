"""Power: the smallest difference dev resolves, and "underpowered" instead of a top mean presented as a finding."""

from __future__ import annotations

import pandas as pd

from components.decision.power import groups_needed, power
from components.decision.statistics import bootstrap, per_question
from tests.conftest import PARAMS, like

STATS = like(PARAMS.evaluation.statistics, resamples=1000, seed=0, margin=0.03)


def _table(scores: dict[str, list[float]]) -> pd.DataFrame:
    rows = pd.DataFrame(
        [{"qa_id": f"q{i:03d}", "cell": c, "f1": v} for c, values in scores.items() for i, v in enumerate(values)]
    )
    return bootstrap(per_question(rows, "f1"), STATS).reset_index()


def test_cells_that_disagree_on_a_few_of_49_questions_are_underpowered_not_beaten():
    # the case: identical means, disagreeing on 2 questions of 49: the interval is about +-0.08
    top = [1.0] * 20 + [0.0] * 29
    other = [0.0, 1.0] + [1.0] * 18 + [0.0] * 29
    table = _table({"top": top, "other": other})
    assert table.set_index("cell").loc["other", "verdict"] == "inconclusive"
    p = power(table, groups=49, margin=0.03)
    assert p.resolvable > 0.03 and list(p.underpowered) == ["other"]
    assert p.underpowered["other"] > 49  # about 49 * (half-width / 0.03)^2 groups
    assert "**Underpowered:** other cannot be told apart from the best with 49 groups" in p.text()


def test_a_clearly_worse_cell_is_not_underpowered_and_the_line_still_says_what_dev_resolves():
    table = _table({"top": [1.0] * 40, "bad": [0.0] * 40})
    p = power(table, groups=40, margin=0.03)
    assert p.underpowered == {} and "Underpowered" not in p.text()
    assert "resolved to about +-0.000" in p.text()


def test_groups_needed_scale_with_the_square_of_the_ratio():
    assert groups_needed(50, 0.06, 0.03) == 200
    assert groups_needed(50, 0.02, 0.03) == 50
