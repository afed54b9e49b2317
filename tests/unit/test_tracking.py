import json
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from components import tracking
from components.decision.leaderboard import Leaderboard, leaderboard
from tests.unit.test_leaderboard import decision


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


def test_the_leaderboard_lands_on_the_pipeline_run_the_cell_runs_and_the_experiment(store):
    parent = tracking.start_parent("p", {}, {})
    cells = {c: tracking.log_cell(parent, c, {}, {"f1": 0.5}, pd.DataFrame({"f1": [0.5]}), {}) for c in ("a", "b")}
    board = leaderboard(decision()).iloc[[0, 2]]  # two dev rows: raft (recommended), base+fulltext-k3
    board = board.assign(run_id=[cells["b"], cells["a"]], latency_p50_s=[0.735, float("nan")])
    experiment_id = mlflow.get_experiment_by_name("unit").experiment_id
    text = "## Recommendation (dev)\n\nRecommended: raft (best f1).\n\n## Confirmation (test)\n\nConfirmed."
    tracking.mark_leaderboard(
        Leaderboard("f1", board, text, "Recommended: raft, f1 0.330 on dev."), parent, experiment_id
    )

    b, a = mlflow.get_run(cells["b"]), mlflow.get_run(cells["a"])
    assert (b.info.run_name, a.info.run_name) == ("1 raft-r8+fulltext-k3", "2 base+fulltext-k3")
    assert (b.data.metrics["rank"], a.data.metrics["rank"]) == (1.0, 2.0)  # a metric: the runs table sorts by it
    assert (b.data.tags["ragtune.verdict"], b.data.tags["ragtune.family"]) == ("best", "finetune+rag")
    assert (a.data.tags["ragtune.recommended"], b.data.tags["ragtune.recommended"]) == ("false", "true")
    assert b.data.tags["ragtune.confirmation"] == "recommended; test: confirmed, estimate reproduced"
    assert b.data.tags["mlflow.note.content"] == (
        "rank 1/2 · f1 0.330 (CI 0.240-0.426) · $0.053 / 1k queries · p50 0.735 s · recommended"
    )
    assert a.data.tags["mlflow.note.content"] == "rank 2/2 · f1 0.300 (CI 0.210-0.390) · $0.012 / 1k queries"

    client = mlflow.MlflowClient()
    assert {f.path for f in client.list_artifacts(parent)} >= {"leaderboard.json", "recommendation.md"}
    table = mlflow.load_table("leaderboard.json", run_ids=[parent])
    assert list(table["cell"]) == ["raft-r8-qv+fulltext-k3", "base+fulltext-k3"] and "run_name" not in table
    assert mlflow.get_run(parent).data.tags["mlflow.note.content"] == text
    tags = mlflow.get_experiment(experiment_id).tags
    assert tags["mlflow.experiment.primaryMetric.name"] == "f1"
    assert tags["mlflow.note.content"] == "Recommended: raft, f1 0.330 on dev."
    view = json.loads(tags["mlflow.sharedViewState.ragtune-leaderboard"])
    assert view["searchFilter"] == f"tags.`mlflow.parentRunId` = '{parent}'" and view["orderByKey"] == "metrics.`rank`"
    shown = mlflow.search_runs([experiment_id], view["searchFilter"], order_by=["metrics.`rank` ASC"])
    assert list(shown["tags.ragtune.cell"]) == ["b", "a"]  # the view's filter and order, as MLflow runs them

    urls = tracking.urls("http://127.0.0.1:5000/", "unit")
    page = f"http://127.0.0.1:5000/#/experiments/{experiment_id}"
    assert urls["leaderboard"] == f"{page}/runs?viewStateShareKey=ragtune-leaderboard"
    assert urls["compare the cells"] == f"{page}/evaluation-runs" and urls["datasets"] == f"{page}/datasets"
    assert tracking.urls("http://127.0.0.1:5000", "no-such-experiment") == {}

    long = "Recommended: raft. " + "Because. " * 1000  # 9 kB: over the 5,000 characters every store keeps in a tag
    tracking.mark_leaderboard(Leaderboard("f1", board, long, "Recommended: raft."), parent, experiment_id)
    assert mlflow.get_run(parent).data.tags["mlflow.note.content"] == (
        "Recommended: raft.\n\n(The whole text: recommendation.md.)"
    )
    path = client.download_artifacts(parent, "recommendation.md", str(store))
    assert Path(path).read_text() == long
    table = mlflow.load_table("leaderboard.json", run_ids=[parent])
    assert len(table) == 2  # replaced on a second select, not appended to


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


class _Echo(mlflow.pyfunc.PythonModel):
    """A pyfunc saved the old way, as a cloudpickle of the object."""

    def predict(self, context, model_input, params=None):
        return model_input


def test_the_gate_never_unpickles_a_model(store):
    """Loading runs what a pickle holds: tracking.load_pyfunc refuses a pickled version, MLflow's default would not."""
    with mlflow.start_run():
        info = mlflow.pyfunc.log_model(name="m", python_model=_Echo(), pip_requirements=["mlflow"])
    with pytest.raises(mlflow.exceptions.MlflowException, match="pickle"):
        tracking.load_pyfunc(info.model_uri)
    assert mlflow.pyfunc.load_model(info.model_uri) is not None  # what the refusal is for
