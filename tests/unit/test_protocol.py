"""Dev chooses, test confirms: the recommendation reads dev only; test can confirm it or not, never change it."""

from __future__ import annotations

import pandas as pd

from components.catalog.artifacts import CellRecord, CellsFile
from components.decision.select import decide
from tests.conftest import PARAMS, like

CFG = like(
    PARAMS.evaluation,
    statistics=like(PARAMS.evaluation.statistics, resamples=300, margin=0.05, min_groups=10),
)
TRAIN = {
    "lora": {
        "compute_s": 100.0,
        "workers": 2,
        "step": 10,
        "examples": 80,
        "examples_per_step": 8,
        "stopped_early": False,
    }
}


def _project(scores: dict[tuple[str, str], list[float]]) -> tuple[CellsFile, pd.DataFrame]:
    records, rows = [], []
    for (cell, split), values in scores.items():
        model, retriever = cell.split("+")
        metrics = {
            "f1": sum(values) / len(values),
            "latency_mean_s": 1.0,
            "latency_p50_s": 1.0,
            "prompt_tokens_mean": 10.0,
            "completion_tokens_mean": 2.0,
        }
        records.append(
            CellRecord(
                cell=cell,
                model=model,
                retriever=retriever,
                shots=0,
                split=split,
                run_id=f"{cell}@{split}",
                metrics=metrics,
            )
        )
        rows += [
            {"qa_id": f"{split}{i:02d}", "question": f"q{i}", "cell": cell, "split": split, "f1": v, "hit_cap": False}
            for i, v in enumerate(values)
        ]
    cells = CellsFile(
        parent_run_id="p",
        experiment_id="0",
        questions={"dev": 20, "test": 20},
        max_new_tokens=8,
        few_shot_examples=[],
        standing=sorted({c for c, _ in scores}),
        cells=records,
    )
    return cells, pd.DataFrame(rows)


def _decide(scores):
    cells, rows = _project(scores)
    groups = pd.Series(rows["qa_id"].unique(), index=rows["qa_id"].unique())
    return decide(cells, rows, CFG, TRAIN, {"vec": 10.0}, None, {}, groups)


DEV = {("base+vec", "dev"): [1.0] * 16 + [0.0] * 4, ("lora+none", "dev"): [1.0] * 6 + [0.0] * 14}


def test_changing_test_answers_cannot_change_the_recommendation():
    agrees = _decide({**DEV, ("base+vec", "test"): [1.0] * 15 + [0.0] * 5, ("lora+none", "test"): [0.0] * 20})
    flipped = _decide({**DEV, ("base+vec", "test"): [0.0] * 20, ("lora+none", "test"): [1.0] * 20})
    assert agrees.best.recommended.cell == flipped.best.recommended.cell == "base+vec"
    assert agrees.best.recommended.mean == flipped.best.recommended.mean == 0.8  # its dev score, not test's
    assert agrees.best.confirmation.outcome == "confirmed" and flipped.best.confirmation.outcome == "not confirmed"
    assert "Test does not confirm the dev recommendation" in flipped.markdown
    assert (
        "Dev: every cell (the split that chose)" in flipped.markdown and "(the split that confirms)" in flipped.markdown
    )


def test_without_test_scores_nothing_is_confirmed():
    decision = _decide(DEV)
    assert decision.test is None and decision.best.confirmation.outcome == "inconclusive"
