import numpy as np
import pandas as pd
import pytest

from components.decision.statistics import bootstrap, choose, per_question
from tests.conftest import PARAMS, like

CFG = like(PARAMS.evaluation.statistics, resamples=500, seed=1)


def _rows(scores: dict[str, list[float]]) -> pd.DataFrame:
    return pd.DataFrame(
        [{"qa_id": f"q{i}", "cell": cell, "f1": v} for cell, values in scores.items() for i, v in enumerate(values)]
    )


def test_clear_winner_excludes_zero():
    rng = np.random.default_rng(0)
    good = rng.uniform(0.6, 1.0, 40).tolist()
    bad = [v - 0.5 for v in good]
    stats = bootstrap(per_question(_rows({"bad": bad, "good": good}), "f1"), CFG)
    assert stats.index.tolist() == ["good", "bad"]
    assert stats.loc["bad", "diff"] == pytest.approx(-0.5)
    assert stats.loc["bad", "diff_low"] == pytest.approx(-0.5) and stats.loc["bad", "diff_high"] == pytest.approx(-0.5)
    assert not stats.loc["bad", "tie"] and stats.loc["good", "tie"]
    assert stats.loc["good", "ci_low"] <= stats.loc["good", "mean"] <= stats.loc["good", "ci_high"]
    chosen, tied = choose(stats, pd.Series({"good": 9.0, "bad": 1.0}))
    assert chosen == "good" and tied == ["good"]


def test_exact_tie_prefers_the_cheaper_cell():
    same = [0.0, 1.0, 0.5, 1.0, 0.0, 0.25] * 5
    stats = bootstrap(per_question(_rows({"dear": same, "cheap": same}), "f1"), CFG)
    assert stats["tie"].all()
    assert stats.loc["cheap", "diff_low"] == 0.0 == stats.loc["cheap", "diff_high"]
    chosen, tied = choose(stats, pd.Series({"dear": 5.0, "cheap": 1.0}))
    assert chosen == "cheap" and set(tied) == {"dear", "cheap"}


def test_noisy_small_difference_is_a_tie_and_the_cheaper_wins():
    # the better cell wins on 3 questions, loses on 2 of 30: not significant
    base = [0.5] * 30
    better = base.copy()
    better[0] = better[1] = better[2] = 1.0
    better[3] = better[4] = 0.0
    stats = bootstrap(per_question(_rows({"better": better, "cheaper": base}), "f1"), CFG)
    assert stats.index[0] == "better" and stats.loc["cheaper", "tie"]
    chosen, _ = choose(stats, pd.Series({"better": 2.0, "cheaper": 1.0}))
    assert chosen == "cheaper"


def test_seeded_and_cells_must_share_questions():
    rows = _rows({"a": [0.1, 0.9, 0.4, 0.3], "b": [0.2, 0.8, 0.4, 0.1]})
    assert bootstrap(per_question(rows, "f1"), CFG).equals(bootstrap(per_question(rows, "f1"), CFG))
    with pytest.raises(ValueError, match="share the questions"):
        per_question(rows.iloc[:-1], "f1")
