import mlflow
import pandas as pd
import pytest

from components import tracking


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    tracking.setup(tmp_path, "unit")
    yield tmp_path
    mlflow.set_tracking_uri(None)


def test_parent_and_cells_with_params_metrics_tags_and_table(store):
    tags = tracking.provenance_tags(store, data_version="abc123.dir")
    parent = tracking.start_parent("p", {"evaluation": {"split": "test"}}, tags)
    predictions = pd.DataFrame({"qa_id": ["q1"], "answers": [["BOL", "bol"]], "prediction": ["BOL"], "f1": [1.0]})
    child = tracking.log_cell(
        parent, "base+none", {"model": "base", "adapter": {"r": 8}}, {"f1": 1.0}, predictions, tags
    )
    runs = tracking.cell_runs(parent)
    assert runs["run_id"].tolist() == [child]
    row = runs.iloc[0]
    assert row["params.adapter.r"] == "8" and row["metrics.f1"] == 1.0
    assert row["tags.ragtune.data_version"] == "abc123.dir"
    assert row["tags.ragtune.version.mlflow"] == mlflow.__version__
    assert (store / "mlruns.db").is_file()
    assert mlflow.get_experiment_by_name("unit").artifact_location == (store / "mlartifacts").resolve().as_uri()
    artifacts = [a.path for a in mlflow.MlflowClient().list_artifacts(child)]
    assert "predictions.json" in artifacts
    tracking.log_to_run(parent, metrics={"best_f1": 1.0}, tags={"ragtune.best_cell": "base+none"})
    assert mlflow.get_run(parent).data.tags["ragtune.best_cell"] == "base+none"


def test_training_run_has_params_step_history_and_summary(store):
    history = [{"step": s, "loss": 2.0 / s, "tokens_per_s": 100.0 + s} for s in range(1, 4)]
    summary = {
        "step": 3,
        "loss": 0.67,
        "tokens_per_s": 103.0,
        "wall_time_s": 12.5,
        "peak_memory_mb": 1500.0,
        "run_name": "lora-r8-qv-abc",
        "resumed_at": [2],
    }
    run_id = tracking.log_training(
        "lora-r8-qv", {"adapter": {"r": 8, "data": [{"source": "qa"}]}}, history, summary, {"ragtune.git_commit": "abc"}
    )
    run = mlflow.get_run(run_id)
    assert run.data.tags["ragtune.kind"] == "training" and run.data.tags["ragtune.git_commit"] == "abc"
    assert run.data.params["adapter.r"] == "8"
    assert run.data.metrics["final_tokens_per_s"] == 103.0 and run.data.metrics["peak_memory_mb"] == 1500.0
    assert run.data.metrics["wall_time_s"] == 12.5
    losses = mlflow.MlflowClient().get_metric_history(run_id, "loss")
    assert [(m.step, m.value) for m in sorted(losses, key=lambda m: m.step)] == [(1, 2.0), (2, 1.0), (3, 2.0 / 3)]
    assert len(mlflow.MlflowClient().get_metric_history(run_id, "tokens_per_s")) == 3
