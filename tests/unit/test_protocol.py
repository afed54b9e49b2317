"""Dev chooses, test confirms: the recommendation reads dev only; test can confirm it or not, never change it."""

from __future__ import annotations

import pandas as pd

from components.catalog.artifacts import CellRecord, CellsFile
from components.decision.confirm import calibration, calibration_line
from components.decision.select import SelectInputs, decide
from components.evaluation.grid import Cell
from components.evaluation.protocol import cells_for_test
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
        tested=sorted({c for c, s in scores if s == "test"}),
        cells=records,
    )
    return cells, pd.DataFrame(rows)


def _inputs(scores) -> SelectInputs:
    cells, rows = _project(scores)
    ids = rows["qa_id"].unique()
    qa = pd.DataFrame({"qa_id": ids, "leakage_group": ids, "split": [i.rstrip("0123456789") for i in ids]})
    return SelectInputs(cells, rows, TRAIN, {"vec": 10.0}, None, {}, pd.DataFrame(), qa)


def _decide(scores, cfg=CFG):
    return decide(_inputs(scores), cfg)


DEV = {("base+vec", "dev"): [1.0] * 16 + [0.0] * 4, ("lora+none", "dev"): [1.0] * 6 + [0.0] * 14}


def test_changing_test_answers_cannot_change_the_recommendation():
    agrees = _decide({**DEV, ("base+vec", "test"): [1.0] * 15 + [0.0] * 5, ("lora+none", "test"): [0.0] * 20})
    flipped = _decide({**DEV, ("base+vec", "test"): [0.0] * 20, ("lora+none", "test"): [1.0] * 20})
    assert agrees.best.recommended.cell == flipped.best.recommended.cell == "base+vec"
    assert agrees.best.recommended.mean == flipped.best.recommended.mean == 0.8  # its dev score, not test's
    assert agrees.best.confirmation.choice == "confirmed" and agrees.best.confirmation.estimate == "reproduced"
    assert flipped.best.confirmation.choice == "not confirmed" and flipped.best.confirmation.beaten_by == "lora+none"
    assert "Test does not confirm the choice" in flipped.markdown
    assert flipped.markdown.splitlines()[2].startswith("**Dev chose, test did not confirm the choice (lora+none")
    assert (
        "Dev: every cell (the split that chose)" in flipped.markdown and "(the split that confirms)" in flipped.markdown
    )


def test_all_zero_test_answers_are_overestimated_on_dev_even_when_no_reference_beats_them():
    decision = _decide({**DEV, ("base+vec", "test"): [0.0] * 20, ("lora+none", "test"): [0.0] * 20})
    c = decision.best.confirmation
    assert c.estimate == "overestimated on dev" and c.mean == 0.0
    assert c.choice == "confirmed"  # nothing beat it: the choice stands, its dev figure does not
    assert "Expect 0.000" in decision.markdown and "the estimate was overestimated on dev" in decision.markdown


def test_a_reference_beats_the_recommendation_only_clearly_and_beyond_the_margin():
    rec = [1.0] * 100 + [0.0] * 100
    near = [1.0] * 108 + [0.0] * 92  # +0.04: clearly ahead (its interval above zero), not beyond the margin 0.05
    far = [1.0] * 115 + [0.0] * 85  # +0.075: clearly ahead and beyond it
    noisy = [0.0] * 60 + [1.0] * 115 + [0.0] * 25  # +0.075 but right on other questions: not clearly ahead
    for ahead, clearly, beats in ((near, True, False), (far, True, True), (noisy, False, False)):
        decision = _decide({**DEV, ("base+vec", "test"): rec, ("lora+none", "test"): ahead})
        ref = decision.best.confirmation.references[0]
        assert ref.cell == "lora+none" and (ref.diff_low > 0) is clearly and ref.beats is beats
        assert decision.best.confirmation.choice == ("not confirmed" if beats else "confirmed")


def test_too_few_test_groups_cannot_confirm_a_choice():
    cfg = like(CFG, statistics=like(CFG.statistics, min_groups=21))  # 20 test questions, one group each
    decision = _decide({**DEV, ("base+vec", "test"): [1.0] * 20, ("lora+none", "test"): [0.0] * 20}, cfg)
    assert decision.best.confirmation.choice == "too few test groups"
    assert decision.best.confirmation.groups == 20


def test_without_test_scores_nothing_is_confirmed():
    decision = _decide(DEV)
    assert decision.test is None and decision.best.confirmation.choice == "not scored"


def test_families_send_the_best_dev_cell_of_every_family_to_test():
    cells = [
        Cell("base", "none", 0),
        Cell("base", "vec", 0),
        Cell("base", "none", 3),
        Cell("lora", "none", 0),
        Cell("lora", "vec", 0),
        Cell("raft", "vec", 0),
    ]
    means = {"base+none": 0.1, "base+vec": 0.3, "base+none+3shot": 0.2, "lora+none": 0.05, "lora+vec": 0.5}
    dev = pd.DataFrame({"mean": {**means, "raft+vec": 0.6}})
    dev["verdict"] = ["worse"] * 5 + ["best"]
    assert cells_for_test(cells, dev, "standing") == ["raft+vec"]
    assert cells_for_test(cells, dev, "families") == [
        "base+none",
        "base+vec",
        "base+none+3shot",
        "lora+none",
        "raft+vec",  # the best of finetune+rag; lora+vec, second in that family, stays out
    ]
    assert cells_for_test(cells, dev, "all") == [c.name for c in cells]


def test_calibration_counts_the_cells_whose_dev_and_test_means_agree():
    dev = pd.DataFrame({"cell": ["a", "b", "c"], "mean": [0.5, 0.3, 0.1], "se": [0.05, 0.05, 0.05]})
    test = pd.DataFrame({"cell": ["a", "b", "c"], "mean": [0.1, 0.3, 0.12], "se": [0.05, 0.05, 0.05]})
    cal = calibration(dev, test)
    assert cal["cells"] == 3 and cal["agree"] == 2  # a: |0.4| / 0.0707 = 5.7 > 1.96
    assert cal["z"]["a"] > 5 and cal["spearman"] == -0.5
    assert "2 of them (67%) agree within sampling error" in calibration_line(cal)
    assert calibration(dev, None) is None


def test_the_report_says_which_cells_answered_test_as_evaluate_recorded_them():
    """With ``test_cells: all`` the report once said "the cells dev left standing and the best dev cell of each
    other family" answered test; it now reads which cells did from cells.json."""
    from components.decision.select import cells_scored_on_test

    scores = {(c, "dev"): [0.5] * 20 for c in ("base+vec", "base+none", "lora+none")}
    cells, _ = _project(scores)
    every = cells.model_copy(update={"standing": ["base+vec"], "tested": ["base+vec", "base+none", "lora+none"]})
    standing = cells.model_copy(update={"standing": ["base+vec"], "tested": ["base+vec"]})
    families = cells.model_copy(update={"standing": ["base+vec"], "tested": ["base+vec", "lora+none"]})
    assert cells_scored_on_test(every) == "every cell"
    assert cells_scored_on_test(standing) == "the cells dev left standing"
    assert cells_scored_on_test(families) == "the cells dev left standing and the best dev cell of each other family"
