"""The MLflow dashboard after a real `ragtune run`, in a real headless Chromium: the leaderboard first.

A tiny project (one adapter of two steps, one grid retriever, four dev and four test questions: four
cells) runs the whole pipeline; then ``ragtune ui`` serves its store. The data checks go through the
UI server's REST API; the rendering checks load the pages in Debian's ``chromium-headless-shell`` (or
``chromium``) and read the page as drawn: every run name whole in its cell (element widths, not the
text, which holds what an ellipsis hides), as many rows in the pipeline run's leaderboard table as
there are cell runs, both splits on the Datasets page.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from tests.e2e import dashboard
from tests.tiny_project import build_tiny_project, project_env, ragtune_cmd

RETRIEVER = "vector-minilm-k3"
CELLS = ["base+none", f"base+{RETRIEVER}", "lora-r8-qv+none", f"lora-r8-qv+{RETRIEVER}"]
pytestmark = pytest.mark.browser  # skipped without Chromium, failed where .ci/run requires it (tests/conftest.py)


@pytest.fixture(scope="module")
def project(tmp_path_factory, base_model_dir) -> Path:
    root = build_tiny_project(tmp_path_factory.mktemp("dashboard"), base_model_dir, (RETRIEVER,), adapters=1)
    proc = subprocess.run(ragtune_cmd("run"), cwd=root, env=project_env(root), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-8000:]
    return root


def test_the_dashboard_leads_with_the_decision(project, tmp_path):
    best = json.loads((project / "data/metrics/best.json").read_text())
    rows = pd.read_parquet(project / "data/eval/predictions.parquet")
    with dashboard.ragtune_ui(project, tmp_path / "ui.log") as (base, printed):
        client = MlflowClient(tracking_uri=base)  # the UI server's REST API
        main, ops = client.get_experiment_by_name("ragtune"), client.get_experiment_by_name("ragtune-ops")
        page = f"{base}/#/experiments/{main.experiment_id}"
        assert f"leaderboard: {page}/runs?viewStateShareKey=ragtune-leaderboard" in printed
        assert f"compare the cells: {page}/evaluation-runs" in printed
        assert main.tags["mlflow.experimentKind"] == "genai_development"
        assert main.tags["mlflow.experiment.primaryMetric.name"] == "f1"
        assert main.tags["mlflow.note.content"].startswith(f"Recommended: {best['recommended']['cell']}, f1 ")
        # the comparison list holds the pipeline run and its cells (every cell on dev, those test scored
        # on test); bookkeeping runs are in -ops
        tested = json.loads((project / "data/eval/cells.json").read_text())["tested"]
        kinds = sorted(r.data.tags["ragtune.kind"] for r in client.search_runs([main.experiment_id]))
        assert kinds == ["cell"] * (len(CELLS) + len(tested)) + ["pipeline"]
        bookkeeping = {r.data.tags["ragtune.kind"] for r in client.search_runs([ops.experiment_id])}
        assert {"training", "retrieval"} <= bookkeeping  # a tiny project only judges: no registration runs
        runs = client.search_runs([main.experiment_id], "tags.`ragtune.kind` = 'cell'")
        cells = {(r.data.tags["ragtune.split"], r.data.tags["ragtune.cell"]): r for r in runs}
        assert sorted(c for s, c in cells if s == "dev") == sorted(CELLS)
        assert sorted(c for s, c in cells if s == "test") == sorted(tested)
        ranks = {c: int(r.data.metrics["rank"]) for (s, c), r in cells.items() if s == "dev"}
        assert sorted(ranks.values()) == list(range(1, len(CELLS) + 1))
        for (split, name), run in cells.items():
            assert run.info.run_name.startswith(f"{ranks[name]} ") and run.data.metrics["rank"] == ranks[name]
            assert run.data.tags["ragtune.verdict"] and run.data.tags["ragtune.family"]
            (dataset,) = run.inputs.dataset_inputs
            assert dataset.dataset.name == f"qa-{split}" and dataset.dataset.digest
            cell_rows = rows[(rows["cell"] == name) & (rows["split"] == split)]
            assert run.data.metrics["f1/mean"] == pytest.approx(cell_rows["f1"].mean())  # scorers == leaderboard
            assert run.data.metrics["f1_ci_low"] <= run.data.metrics["f1"] <= run.data.metrics["f1_ci_high"]
            assert run.data.tags["mlflow.note.content"].startswith(f"rank {ranks[name]}/{len(CELLS)} · f1 ")
            traces = client.search_traces(locations=[main.experiment_id], run_id=run.info.run_id)
            assert sorted(t.info.tags["ragtune.qa_id"] for t in traces) == sorted(cell_rows["qa_id"])
            assert {t.info.tags["ragtune.split"] for t in traces} == {split}
        recommended = [c for (s, c), r in cells.items() if r.data.tags.get("ragtune.recommended") == "true"]
        assert recommended == [best["recommended"]["cell"]]
        word = best["confirmation"]
        confirmation = cells[("test", recommended[0])].data.tags["ragtune.confirmation"]
        assert confirmation == f"recommended; test: {word['choice']}, estimate {word['estimate']}"

        tour = dashboard.plan(base, "ragtune")
        shown = dashboard.take(base, tour, "f1", tmp_path)
    # the runs table, as drawn: every cell run's name whole in its cell
    assert sorted(n["name"] for n in shown["names"]) == sorted(tour.names[r.info.run_id] for r in runs)
    assert [n for n in shown["names"] if n["cut"]] == []
    assert shown["table_rows"] == len(runs)  # the pipeline run's leaderboard table: a row per cell run
    assert all(name in shown["leaderboard"] for name in CELLS)
    chosen, other = (cells_by_id := {r.info.run_id: r for r in runs})[tour.compare[0]], cells_by_id[tour.compare[1]]
    assert chosen.data.tags["ragtune.cell"] == best["recommended"]["cell"]
    assert other.data.tags["ragtune.family"] != chosen.data.tags["ragtune.family"]  # the best of another family
    assert tour.question in shown["compare"] and "Assessments" in shown["compare"]
    assert f"retrieve:{RETRIEVER}" in shown["trace"] and "generate:" in shown["trace"]
    assert all(name in shown["trace"] for name in ("exact_match", "f1", "hit_rate_at_k", "expected"))
    assert "qa-dev" in shown["datasets"] and "qa-test" in shown["datasets"]
    assert tour.question[:30] in shown["datasets"]  # the dev dataset's page, with its questions
    for view in dashboard.PICTURES:
        assert (tmp_path / f"dashboard-{view}.png").stat().st_size > 20_000  # a rendered page, not a blank one
