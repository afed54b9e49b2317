import numpy as np
import pandas as pd
import pytest

from components.decision.statistics import (
    bootstrap,
    choose,
    count_groups,
    per_question,
    resample_weights,
    survivors,
    verdict,
)
from tests.conftest import PARAMS, like

CFG = like(PARAMS.evaluation.statistics, resamples=1000, seed=1, margin=0.05)


def _rows(scores: dict[str, list[float]]) -> pd.DataFrame:
    return pd.DataFrame(
        [{"qa_id": f"q{i:03d}", "cell": cell, "f1": v} for cell, values in scores.items() for i, v in enumerate(values)]
    )


@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [
        (-0.04, 0.04, "equivalent"),
        (-0.3, -0.1, "worse"),
        (-0.04, -0.01, "equivalent"),
        (-0.3, 0.02, "inconclusive"),
        (0.01, 0.2, "better"),
        (-0.2, 0.2, "inconclusive"),
    ],
)
def test_each_interval_gets_its_verdict_against_the_margin(low, high, expected):
    assert verdict(low, high, margin=0.05) == expected


def test_a_clear_winner_makes_the_other_cell_worse():
    rng = np.random.default_rng(0)
    good = rng.uniform(0.6, 1.0, 40).tolist()
    bad = [v - 0.5 for v in good]
    stats = bootstrap(per_question(_rows({"bad": bad, "good": good}), "f1"), CFG)
    assert stats.index.tolist() == ["good", "bad"]
    assert stats.loc["bad", "diff"] == pytest.approx(-0.5)
    assert stats.loc["bad", "diff_low"] == pytest.approx(-0.5) and stats.loc["bad", "diff_high"] == pytest.approx(-0.5)
    assert stats["verdict"].tolist() == ["best", "worse"] and stats["tie"].tolist() == [True, False]
    assert stats.loc["good", "ci_low"] <= stats.loc["good", "mean"] <= stats.loc["good", "ci_high"]
    assert survivors(stats) == ["good"]
    chosen, tied = choose(stats, pd.Series({"good": 9.0, "bad": 1.0}))
    assert chosen == "good" and tied == ["good"]


def test_identical_cells_are_equivalent_and_the_cheaper_wins():
    same = [0.0, 1.0, 0.5, 1.0, 0.0, 0.25] * 5
    stats = bootstrap(per_question(_rows({"dear": same, "cheap": same}), "f1"), CFG)
    assert set(stats["verdict"]) == {"best", "equivalent"}
    chosen, tied = choose(stats, pd.Series({"dear": 5.0, "cheap": 1.0}))
    assert chosen == "cheap" and set(tied) == {"dear", "cheap"}


def test_a_noisy_difference_on_few_questions_is_inconclusive_not_a_tie():
    # the first cell wins on 3 questions and loses on 2 of 30: the data cannot tell them apart
    base = [0.5] * 30
    better = base.copy()
    better[0] = better[1] = better[2] = 1.0
    better[3] = better[4] = 0.0
    stats = bootstrap(per_question(_rows({"better": better, "cheaper": base}), "f1"), CFG)
    assert stats.index[0] == "better" and stats.loc["cheaper", "verdict"] == "inconclusive"
    assert survivors(stats) == ["better", "cheaper"]  # not clearly worse: it goes on to test
    chosen, _ = choose(stats, pd.Series({"better": 2.0, "cheaper": 1.0}))
    assert chosen == "better"  # an inconclusive cell is never chosen for being cheap


def test_resampling_groups_keeps_paraphrases_together():
    weights = resample_weights(np.array(["a", "a", "b", "c", "c", "c"]), resamples=200, seed=0)
    assert weights.shape == (200, 6) and (weights.sum(axis=1) > 0).all()
    assert (weights[:, 0] == weights[:, 1]).all() and (weights[:, 3] == weights[:, 5]).all()


def test_the_group_bootstrap_widens_intervals_when_questions_come_in_paraphrase_groups():
    rng = np.random.default_rng(3)
    facts = rng.uniform(0, 1, 20).round()  # 20 facts, each asked in 3 wordings that score alike
    scores = np.repeat(facts, 3)
    rows = _rows({"a": scores.tolist(), "b": np.repeat(rng.uniform(0, 1, 20).round(), 3).tolist()})
    matrix = per_question(rows, "f1")
    groups = pd.Series([f"fact{i // 3}" for i in range(60)], index=[f"q{i:03d}" for i in range(60)])
    naive, grouped = bootstrap(matrix, CFG), bootstrap(matrix, CFG, groups)
    width = lambda t, c: t.loc[c, "ci_high"] - t.loc[c, "ci_low"]  # noqa: E731
    assert width(grouped, "a") > 1.4 * width(naive, "a")  # ~sqrt(3) wider: 20 facts, not 60 questions
    assert count_groups(matrix, groups) == 20 and count_groups(matrix, None) == 60


def test_comparisons_are_adjusted_for_their_number():
    rng = np.random.default_rng(5)
    best = rng.uniform(0, 1, 50)
    cells = {"best": best.tolist(), **{f"c{i}": (best - rng.uniform(0, 0.2, 50)).tolist() for i in range(5)}}
    matrix = per_question(_rows(cells), "f1")
    five = bootstrap(matrix, CFG).loc["c0"]
    one = bootstrap(matrix[["best", "c0"]], CFG).loc["c0"]
    assert five["diff_high"] - five["diff_low"] > one["diff_high"] - one["diff_low"]  # Bonferroni: wider


def test_seeded_and_cells_must_share_questions():
    rows = _rows({"a": [0.1, 0.9, 0.4, 0.3], "b": [0.2, 0.8, 0.4, 0.1]})
    assert bootstrap(per_question(rows, "f1"), CFG).equals(bootstrap(per_question(rows, "f1"), CFG))
    with pytest.raises(ValueError, match="share the questions"):
        per_question(rows.iloc[:-1], "f1")
