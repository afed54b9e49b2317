"""The champion in the MLflow registry: register, load through pyfunc, answer; serve over HTTP; adapters.

Real components on tiny data: three demo documents indexed in LanceDB with the packaged embedder,
the packaged SmolLM2 base model, a sqlite MLflow store in the test's folder.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

from components import tracking
from components.io import dir_hash
from components.serving.bundle import make_bundle
from components.serving.register import register_adapter, register_bundle
from tests.conftest import demo_slice, free_port, like

pytestmark = pytest.mark.integration

NAME = "ragtune-qa-test"
QUESTION = "What is the ISO 3166-1 alpha-3 code of Afghanistan?"
GOLD_DOC = "country/AF"


@pytest.fixture(scope="module")
def champion(tmp_path_factory, params, embedder, base_model_dir) -> dict:
    """A tiny index of three demo documents, and the base + vector retriever cell registered as champion."""
    import lancedb

    from components.catalog import table_name
    from components.data.chunking import chunk_documents
    from components.data.ingest import ingest
    from components.retrieval.index import sync_table

    root = tmp_path_factory.mktemp("champion")
    raw = demo_slice(root / "raw", n_docs=3, n_questions=10)
    documents = ingest(raw, params.data.split, params.data.max_file_mb).documents
    assert GOLD_DOC in set(documents["doc_id"])
    retriever = params.retrieval.retrievers[0]
    assert retriever.mode == "vector"
    chunks = chunk_documents(documents, params.data.chunkers[retriever.chunker])
    db = lancedb.connect(str(root / "index"))
    name = table_name(retriever.chunker, retriever.embedder)
    report = sync_table(db, name, chunks, embedder, params.retrieval.index, fts=False)
    # short answers keep the test quick on 2 shared cores
    generation = like(params.evaluation.generation, max_new_tokens=8, min_new_tokens=4, batch_size=4)
    base_hash = dir_hash(base_model_dir)
    bundle = make_bundle(
        "base",
        retriever,
        params.retrieval.embedders,
        str(root / "index"),
        report.version,
        params.evaluation.prompts,
        generation,
        base_hash,
    )
    tracking.setup(root, "serving-test")
    first = register_bundle(NAME, bundle, base_model_dir, None, alias="champion")
    again = register_bundle(NAME, bundle, base_model_dir, None, alias="champion", expected=first["version"])
    return {
        "root": root,
        "index_version": report.version,
        "first": first,
        "again": again,
        "generation": generation,
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

    index, away = champion["root"] / "index", champion["root"] / "index-away"
    index.rename(away)  # the version carries its own copy of the table: the folder it was built in is not needed
    try:
        model = mlflow.pyfunc.load_model(f"models:/{NAME}@champion")
    finally:
        away.rename(index)
    out = model.predict(pd.DataFrame({"question": [QUESTION]}))
    assert list(out.columns) == ["answer", "retrieved_doc_ids"]
    assert isinstance(out["answer"][0], str) and out["answer"][0]
    assert out["retrieved_doc_ids"][0][0] == GOLD_DOC
    as_list = model.predict([QUESTION])  # a plain list of questions works too, and answers the same
    assert as_list["answer"].tolist() == out["answer"].tolist()
    with pytest.raises(ValueError, match="question"):
        model.predict(pd.DataFrame({"query": [QUESTION]}))


def test_loading_the_champion_leaves_no_copy_of_the_base_model_behind(champion, tmp_path, monkeypatch):
    """Each load (a gate run, a server start) fetches the base model (~0.5 GB): it must not stay in $TMPDIR."""
    import tempfile

    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))  # where MLflow and ragtune make their temporary folders
    model = tracking.load_pyfunc(f"models:/{NAME}@champion")
    assert model.predict([QUESTION])["answer"][0]  # loaded whole: the weights are in memory, not on disk
    left = [p for p in temp.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in left) < 1_000_000, [str(p.relative_to(temp)) for p in left]


def _post(url: str, body: dict, timeout: float) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def test_mlflow_models_serve_answers_over_http(champion, tmp_path):
    port = free_port()
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


def _untrained_adapter(cfg, base_model_dir: Path, folder: Path) -> Path:
    """A LoRA adapter of ``cfg``'s shape, freshly initialised (what a 0-step training would save)."""
    from peft import LoraConfig, get_peft_model

    from components.llm.models import load_model

    lora = LoraConfig(r=cfg.r, lora_alpha=cfg.alpha, target_modules=cfg.target_modules, task_type="CAUSAL_LM")
    get_peft_model(load_model(base_model_dir), lora).save_pretrained(folder / cfg.name)
    return folder / cfg.name


def test_adapter_registers_as_a_version_and_answers_closed_book(champion, params, base_model_dir, tmp_path):
    import mlflow.pyfunc

    cfg = params.finetune.adapters[0]
    adapter_dir = _untrained_adapter(cfg, base_model_dir, tmp_path)
    prompts, generation = params.evaluation.prompts, champion["generation"]
    bundle = make_bundle(
        cfg.name, None, params.retrieval.embedders, None, None, prompts, generation, champion["base_hash"]
    )
    name = f"{params.evaluation.registry.adapter_prefix}{cfg.name}"
    result = register_adapter(name, bundle, base_model_dir, adapter_dir)
    assert result["created"] and result["version"] == "1"
    # the base model is stored once, shared with the champion, not copied into each version
    assert (
        tracking.ensure_base_model(base_model_dir, champion["base_hash"])
        == tracking.find_version(NAME, champion["first"]["bundle_hash"]).tags["ragtune.base_model_uri"]
    )
    out = mlflow.pyfunc.load_model(result["model_uri"]).predict([QUESTION])
    assert list(out.columns) == ["answer"] and out["answer"][0]


def test_register_command_registers_the_adapters_and_the_chosen_cell_once(
    champion, params, base_model_dir, tmp_path, monkeypatch
):
    import shutil

    import yaml
    from typer.testing import CliRunner

    from components.catalog import artifacts
    from flows.cli import app
    from tests.conftest import REPO, best_file, choice

    shutil.copytree(REPO / "params", tmp_path / "params")
    shutil.copy2(REPO / "dvc.yaml", tmp_path / "dvc.yaml")
    finetune = yaml.safe_load((tmp_path / "params" / "finetune.yaml").read_text())
    finetune["adapters"] = finetune["adapters"][:1]  # one adapter, untrained: registering it is what is tested
    (tmp_path / "params" / "finetune.yaml").write_text(yaml.safe_dump(finetune))
    _untrained_adapter(params.finetune.adapters[0], base_model_dir, tmp_path / "data" / "models" / "adapters")
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
    # a tie: the best cell by mean is dearer; the cheaper equivalent one is recommended, and served
    recommended = choice("base+vector-minilm-k3", run_id=run_id, mean=0.5)
    dearer = choice("lora-r8-qv+vector-minilm-k3", run_id="elsewhere", mean=0.52, cost_per_1k_amortised=0.5)
    best = best_file(recommended, dearer, parent_run_id=parent, tied=[dearer.cell, recommended.cell])
    artifacts.write(best, tmp_path / "data" / "metrics" / "best.json")

    outputs = []
    for _ in range(2):
        result = CliRunner().invoke(app, ["register"])
        assert result.exit_code == 0, f"{result.output[-3000:]}\n{result.exception!r}"
        outputs.append(json.loads((tmp_path / "data" / "metrics" / "registry.json").read_text()))
    first, again = outputs
    assert first["created"] and not again["created"] and first["version"] == again["version"] == "1"
    assert first["name"] == "ragtune-qa" and first["alias"] == "champion"
    assert "same bundle, version reused" in result.output
    adapter = f"{params.evaluation.registry.adapter_prefix}{params.finetune.adapters[0].name}"
    assert len(mlflow_versions(adapter)) == 1  # registered by `register`, once, though it ran twice
    assert tracking.run_params(first["run_id"])["index_version"] == table_version
    import mlflow

    served = mlflow.MlflowClient().get_model_version_by_alias("ragtune-qa", "champion")
    assert str(served.version) == "1" and served.tags["ragtune.cell"] == "base+vector-minilm-k3"  # the recommendation


def mlflow_versions(name: str) -> list:
    import mlflow

    return mlflow.MlflowClient().search_model_versions(f"name = '{name}'")


# --- the gate against this real champion: its own answers, scored and paired by question -----------------


def _gate_questions(champion) -> pd.DataFrame:
    """The ten demo questions of the champion's index, as qa.parquet has them (each its own leakage group)."""
    rows = [json.loads(line) for line in (champion["root"] / "raw" / "qa.jsonl").read_text().splitlines()]
    qa = pd.DataFrame({"qa_id": [r["id"] for r in rows], "question": [r["question"] for r in rows]})
    return qa.assign(answers=[r["answers"] for r in rows], leakage_group=qa["qa_id"], split="test")


METRIC = "answer_tokens"  # scored per answer by the grid, and it varies question by question: this tiny base
# model gets the ISO codes wrong (f1 0 everywhere), but not with answers of one length


def _judge(champion, params, base_model_dir, scores: list[float], **gate):
    """``judge`` of a new cell whose evaluation scored it ``scores`` (in question order) against @champion."""
    from components.serving.bundle import bundle_hash
    from components.serving.champion import judge
    from components.serving.register import CellPlan
    from tests.conftest import choice

    qa = _gate_questions(champion)
    predictions = pd.DataFrame({"qa_id": qa["qa_id"], "cell": "lora-x+none", "split": "test", METRIC: scores})
    bundle = make_bundle("base", None, {}, None, None, params.evaluation.prompts, champion["generation"], "other")
    plan = CellPlan(choice("lora-x+none"), bundle, None, bundle_hash(bundle, None))  # never loaded: it was scored
    return judge(
        plan,
        base_model_dir,
        lambda: (qa, predictions),
        METRIC,
        like(params.evaluation.gate, split="test", margin=0.05, **gate),
        like(params.evaluation.statistics, resamples=500, min_groups=5),
        like(params.evaluation.registry, name=NAME),
    )


def _use_store(champion) -> None:
    """Point MLflow at the champion's store *and* its experiment: the active experiment is process-wide
    state that an earlier test (the register command's, in another store) leaves behind, and a run
    started under it fails with "No Experiment with id=..." in this store."""
    import mlflow

    mlflow.set_tracking_uri(champion["uri"])
    mlflow.set_experiment("serving-test")


@pytest.fixture(scope="module")
def champion_scores(champion) -> list[float]:
    """The champion's own score on each gate question, from its answers through pyfunc (as the gate loads it)."""
    import mlflow

    from components.serving.champion import score_answers

    _use_store(champion)
    qa = _gate_questions(champion)
    answers = mlflow.pyfunc.load_model(f"models:/{NAME}@champion").predict(qa[["question"]])
    return score_answers(answers["answer"].tolist(), [list(a) for a in qa["answers"]], METRIC)


def test_the_gate_pairs_the_champions_answers_with_the_new_cells_by_question(
    champion, champion_scores, params, base_model_dir
):
    """A new cell that scores exactly what the champion scores, question by question, differs by 0 with a
    zero-width interval; paired any other way the interval would open. A new cell that answers nothing is
    refused: the champion's own scores are what it is measured against."""

    _use_store(champion)
    assert len(set(champion_scores)) > 1, champion_scores  # not one score for all: how they pair matters
    same = _judge(champion, params, base_model_dir, champion_scores)
    assert same.passed and same.reason == "non-inferior" and same.champion_version == champion["first"]["version"]
    assert same.diff == 0 and same.diff_low == same.diff_high == 0
    assert same.champion_mean == pytest.approx(sum(champion_scores) / len(champion_scores))
    nothing = _judge(champion, params, base_model_dir, [0.0] * len(champion_scores))
    assert not nothing.passed and nothing.reason == "inferior" and nothing.diff_high < 0


def test_the_anchor_bounds_the_drop_against_the_best_champion_so_far(champion, champion_scores, params, base_model_dir):
    """The champion is a later, terser version (answers of at most two tokens); the anchor the first one. A
    new cell that scores what the champion scores passes against it, and is refused against the anchor."""
    import mlflow

    from components.serving.champion import score_version

    _use_store(champion)
    terse = like(champion["generation"], max_new_tokens=2, min_new_tokens=1)
    weak = make_bundle("base", None, {}, None, None, params.evaluation.prompts, terse, champion["base_hash"])
    first = champion["first"]["version"]
    second = register_bundle(NAME, weak, base_model_dir, None)["version"]
    anchor = params.evaluation.registry.anchor_alias
    tracking.move_alias(NAME, "champion", second, expected=first)
    tracking.move_alias(NAME, anchor, first, expected=None)
    try:
        same_as_champion = score_version(NAME, second, _gate_questions(champion), METRIC).tolist()
        assert sum(same_as_champion) < sum(champion_scores) - 0.5 * len(champion_scores)  # the anchor: longer
        bounded = _judge(champion, params, base_model_dir, same_as_champion, anchor="best-ever")
        assert bounded.champion_version == second and bounded.diff == bounded.diff_low == 0  # passes the champion
        assert not bounded.passed and bounded.reason == "below-anchor" and bounded.anchor_version == first
        assert bounded.anchor_mean == pytest.approx(sum(champion_scores) / len(champion_scores))
    finally:
        tracking.move_alias(NAME, "champion", first, expected=second)
        mlflow.MlflowClient().delete_registered_model_alias(NAME, anchor)


def test_the_gate_scores_semantic_similarity_with_the_grids_embedder(params):
    from components.serving.champion import score_answers
    from components.serving.promote import similarity_model

    model = similarity_model("semantic_similarity", params.retrieval.embedders)
    right, wrong = score_answers(
        ["The ISO code of Afghanistan is AFG.", "A small market town in the valley."],
        [["AFG, the code of Afghanistan"], ["AFG, the code of Afghanistan"]],
        "semantic_similarity",
        model,
    )
    assert 0.0 <= wrong < right <= 1.0
