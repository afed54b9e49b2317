"""A cell's GenAI evaluation logged through a real ``mlflow server`` (REST, spans over its OTLP endpoint).

The pipeline logs to a server whenever ``MLFLOW_TRACKING_URI`` is set (infra/ runs one on Postgres
and an S3 store); the traces, their spans and assessments must arrive the same way as in a local store.
"""

from __future__ import annotations

import mlflow
import pytest
from mlflow.entities import SpanType

from components import tracking
from components.evaluation.grid import Cell
from tests.e2e.servers import mlflow_server
from tests.unit.test_genai import HITS, cell_rows, log


@pytest.fixture
def server(tmp_path, monkeypatch):
    with mlflow_server(tmp_path, env=None) as url:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
        tracking.setup(tmp_path, "served")
        yield url
    mlflow.set_tracking_uri(None)


def test_traces_spans_and_assessments_reach_the_server(server):
    rows = cell_rows(HITS)
    run_id = log(Cell("base", "vector-k2", 0), rows)
    client = mlflow.MlflowClient(tracking_uri=server)
    run = client.get_run(run_id)
    assert run.data.metrics["f1/mean"] == pytest.approx(rows["f1"].mean())
    (used,) = run.inputs.dataset_inputs
    assert used.dataset.name == "qa-test"
    traces = client.search_traces(locations=[run.info.experiment_id], run_id=run_id)
    assert sorted(t.info.tags["ragtune.qa_id"] for t in traces) == ["q1", "q2", "q3"]
    trace = client.get_trace(traces[0].info.trace_id)
    assert {s.span_type for s in trace.data.spans} == {SpanType.CHAIN, SpanType.RETRIEVER, SpanType.LLM}
    assert {"exact_match", "f1", "hit_rate_at_k", "expected"} <= {a.name for a in trace.info.assessments}
    (dataset,) = client.search_datasets(experiment_ids=[run.info.experiment_id])  # the managed dataset, served
    assert dataset.name == "qa-test" and len(dataset.records) == 3
