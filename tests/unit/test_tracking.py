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
    child = tracking.log_cell(parent, "base+none", {"model": "base", "adapter": {"r": 8}}, {"f1": 1.0}, predictions, tags)
    runs = tracking.cell_runs(parent)
    assert runs["run_id"].tolist() == [child]
    row = runs.iloc[0]
    assert row["params.adapter.r"] == "8" and row["metrics.f1"] == 1.0
    assert row["tags.ragtune.data_version"] == "abc123.dir"
    assert row["tags.ragtune.version.mlflow"] == mlflow.__version__
    assert (store / "mlruns.db").is_file()
    artifacts = [a.path for a in mlflow.MlflowClient().list_artifacts(child)]
    assert "predictions.json" in artifacts
    tracking.log_to_run(parent, metrics={"best_f1": 1.0}, tags={"ragtune.best_cell": "base+none"})
    assert mlflow.get_run(parent).data.tags["ragtune.best_cell"] == "base+none"
