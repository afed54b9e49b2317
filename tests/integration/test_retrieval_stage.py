"""`ragtune index` and `ragtune retrieval-eval` through the real CLI on a tiny slice of the demo."""

import json
import shutil

import mlflow
import pytest
from typer.testing import CliRunner

from flows.cli import app
from tests.conftest import REPO, demo_slice


@pytest.fixture
def project(tmp_path, monkeypatch):
    shutil.copytree(REPO / "params", tmp_path / "params")
    shutil.copy2(REPO / "dvc.yaml", tmp_path / "dvc.yaml")
    demo_slice(tmp_path / "data" / "raw", n_docs=12, n_questions=40)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    yield tmp_path
    mlflow.set_tracking_uri(None)


def _ragtune(*args: str, exit_code: int = 0) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == exit_code, result.output + repr(result.exception)
    return result.output


def test_index_then_retrieval_eval_logs_one_run_per_retriever(project):
    _ragtune("ingest")
    _ragtune("index")
    index = json.loads((project / "data" / "metrics" / "index.json").read_text())
    (table,) = index.values()
    assert table["fts_index"] and table["ann_index"] is None  # a tiny table: exact search

    _ragtune("retrieval-eval")
    report = json.loads((project / "data" / "metrics" / "retrieval.json").read_text())
    retrievers = report["retrievers"]
    assert set(retrievers) == {"vector-minilm-k3", "fulltext-k3", "hybrid-rrf-k3"}
    for result in retrievers.values():
        assert result["index_table_version"] == table["version"]
        for split in ("dev", "test"):
            assert 0.0 <= result["splits"][split]["ndcg_at_k"] <= result["splits"][split]["hit_rate_at_k"] <= 1.0
            assert (
                result["splits"][split]["retrieval_latency_p95_s"]
                >= result["splits"][split]["retrieval_latency_p50_s"]
                > 0
            )
        assert result["splits"]["test"]["recall_at_k"] >= 0.5  # 12 documents, 3 chunks per question

    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlruns.db'}")
    runs = mlflow.search_runs(search_all_experiments=True, filter_string="tags.`ragtune.kind` = 'retrieval'")
    children = runs[runs["tags.mlflow.parentRunId"] == report["parent_run_id"]]
    assert sorted(children["params.retrieval.mode"]) == ["fulltext", "hybrid", "vector"]
    assert set(children["params.index_table_version"]) == {str(table["version"])}
    assert set(children["params.retrieval.reranker"]) == {"none"}
    assert (children["metrics.test_mrr_at_k"] >= 0).all()

    # the corpus grows; retrieval-eval pinned to the logged table version reproduces the first run
    docs = project / "data" / "raw" / "docs" / "countries.jsonl"
    new_doc = {"id": "country/ZQ", "text": "# Zanquaria\n\nZanquaria has the made-up code ZQW."}
    docs.write_text(docs.read_text() + json.dumps(new_doc) + "\n")
    _ragtune("ingest")
    _ragtune("index")
    grown = next(iter(json.loads((project / "data" / "metrics" / "index.json").read_text()).values()))
    assert grown["added"] == 1 and grown["version"] > table["version"]
    _ragtune("retrieval-eval", "--table-version", f"{grown['table']}={table['version']}")
    again = json.loads((project / "data" / "metrics" / "retrieval.json").read_text())["retrievers"]
    for name, result in retrievers.items():
        assert again[name]["index_table_version"] == table["version"]
        for split in ("dev", "test"):
            for metric in ("recall_at_k", "mrr_at_k", "ndcg_at_k", "questions"):
                assert again[name]["splits"][split][metric] == result["splits"][split][metric]
    assert "has no version 999" in _ragtune("retrieval-eval", "--table-version", f"{grown['table']}=999", exit_code=2)
    assert "expected TABLE=VERSION" in _ragtune("retrieval-eval", "--table-version", grown["table"], exit_code=2)
