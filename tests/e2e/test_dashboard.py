"""The MLflow dashboard after a real `ragtune run`, in a real headless Chromium: cells, metrics, a trace.

A tiny project (one adapter of two steps, one grid retriever, four test questions: four cells) runs
the whole pipeline; then ``ragtune ui`` serves its store. The data checks go through the UI
server's REST API; the rendering checks load the pages in Debian's ``chromium-headless-shell`` (or
``chromium``), wait for what each view must show and take a screenshot of each.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from tests.e2e import dashboard
from tests.e2e.browser import find_browser
from tests.tiny_project import build_tiny_project, project_env, ragtune_cmd

pytestmark = pytest.mark.skipif(
    find_browser() is None and not os.environ.get("RAGTUNE_REQUIRE_BROWSER"),  # .ci/run requires it
    reason="no Chromium: apt-get install chromium-headless-shell",
)

RETRIEVER = "vector-minilm-k3"
CELLS = ["base+none", f"base+{RETRIEVER}", "lora-r8-qv+none", f"lora-r8-qv+{RETRIEVER}"]


@pytest.fixture(scope="module")
def project(tmp_path_factory, base_model_dir) -> Path:
    root = build_tiny_project(tmp_path_factory.mktemp("dashboard"), base_model_dir, (RETRIEVER,), adapters=1)
    proc = subprocess.run(ragtune_cmd("run"), cwd=root, env=project_env(root), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-8000:]
    return root


def test_the_dashboard_shows_the_cells_their_metrics_and_a_trace(project, tmp_path):
    best = json.loads((project / "data/metrics/best.json").read_text())
    rows = pd.read_parquet(project / "data/eval/predictions.parquet")
    with dashboard.ragtune_ui(project, tmp_path / "ui.log") as (base, printed):
        client = MlflowClient(tracking_uri=base)  # the UI server's REST API
        main, ops = client.get_experiment_by_name("ragtune"), client.get_experiment_by_name("ragtune-ops")
        assert f"compare the cells: {base}/#/experiments/{main.experiment_id}/evaluation-runs" in printed
        assert main.tags["mlflow.experimentKind"] == "genai_development"
        assert main.tags["mlflow.experiment.primaryMetric.name"] == "f1"
        # the comparison list holds the pipeline run and its cells (every cell on dev, those dev left
        # standing on test); bookkeeping runs are in -ops
        standing = json.loads((project / "data/eval/cells.json").read_text())["standing"]
        kinds = sorted(r.data.tags["ragtune.kind"] for r in client.search_runs([main.experiment_id]))
        assert kinds == ["cell"] * (len(CELLS) + len(standing)) + ["pipeline"]
        bookkeeping = {r.data.tags["ragtune.kind"] for r in client.search_runs([ops.experiment_id])}
        assert {"training", "retrieval", "register", "base-model"} <= bookkeeping
        runs = client.search_runs([main.experiment_id], "tags.`ragtune.kind` = 'cell'")
        cells = {(r.data.tags["ragtune.split"], r.info.run_name): r for r in runs}
        assert sorted(n for s, n in cells if s == "dev") == sorted(CELLS)
        assert sorted(n for s, n in cells if s == "test") == sorted(standing)
        for (split, name), run in cells.items():
            assert run.data.tags["mlflow.runType"] == "genai_evaluate"
            (dataset,) = run.inputs.dataset_inputs
            assert dataset.dataset.name == f"qa-{split}" and dataset.dataset.digest
            cell_rows = rows[(rows["cell"] == name) & (rows["split"] == split)]
            assert run.data.metrics["f1/mean"] == pytest.approx(cell_rows["f1"].mean())  # scorers == leaderboard
            assert run.data.metrics["f1_ci_low"] <= run.data.metrics["f1"] <= run.data.metrics["f1_ci_high"]
            if split == "dev":  # the ranking is dev's: the split that chose
                rank = run.data.tags["ragtune.rank"]
                assert run.data.tags["mlflow.note.content"].startswith(f"rank {rank}/{len(CELLS)} · f1 ")
            traces = client.search_traces(locations=[main.experiment_id], run_id=run.info.run_id)
            assert sorted(t.info.tags["ragtune.qa_id"] for t in traces) == sorted(cell_rows["qa_id"])
            assert {t.info.tags["ragtune.split"] for t in traces} == {split}
        recommended = [n for (s, n), r in cells.items() if r.data.tags.get("ragtune.recommended") == "true"]
        assert recommended == [best["recommended"]["cell"]]

        tour = dashboard.plan(base, "ragtune")
        shown = dashboard.take(base, tour, "f1", tmp_path)
    assert all(name in shown["runs"] for name in CELLS) and "qa-dev" in shown["runs"]
    for run_id in tour.compare:
        assert next(n for n, i in tour.cells.items() if i == run_id) in shown["compare"]
    assert tour.question in shown["compare"] and "Assessments" in shown["compare"]
    assert f"retrieve:{RETRIEVER}" in shown["trace"] and "generate:" in shown["trace"]
    assert all(name in shown["trace"] for name in ("exact_match", "f1", "hit_rate_at_k", "expected"))
    assert "/overview" in shown["overview_url"]  # where MLflow 3.17 lands: the GenAI overview, with our traces
    for view in dashboard.SIZES:
        assert (tmp_path / f"dashboard-{view}.png").stat().st_size > 20_000  # a rendered page, not a blank one
