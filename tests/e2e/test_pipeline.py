"""The whole pipeline through its real entry point (`ragtune run`) on a tiny slice of the demo.

Real Prefect (ephemeral API), DVC, Ray Train (2 workers, 2 steps), LanceDB, MLflow (sqlite) and the
packaged SmolLM2 and MiniLM; the test reads the results back through MLflow's API.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import yaml

from components.catalog.artifacts import CellsFile, read
from components.decision.families import FAMILIES, family
from components.decision.select import cells_scored_on_test
from tests.tiny_project import build_tiny_project, edit_yaml, project_env, ragtune_cmd, sh

IN_GRID = ("hybrid-rrf-k3",)  # the tiny project's evaluation.grid.retrievers (pinned)


EXTRA_STAGE = {  # a stage a team adds to dvc.yaml: `ragtune run` must run it with no other change
    "cmd": "python -c \"import json; print(json.load(open('data/metrics/best.json'))['best']['cell'])\" > extra.txt",
    "deps": ["data/metrics/best.json"],
    "outs": [{"extra.txt": {"cache": False}}],
}


@pytest.fixture(scope="module")
def project(tmp_path_factory, base_model_dir) -> Path:
    """A throw-away ragtune project: the repo's code and params, a tiny raw folder, git and DVC, one extra stage."""
    root = build_tiny_project(
        tmp_path_factory.mktemp("project"), base_model_dir, grid_retrievers=IN_GRID, few_shot_models=("base",)
    )
    edit_yaml(root / "dvc.yaml", lambda d: d["stages"].update(extra=EXTRA_STAGE))
    return root


def _ragtune(project: Path, *args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(ragtune_cmd(*args), cwd=project, env=project_env(project), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-8000:]
    return proc


def _runs(project: Path):
    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlruns.db'}")
    try:
        return mlflow.search_runs(search_all_experiments=True)
    finally:
        mlflow.set_tracking_uri(None)


def test_run_builds_the_grid_logs_it_and_skips_when_nothing_changed(project):
    first = _ragtune(project, "run")
    assert (
        "stages run: model, questions, ingest, index, retrieval_eval, finetune, evaluate, select, register, extra"
        in first.stdout
    )
    # the added stage ran after the one it depends on, and wrote what it was asked to
    best = json.loads((project / "data/metrics/best.json").read_text())
    assert (project / "extra.txt").read_text().strip() == best["best"]["cell"]

    runs = _runs(project)
    parents = runs[runs["tags.ragtune.kind"] == "pipeline"]
    cells = runs[runs["tags.ragtune.kind"] == "cell"]
    assert len(parents) == 1
    parent_id = parents.iloc[0]["run_id"]
    assert set(cells["tags.mlflow.parentRunId"]) == {parent_id}
    retrievers = ["vector-minilm-k3", "fulltext-k3", "hybrid-rrf-k3"]
    dev = cells[cells["tags.ragtune.split"] == "dev"]
    grid = [f"{m}+{r}" for m in ("base", "lora-r8-qv", "raft-r8-qv") for r in ["none", *IN_GRID]]
    assert sorted(dev["tags.ragtune.cell"]) == sorted(grid + [f"base+{r}+3shot" for r in ["none", *IN_GRID]])
    # dev chose, test confirmed: the cells dev left standing and the best of every family answered test, once
    test = cells[cells["tags.ragtune.split"] == "test"]
    assert 1 <= len(test) <= len(dev) and set(test["tags.ragtune.cell"]) <= set(dev["tags.ragtune.cell"])
    tested = dev[dev["tags.ragtune.cell"].isin(test["tags.ragtune.cell"])]
    kinds = {
        family(m, r, int(k))
        for m, r, k in zip(tested["params.model"], tested["params.retriever"], tested["params.shots"], strict=True)
    }
    assert kinds == set(FAMILIES)  # the best dev cell of every family answered test
    assert best["split"] == "dev" and best["recommended"]["cell"] in set(test["tags.ragtune.cell"])
    assert best["confirmation"]["choice"] == "too few test groups"  # 4 test questions: below min_groups
    assert best["confirmation"]["estimate"] in {"reproduced", "overestimated on dev", "underestimated on dev"}
    qa = pd.read_parquet(project / "data/processed/qa.parquet")
    sizes = qa["split"].value_counts().to_dict()
    for _, cell in cells.iterrows():
        assert cell["params.base_model"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
        assert cell["params.prompt_template"]
        assert 0.0 <= cell["metrics.exact_match"] <= cell["metrics.f1"] <= 1.0
        assert 0.0 <= cell["metrics.answer_contained"] <= 1.0 and cell["metrics.answer_tokens"] >= 0
        split = cell["tags.ragtune.split"]
        assert cell["metrics.questions"] == min(4, sizes[split]) and cell["params.split"] == split
        rag = cell["params.retriever"] != "none"
        assert cell["params.top_k"] == ("3" if rag else "0")
        assert (cell["metrics.recall_at_k"] >= 0.0) if rag else pd_isna(cell.get("metrics.recall_at_k"))
        if cell["params.model"] != "base":
            assert cell["params.adapter.r"] == "8" and cell["metrics.train_steps"] == 2
    training = runs[runs["tags.ragtune.kind"] == "training"]  # one run per adapter, per-step loss logged
    assert sorted(training["tags.mlflow.runName"]) == ["lora-r8-qv", "raft-r8-qv"]
    assert (training["metrics.step"] == 2).all() and (training["metrics.peak_memory_mb"] > 0).all()
    assert training["metrics.tune_loss"].notna().all()  # measured on held-out tune questions
    curves = json.loads((project / "data/eval/curves.json").read_text())  # step 0 and each snapshot, on tune
    assert sorted(curves) == ["lora-r8-qv", "raft-r8-qv"] and all(
        [p["step"] for p in c] == [0, 1, 2] and p["questions"] == min(4, sizes["tune"])
        for c in curves.values()
        for p in c
    )
    probes = pd.read_parquet(project / "data/eval/predictions.parquet").query("split == 'probe'")
    base = probes[probes["model"] == "base"]
    known = set(base.loc[base["answer_contained"] >= 0.5, "qa_id"])  # the adapters answer what the base model knew
    assert len(base) == 4 and all(
        set(probes.loc[probes["model"] == a, "qa_id"]) == known for a in ("lora-r8-qv", "raft-r8-qv")
    )
    # retrieval on this tiny corpus finds the gold country document
    rag_cells = cells[cells["params.retriever"] != "none"]
    assert (rag_cells["metrics.recall_at_k"] >= 0.75).all()
    assert (rag_cells["metrics.mrr_at_k"] > 0).all() and (rag_cells["metrics.ndcg_at_k"] > 0).all()
    assert rag_cells["params.index_table_version"].notna().all()

    # retrieval-eval: its own parent run, one child per retriever with tune, dev and test metrics
    retrieval = runs[runs["tags.ragtune.kind"] == "retrieval"]
    retrieval_children = retrieval[retrieval["tags.mlflow.parentRunId"].notna()]
    assert sorted(retrieval_children["params.retrieval.name"]) == sorted(retrievers)
    assert (retrieval_children["metrics.test_recall_at_k"] >= 0.75).all()

    lock = yaml.safe_load((project / "dvc.lock").read_text())
    raw_md5 = next(d["md5"] for d in lock["stages"]["ingest"]["deps"] if d["path"] == "data/raw")
    assert set(runs["tags.ragtune.data_version"].dropna()) == {raw_md5}
    commit = sh("git", "rev-parse", "HEAD", cwd=project).stdout.strip()
    assert set(runs["tags.ragtune.git_commit"].dropna()) <= {commit, f"{commit}-dirty"}

    board = (project / "reports" / "leaderboard.md").read_text()
    dev_table = board.split("## Dev: every cell")[1].split("## Recommendation")[0]
    assert (
        dev_table.count("| lora-r8-qv+") == 2
        and dev_table.count("| raft-r8-qv+") == 2
        and dev_table.count("| base+") == 4
    )
    tested = cells_scored_on_test(read(CellsFile, project / "data" / "eval" / "cells.json"))
    assert f"## Test: {tested} (the split that confirms)" in board
    assert "## Fine-tuning budgets, learning curves and forecasts (tune)" in board
    assert "## Which questions made which choice" in board and "**Power:**" in board
    assert "## What fine-tuning costs elsewhere (out-of-domain probes)" in board
    # every retriever, in the grid or not, is on the report's retrieval tables
    assert all(f"| {name} |" in board for name in retrievers)
    recommended = parents.iloc[0]["tags.ragtune.recommended_cell"]
    assert f"Recommended: **{recommended}**" in board and board in first.stdout

    # 4 questions only judge (gate.judge_only): the gate ran, the registry holds nothing
    gate = json.loads((project / "data/metrics/gate.json").read_text())
    assert gate["passed"] and gate["reason"] == "first" and gate["new"] == best["recommended"]["cell"]
    assert json.loads((project / "data/metrics/registry.json").read_text())["registered"] is False
    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlruns.db'}")
    try:
        assert mlflow.MlflowClient().search_registered_models() == []
    finally:
        mlflow.set_tracking_uri(None)

    second = _ragtune(project, "run")  # register always runs: who is champion is not DVC's to know
    skipped = "skipped: model, questions, ingest, index, retrieval_eval, finetune, evaluate, select, extra"
    assert f"stages run: register; {skipped}" in second.stdout
    assert len(_runs(project)) == len(runs)

    # changing only an evaluation param re-runs evaluation and selection, not training
    edit_yaml(project / "params" / "evaluation.yaml", lambda d: d.update(max_questions=3))
    third = _ragtune(project, "run")
    # evaluation and selection run again; register always does
    skipped = "skipped: model, questions, ingest, index, retrieval_eval, finetune"
    rerun = f"stages run: evaluate, select, register, extra; {skipped}"
    assert rerun in third.stdout
    assert (_runs(project)["tags.ragtune.kind"] == "pipeline").sum() == 2


def pd_isna(value) -> bool:
    import pandas as pd

    return value is None or pd.isna(value)
