"""select and compare through the CLI on a constructed grid, with a real sqlite MLflow store."""

import mlflow
import pandas as pd
import pytest
from typer.testing import CliRunner

from components import tracking
from components.catalog import artifacts
from components.catalog.artifacts import (
    AdapterTraining,
    CellRecord,
    CellsFile,
    CurvesFile,
    FinetuneFile,
    IndexFile,
    RetrievalFile,
)
from flows.cli import app
from tests.conftest import params_project

PNG = b"\x89PNG\r\n\x1a\n"
SCORES = {  # per-question f1 of 12 dev questions: base+vec clearly best; on test it stays ahead
    ("base+none", "dev"): [0.0] * 12,
    ("base+vec", "dev"): [1.0] * 10 + [0.0] * 2,
    ("lora+none", "dev"): [1.0, 1.0, 0.0, 0.0] * 3,
    ("lora+vec", "dev"): [1.0] * 6 + [0.0] * 6,
    ("base+vec", "test"): [1.0] * 9 + [0.0] * 3,
}


def _training(**values) -> AdapterTraining:
    fields = dict(step=10, planned_steps=10, loss=1.0, tokens_per_s=100.0, train_time_s=60.0, trainable_params=1000)
    fields.update(peak_memory_mb=900.0, restarts=0, resumed_at=[], examples=40, run_name="lora-x", mlflow_run_id="r")
    fields.update(compute_s=70.0, wall_time_s=90.0, evals=[], best=None, stopped_early=False, examples_per_step=8)
    return AdapterTraining(**{**fields, **values})


@pytest.fixture
def project(tmp_path, monkeypatch):
    params_project(tmp_path, monkeypatch)
    tracking.setup(tmp_path, "ragtune")
    parent = tracking.start_parent("pipeline-test", {"evaluation": {"main_metric": "f1"}}, {})
    cells, rows = [], []
    for (name, split), scores in SCORES.items():
        model, retriever = name.split("+")
        qa_ids = [f"{split}{i:02d}" for i in range(12)]
        frame = pd.DataFrame({"qa_id": qa_ids, "question": [f"question {i}" for i in range(12)], "f1": scores})
        metrics = {
            "f1": float(frame["f1"].mean()),
            "exact_match": float(frame["f1"].mean()),
            "latency_p50_s": 1.0 if retriever == "none" else 2.0,
            "latency_p95_s": 3.0,
            "prompt_tokens_mean": 50.0,
            "completion_tokens_mean": 5.0,
            "questions": 12,
        }
        run_params = {"model": model, "retriever": retriever}
        run_id = tracking.log_cell(parent, name, run_params, metrics, frame, {"ragtune.split": split})
        record = dict(cell=name, model=model, retriever=retriever, shots=0, split=split, run_id=run_id, metrics=metrics)
        cells.append(CellRecord(**record))
        rows.append(frame.assign(cell=name, split=split, hit_cap=False))
    (tmp_path / "data" / "eval").mkdir(parents=True)
    # out-of-domain probes: the base model answers 8 of 10, lora keeps 6 of those
    probes = [("base", [1.0] * 8 + [0.0] * 2), ("lora", [1.0] * 6 + [0.0] * 4)]
    rows += [
        pd.DataFrame(
            {"qa_id": [f"probe-{i}" for i in range(10)], "answer_contained": v, "model": m, "cell": f"{m}+none"}
        ).assign(split="probe", hit_cap=False, question="probe?")
        for m, v in probes
    ]
    pd.concat(rows).to_parquet(tmp_path / "data" / "eval" / "predictions.parquet")
    grid = CellsFile(
        parent_run_id=parent,
        experiment_id="0",
        questions={"dev": 12, "test": 12},
        max_new_tokens=8,
        few_shot_examples=[],
        standing=["base+vec"],
        tested=["base+vec"],
        cells=cells,
    )
    artifacts.write(grid, tmp_path / "data" / "eval" / "cells.json")
    # lora's curve on 12 tune questions: the base model (step 0) 0.0, then 0.25, 0.5: climbing at 0.2 epochs
    steps = {0: [0.0] * 12, 5: [1.0] * 3 + [0.0] * 9, 10: [1.0] * 6 + [0.0] * 6}
    curve = [
        {"step": k, "epochs": k * 8 / 400, "tokens": 20 * k, "f1": sum(v) / 12, "questions": 12}
        for k, v in steps.items()
    ]
    artifacts.write(CurvesFile({"lora": curve}), tmp_path / "data" / "eval" / "curves.json")
    tune = [f"tune{i:02d}" for i in range(12)]
    scores = [(k, q, v) for k, vs in steps.items() for q, v in zip(tune, vs, strict=True)]
    pd.DataFrame([{"adapter": "lora", "step": k, "qa_id": q, "f1": v} for k, q, v in scores]).to_parquet(
        tmp_path / "data" / "eval" / "curve_scores.parquet"
    )
    qa = pd.DataFrame({"qa_id": [f"{s}{i:02d}" for s in ("tune", "dev", "test") for i in range(12)]})
    qa["split"] = qa["qa_id"].str.rstrip("0123456789")
    (tmp_path / "data" / "processed").mkdir(parents=True)
    qa.assign(leakage_group=qa["qa_id"]).to_parquet(tmp_path / "data" / "processed" / "qa.parquet")
    metrics = tmp_path / "data" / "metrics"
    lora = _training(compute_s=3600, workers=2, examples=400)  # 10 steps of 8: 0.2 epochs
    artifacts.write(FinetuneFile({"lora": lora}), metrics / "finetune.json")
    artifacts.write(IndexFile({}), metrics / "index.json")  # index build time: none recorded, counted as 0
    artifacts.write(RetrievalFile(parent_run_id=parent, retrievers={}), metrics / "retrieval.json")
    yield tmp_path, parent
    mlflow.set_tracking_uri(None)


def test_select_writes_the_report_and_compare_reads_it_back(project):
    root, parent = project
    result = CliRunner().invoke(app, ["select"])
    assert result.exit_code == 0, result.output
    reports = root / "reports"
    board = (reports / "leaderboard.md").read_text()
    assert "Recommended: **base+vec**" in board and "Too few test groups to judge the choice" in board  # 12 < 30
    dev = board.split("## Dev: every cell")[1].split("## Recommendation")[0]
    assert dev.count("| base+") == 2 and dev.count("| lora+") == 2
    assert "still improving at the end of its budget" in board  # the lora curve climbs 0.25 -> 0.5 to its last step
    assert "| lora | 400 | 0.20 | 0: 0.000, 5: 0.250, 10: 0.500 |" in board  # epochs at the kept (last) snapshot
    assert "| lora | 0.500 at 0.20 |" in board  # the forecast table starts at the last measured point
    assert "lora+none" in board.split("Not ruled out (under-trained):")[1].split(":")[0]  # never "worse"
    assert "| lora | 0.750 | 75% |" in board  # retention: 6 of the 8 probes the base model answers (answer_contained)
    assert "| the recommended cell | dev: 12 (12 groups) |" in board
    assert "| rag_only | 4 |" in board and "| finetune_only | 0 |" in board
    page = (reports / "report.html").read_text()
    assert "<table" in page and "base+vec" in page and "Recommendation" in page
    for name in ("quality_vs_cost.png", "quality_vs_latency.png", "complementarity.png"):
        assert (reports / name).read_bytes().startswith(PNG)
    assert len(pd.read_csv(reports / "complementarity.csv")) == 12
    info = tracking.run_info(parent)
    assert info["tags"]["ragtune.recommended_cell"] == "base+vec"
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(parent)}
    assert {"leaderboard.md", "report.html", "quality_vs_cost.png"} <= artifacts

    shown = CliRunner().invoke(app, ["compare"])
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    assert parent in lines[0]
    first = next(line for line in lines if line.startswith("| 1 |"))
    assert "| base+vec | 0.833 |" in first and "-" in first.split("|")[4]  # the interval column
    assert "Recommended: **base+vec**" in shown.output
    same = CliRunner().invoke(app, ["compare", "--run", parent, "--experiment", "ragtune"])
    assert same.output == shown.output


def test_compare_names_a_missing_experiment(project):
    result = CliRunner().invoke(app, ["compare", "--experiment", "nope"])
    assert result.exit_code == 1 and "no MLflow experiment named 'nope'" in result.output
