"""The knowledge-update drill through its real entry point (`ragtune drill`) on a tiny project.

Real ingest, LanceDB, MiniLM, Ray Train (1 worker, 1 step, max_length 64), SmolLM2 and MLflow (sqlite).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import lancedb
import pytest
import yaml
from typer.testing import CliRunner

from components.catalog import artifacts
from flows.cli import app
from tests.conftest import REPO, best_file, choice, demo_slice

pytestmark = pytest.mark.integration


def _edit_yaml(path: Path, edit) -> None:
    data = yaml.safe_load(path.read_text())
    edit(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def _invoke(*args: str):
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, f"{result.output[-4000:]}\n{result.exception!r}"
    return result


def test_drill_times_and_scores_each_arm_before_and_after(tmp_path, monkeypatch, base_model_dir):
    shutil.copytree(REPO / "params", tmp_path / "params")
    shutil.copy2(REPO / "dvc.yaml", tmp_path / "dvc.yaml")
    demo_slice(tmp_path / "data" / "raw", n_docs=12, n_questions=40)
    split = {"seed": 3, "dev": 0.2, "test": 0.3, "tune": 0.15, "by_document": False}  # as tests/tiny_project.py
    _edit_yaml(tmp_path / "params" / "data.yaml", lambda d: d["split"].update(split))

    def tiny_training(d):
        d["ray"].update(num_workers=1, cpus_per_worker=1)
        d["adapters"][0].update(batch_size=2, max_length=64, max_steps=1)  # the chat prompt alone is ~40 tokens
        d["adapters"][1].update(batch_size=1, grad_accum=1, max_steps=2, eval_every=1, tune_questions=2)  # RAFT

    def tiny_eval(d):
        d["generation"].update(max_new_tokens=4, min_new_tokens=4, batch_size=4)
        d["drill"].update(share=0.1, seed=0, max_questions=2)
        d["statistics"].update(resamples=200)

    _edit_yaml(tmp_path / "params" / "finetune.yaml", tiny_training)
    _edit_yaml(tmp_path / "params" / "evaluation.yaml", tiny_eval)
    (tmp_path / "data" / "models").mkdir(parents=True)
    (tmp_path / "data" / "models" / "base").symlink_to(base_model_dir, target_is_directory=True)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)

    _invoke("ingest")
    # the recommended mix of both demos, which the drill drills: the RAFT adapter (trained on vector-minilm-k3's
    # passages) with another retriever; the drill once crashed on it (no chunks for the RAFT retriever)
    recommended = choice("raft-r8-qv+fulltext-k3")
    artifacts.write(best_file(recommended), tmp_path / "data" / "metrics" / "best.json")
    output = _invoke("drill").output
    assert "Knowledge-update drill" in output

    report = json.loads((tmp_path / "data" / "metrics" / "drill.json").read_text())
    arms = {row["arm"]: row for row in report["arms"]}
    assert set(arms) == {"rag", "finetune", "both"} and report["probes"] == 2
    assert len(report["new_documents"]) == 1
    assert (report["retriever"], report["adapter"]) == ("fulltext-k3", "raft-r8-qv")  # the recommended mix
    for row in arms.values():
        assert row["absorb_s"] > 0
        assert all(0.0 <= row[k] <= 1.0 for k in ("answered_before", "answered_after", "f1_before", "f1_after"))
        assert row["answered_after_low"] <= row["answered_after"] <= row["answered_after_high"]
    # the drill's own index took the new document in; the pipeline's index and raw data were not touched
    table = lancedb.connect(str(tmp_path / "data" / "scratch" / "drill" / "index")).open_table(
        "chunks__para_400__minilm"  # fulltext-k3's chunker and embedder (its table keeps vectors too)
    )
    assert report["new_documents"][0] in set(table.to_pandas()["doc_id"])
    assert not (tmp_path / "data" / "index").exists()
    assert (tmp_path / "data" / "scratch" / "drill" / "adapter-after" / "adapter_config.json").is_file()
    assert "| rag |" in (tmp_path / "reports" / "drill.md").read_text()

    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlruns.db'}")
    runs = mlflow.search_runs(search_all_experiments=True, filter_string="tags.`ragtune.kind` = 'drill'")
    assert len(runs) == 1 and runs["metrics.rag_absorb_s"].iloc[0] == pytest.approx(arms["rag"]["absorb_s"])
