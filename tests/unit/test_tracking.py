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


def test_the_pipeline_experiment_is_a_genai_one_and_bookkeeping_has_its_own(store):
    client = mlflow.MlflowClient()
    assert client.get_experiment_by_name("unit").tags["mlflow.experimentKind"] == "genai_development"
    ops = tracking.setup_ops(store, "unit")
    assert client.get_experiment(ops).name == "unit-ops" == tracking.ops_experiment("unit")
    assert client.get_experiment(ops).tags["mlflow.experimentKind"] == "custom_model_development"
    run_id = tracking.log_training("lora", {}, [], {}, {})
    assert mlflow.get_run(run_id).info.experiment_id == ops  # training runs land in the bookkeeping experiment
    client.set_experiment_tag(ops, "mlflow.experimentKind", "no_inferred_type")
    assert tracking.setup_ops(store, "unit") == ops  # same experiment, kind restored
    assert client.get_experiment(ops).tags["mlflow.experimentKind"] == "custom_model_development"


def test_the_leaderboard_lands_on_the_cell_runs(store):
    parent = tracking.start_parent("p", {}, {})
    ids = {c: tracking.log_cell(parent, c, {}, {"f1": 0.5}, pd.DataFrame({"f1": [0.5]}), {}) for c in ("a", "b")}
    table = pd.DataFrame(
        {
            "cell": ["b", "a"],
            "run_id": [ids["b"], ids["a"]],
            "mean": [0.33, 0.094],
            "ci_low": [0.24, 0.064],
            "ci_high": [0.426, 0.127],
            "cost_per_1k_amortised": [0.01, 0.012],
            "latency_p50_s": [0.735, float("nan")],
        }
    )
    experiment_id = mlflow.get_experiment_by_name("unit").experiment_id
    tracking.mark_leaderboard(table, "f1", "a", experiment_id, "Recommended: a (ties with b, cheaper).")
    b, a = mlflow.get_run(ids["b"]).data.tags, mlflow.get_run(ids["a"]).data.tags
    assert (b["ragtune.rank"], b["ragtune.recommended"], a["ragtune.rank"], a["ragtune.recommended"]) == (
        "1",
        "false",
        "2",
        "true",
    )
    assert b["mlflow.note.content"] == "rank 1/2 · f1 0.330 (CI 0.240-0.426) · $0.010 / 1k queries · p50 0.735 s"
    assert a["mlflow.note.content"] == "rank 2/2 · f1 0.094 (CI 0.064-0.127) · $0.012 / 1k queries · recommended"
    tags = mlflow.get_experiment(experiment_id).tags
    assert tags["mlflow.experiment.primaryMetric.name"] == "f1"
    assert tags["mlflow.note.content"].startswith("Recommended: a")
    urls = tracking.urls("http://127.0.0.1:5000/", "unit")
    assert urls["compare the cells"] == f"http://127.0.0.1:5000/#/experiments/{experiment_id}/evaluation-runs"
    assert tracking.urls("http://127.0.0.1:5000", "no-such-experiment") == {}


def test_a_cell_run_is_tagged_while_the_bookkeeping_experiment_is_active(store):
    """``register`` tags the chosen cell run (pipeline experiment) while it logs in ``<experiment>-ops``."""
    parent = tracking.start_parent("p", {}, {})
    cell = tracking.log_cell(parent, "base+none", {}, {"f1": 0.5}, pd.DataFrame({"f1": [0.5]}), {})
    tracking.setup_ops(store, "unit")
    tags = {"ragtune.registered_as": "ragtune-qa/1"}
    tracking.log_to_run(cell, metrics={"m": 1.0}, tags=tags, params={"a": {"b": 1}})
    run = mlflow.get_run(cell)
    assert run.data.tags["ragtune.registered_as"] == "ragtune-qa/1"
    assert run.data.metrics["m"] == 1.0 and run.data.params["a.b"] == "1"
