"""The champion in the MLflow registry: register, load through pyfunc, answer; serve over HTTP; adapters.

Real components on tiny data: three demo documents indexed in LanceDB with the packaged embedder,
the packaged SmolLM2 base model, a sqlite MLflow store in the test's folder.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

from components import tracking
from components.config import GenerationConfig
from components.serving import dir_hash, make_bundle
from tests.conftest import demo_slice

pytestmark = pytest.mark.integration

NAME = "ragtune-qa-test"
QUESTION = "What is the ISO 3166-1 alpha-3 code of Afghanistan?"
GOLD_DOC = "country/AF"


@pytest.fixture(scope="module")
def champion(tmp_path_factory, params, embedder, base_model_dir) -> dict:
    """A tiny index of three demo documents, and the base + vector retriever cell registered as champion."""
    import lancedb

    from components.chunking import chunk_documents
    from components.index import sync_table, table_name
    from components.ingest import ingest

    root = tmp_path_factory.mktemp("champion")
    raw = demo_slice(root / "raw", n_docs=3, n_questions=10)
    documents = ingest(raw, params.data.split, params.data.max_file_mb).documents
    assert GOLD_DOC in set(documents["doc_id"])
    retriever = params.retrieval.retrievers[0]
    assert retriever.mode == "vector"
    chunks = chunk_documents(documents, params.data.chunkers[retriever.chunker])
    db = lancedb.connect(str(root / "index"))
    report = sync_table(db, table_name(retriever.chunker, retriever.embedder), chunks, embedder, fts=False)
    # short answers keep the test quick on 2 shared cores
    evaluation = params.evaluation.model_copy(update={"generation": GenerationConfig(max_new_tokens=8, batch_size=4)})
    base_hash = dir_hash(base_model_dir)
    bundle = make_bundle(
        "base", retriever, params.retrieval.embedders, str(root / "index"), report.version, evaluation, base_hash
    )
    tracking.setup(root, "serving-test")
    first = tracking.register_bundle(NAME, bundle, base_model_dir, None, alias="champion")
    again = tracking.register_bundle(NAME, bundle, base_model_dir, None, alias="champion")
    return {
        "root": root,
        "index_version": report.version,
        "first": first,
        "again": again,
        "evaluation": evaluation,
        "base_hash": base_hash,
        "uri": tracking.default_tracking_uri(root),
    }


def test_registering_the_same_winner_twice_reuses_its_version(champion):
    first, again = champion["first"], champion["again"]
    assert first["created"] and not again["created"]
    assert (first["version"], first["bundle_hash"]) == (again["version"], again["bundle_hash"])
    assert str(tracking.find_version(NAME, first["bundle_hash"]).version) == first["version"]


def test_champion_loads_through_pyfunc_and_answers_with_the_gold_document(champion):
    import mlflow.pyfunc

    model = mlflow.pyfunc.load_model(f"models:/{NAME}@champion")
    out = model.predict(pd.DataFrame({"question": [QUESTION]}))
    assert list(out.columns) == ["answer", "retrieved_doc_ids"]
    assert isinstance(out["answer"][0], str) and out["answer"][0]
    assert out["retrieved_doc_ids"][0][0] == GOLD_DOC
    as_list = model.predict([QUESTION])  # a plain list of questions works too, and answers the same
    assert as_list["answer"].tolist() == out["answer"].tolist()
    with pytest.raises(ValueError, match="question"):
        model.predict(pd.DataFrame({"query": [QUESTION]}))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(url: str, body: dict, timeout: float) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def test_mlflow_models_serve_answers_over_http(champion, tmp_path):
    port = _free_port()
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": champion["uri"],
        "MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT": "600",
        # the server runs `uvicorn` from PATH: the one beside this interpreter
        "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""),
    }
    cmd = [
        sys.executable,
        "-m",
        "mlflow",
        "models",
        "serve",
        "-m",
        f"models:/{NAME}@champion",
        "--env-manager",
        "local",
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
        "-w",
        "1",
    ]
    log = (tmp_path / "serve.log").open("w")
    # run from an empty folder: the model must load from the registry alone (its code is bundled)
    server = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while True:
            assert server.poll() is None, f"server exited: {(tmp_path / 'serve.log').read_text()[-3000:]}"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=5) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            assert time.monotonic() < deadline, f"no /ping in 300 s: {(tmp_path / 'serve.log').read_text()[-3000:]}"
            time.sleep(1)
        answer = _post(f"http://127.0.0.1:{port}/invocations", {"dataframe_records": [{"question": QUESTION}]}, 600)
        row = answer["predictions"][0]
        assert isinstance(row["answer"], str) and row["answer"]
        assert row["retrieved_doc_ids"][0] == GOLD_DOC
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=30)
        log.close()


def test_adapter_registers_as_a_version_and_answers_closed_book(champion, params, base_model_dir, tmp_path):
    import mlflow.pyfunc
    from peft import LoraConfig, get_peft_model

    from components.models import load_model

    cfg = params.finetune.adapters[0]
    adapter_dir = tmp_path / cfg.name
    lora = LoraConfig(r=cfg.r, lora_alpha=cfg.alpha, target_modules=cfg.target_modules, task_type="CAUSAL_LM")
    get_peft_model(load_model(base_model_dir), lora).save_pretrained(adapter_dir)
    bundle = make_bundle(
        cfg.name, None, params.retrieval.embedders, None, None, champion["evaluation"], champion["base_hash"]
    )
    name = f"{params.evaluation.registry.adapter_prefix}{cfg.name}"
    result = tracking.register_adapter(name, bundle, base_model_dir, adapter_dir)
    assert result["created"] and result["version"] == "1"
    # the base model is stored once, shared with the champion, not copied into each version
    assert (
        tracking.ensure_base_model(base_model_dir, champion["base_hash"])
        == tracking.find_version(NAME, champion["first"]["bundle_hash"]).tags["ragtune.base_model_uri"]
    )
    out = mlflow.pyfunc.load_model(result["model_uri"]).predict([QUESTION])
    assert list(out.columns) == ["answer"] and out["answer"][0]


def test_register_command_registers_the_best_cell_once(champion, base_model_dir, tmp_path, monkeypatch):
    import shutil

    from typer.testing import CliRunner

    from flows.cli import app
    from tests.conftest import REPO

    shutil.copytree(REPO / "params", tmp_path / "params")
    (tmp_path / "data" / "models").mkdir(parents=True)
    (tmp_path / "data" / "models" / "base").symlink_to(base_model_dir, target_is_directory=True)
    (tmp_path / "data" / "index").symlink_to(champion["root"] / "index", target_is_directory=True)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    # the winning cell's run, as `ragtune evaluate` logs it: the table version it was scored on
    tracking.setup(tmp_path, "ragtune")
    parent = tracking.start_parent("pipeline", {}, {})
    table_version = str(champion["index_version"])
    run_id = tracking.log_cell(
        parent,
        "base+vector-minilm-k3",
        {"index_table_version": table_version},
        {"f1": 0.5},
        pd.DataFrame({"qa_id": ["q"]}),
        {},
    )
    (tmp_path / "data" / "metrics").mkdir(parents=True)
    cell = "base+vector-minilm-k3"
    best = {"cell": cell, "model": "base", "retriever": "vector-minilm-k3", "f1": 0.5, "run_id": run_id}
    (tmp_path / "data" / "metrics" / "best.json").write_text(json.dumps(best))

    outputs = []
    for _ in range(2):
        result = CliRunner().invoke(app, ["register"])
        assert result.exit_code == 0, f"{result.output[-3000:]}\n{result.exception!r}"
        outputs.append(json.loads((tmp_path / "data" / "metrics" / "registry.json").read_text()))
    first, again = outputs
    assert first["created"] and not again["created"] and first["version"] == again["version"] == "1"
    assert first["name"] == "ragtune-qa" and first["alias"] == "champion"
    assert "same bundle, version reused" in result.output
    assert tracking.run_params(first["run_id"])["index_version"] == table_version
    import mlflow

    assert str(mlflow.MlflowClient().get_model_version_by_alias("ragtune-qa", "champion").version) == "1"
