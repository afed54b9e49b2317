"""The dashboard's leaderboard, built from a decision: one row per cell run, ranks, notes, run names."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pandas as pd

from components.catalog.artifacts import Reference
from components.decision.leaderboard import COLUMNS, headline, leaderboard, recommendation_text, run_name
from tests.conftest import best_file, choice

DEV = pd.DataFrame(
    {
        "rank": [1, 2, 3],
        "cell": ["raft-r8-qv+fulltext-k3", "base+fulltext-k3", "base+none"],
        "model": ["raft-r8-qv", "base", "base"],
        "retriever": ["fulltext-k3", "fulltext-k3", "none"],
        "shots": [0, 0, 0],
        "run_id": ["r1", "r2", "r3"],
        "mean": [0.33, 0.30, 0.05],
        "ci_low": [0.24, 0.21, 0.01],
        "ci_high": [0.426, 0.39, 0.09],
        "se": [0.05, 0.05, 0.02],
        "verdict": ["best", "inconclusive", "worse"],
        "cost_per_1k_amortised": [0.053, 0.012, 0.011],
        "latency_p50_s": [3.257, 1.2, 0.9],
    }
)
TEST = pd.DataFrame(  # test ranks by its own means: base+fulltext-k3 first
    {
        "rank": [1, 2],
        "cell": ["base+fulltext-k3", "raft-r8-qv+fulltext-k3"],
        "model": ["base", "raft-r8-qv"],
        "retriever": ["fulltext-k3", "fulltext-k3"],
        "shots": [0, 0],
        "run_id": ["t2", "t1"],
        "mean": [0.31, 0.29],
        "ci_low": [0.2, 0.19],
        "ci_high": [0.4, 0.38],
        "se": [0.05, 0.05],
        "verdict": ["best", "equivalent"],
    }
)


def decision(test: pd.DataFrame | None = TEST, dev: pd.DataFrame = DEV) -> SimpleNamespace:
    reference = Reference(cell="base+fulltext-k3", family="rag", mean=0.31, diff=0.02, diff_low=-0.05, diff_high=0.09,
                          beats=False)  # fmt: skip
    text = "**Test confirms the choice.** On the 89 test questions (60 groups) no reference cell beats it."
    changes = dict(mean=0.29, ci_low=0.19, ci_high=0.38, questions=89, groups=60, references=[reference], text=text)
    confirmation = best_file().confirmation.model_copy(update=changes)
    chosen = choice("raft-r8-qv+fulltext-k3", mean=0.33, ci_low=0.24, ci_high=0.426)
    return SimpleNamespace(
        table=dev,
        test=test,
        recommendation={"text": "Recommended: **raft-r8-qv+fulltext-k3**, f1 0.330. It has the best f1."},
        best=best_file(recommended=chosen, confirmation=confirmation),
    )


def test_one_row_per_cell_run_ranked_by_dev_with_the_tests_word():
    board = leaderboard(decision())
    assert list(board.columns) == COLUMNS
    assert list(zip(board["rank"], board["cell"], board["split"], strict=True)) == [
        (1, "raft-r8-qv+fulltext-k3", "dev"),
        (1, "raft-r8-qv+fulltext-k3", "test"),  # a test row carries its cell's dev rank: the split that chose
        (2, "base+fulltext-k3", "dev"),
        (2, "base+fulltext-k3", "test"),
        (3, "base+none", "dev"),
    ]
    assert list(board["family"]) == ["finetune+rag", "finetune+rag", "rag", "rag", "base"]
    assert list(board["run_id"]) == ["r1", "t1", "r2", "t2", "r3"]
    assert list(board["interval"]) == ["0.240-0.426", "0.190-0.380", "0.210-0.390", "0.200-0.400", "0.010-0.090"]
    assert list(board["verdict"]) == ["best", "equivalent", "inconclusive", "best", "worse"]
    assert list(board["confirmation"]) == [
        "recommended; test: confirmed, estimate reproduced",
        "recommended; test: confirmed, estimate reproduced",
        "",
        "does not beat it",  # a reference, on test
        "",
    ]
    assert list(board["recommended"]) == [True, True, False, False, False]
    assert board["cost_per_1k_amortised"].iloc[0] == 0.053 and math.isnan(board["cost_per_1k_amortised"].iloc[1])
    assert list(board["run_name"]) == ["1 raft-r8+fulltext-k3", "1 raft-r8+fulltext-k3", "2 base+fulltext-k3",
                                       "2 base+fulltext-k3", "3 base"]  # fmt: skip


def test_without_a_test_split_and_with_a_family_column_the_table_gives():
    dev = DEV.assign(family=["mine", "mine", "other"])  # a column the decision table may carry: read, not derived
    board = leaderboard(decision(test=None, dev=dev))
    assert list(board["split"]) == ["dev"] * 3 and list(board["family"]) == ["mine", "mine", "other"]


def test_the_recommendation_text_holds_the_choice_the_confirmation_and_the_calibration():
    text = recommendation_text(decision())
    assert text.index("Recommended: **raft") < text.index("Test confirms the choice") < text.index("Calibration")
    assert "over the 2 cells scored on both" in text
    line = headline(decision(), "f1")
    assert line.startswith("Recommended: raft-r8-qv+fulltext-k3, f1 0.330 on dev (CI 0.240-0.426); test: confirmed")
    assert "\n" not in line


def test_run_names_lead_with_the_rank_and_fit_the_column():
    assert run_name(1, "base+none") == "1 base"
    assert run_name(2, "base+vector-minilm-k3") == "2 base+vector-k3"
    assert run_name(3, "lora-r8-qv+none") == "3 lora-r8-qv"
    assert run_name(4, "lora-r8-qv+vector-minilm-k3") == "4 lora-r8+vector-k3"
    assert run_name(5, "base+fulltext-k3+3shot") == "5 base+fulltext-k3+3s"
    assert run_name(6, "base+none+3shot") == "6 base+3shot"
    assert run_name(10, "lora-r8-qv+fulltext-k3") == "10 lora-r8+fulltext-…"
    assert run_name(2, "base+fulltext-k3", chars=80) == "2 base+fulltext-k3"
    names = [run_name(r, "a-very-long-adapter-name+b-very-long-retriever-k9") for r in range(1, 12)]
    assert all(len(n) <= 21 for n in names) and len(set(names)) == len(names)
