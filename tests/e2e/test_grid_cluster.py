"""The grid on a two-node Ray cluster with GPUs: the work split over 4 actors, the code shipped by the job.

The nodes declare two GPUs each (``ray start --num-gpus=2`` needs no GPU: Ray hands them out by id)
and start in an empty folder with no ``PYTHONPATH``: the ``components`` the actors run comes with
the driver's runtime environment. 4 workers over 2 model variants are all busy, each actor sees
its own GPU, and the answers equal the one-process run's.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.grid_probe import random_adapter
from tests.e2e.servers import ray_cluster
from tests.tiny_project import project_env

REPO = Path(__file__).resolve().parents[2]


def _probe(spec: dict, tmp_path: Path, env: dict, name: str) -> tuple[list[dict], dict]:
    """The probe's cells (sorted by name) and its other lines (workers, curve), by key."""
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(spec))
    proc = subprocess.run(  # from the checkout's root: the nodes still import the job's copy
        [sys.executable, "-m", "tests.e2e.grid_probe", str(path)],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    cells = sorted((r for r in lines if "cell" in r), key=lambda r: r["cell"])
    return cells, {k: v for r in lines if "cell" not in r for k, v in r.items()}


def test_four_gpu_actors_over_two_nodes_share_two_variants_and_match_the_one_process_run(tmp_path, base_model_dir):
    adapter = random_adapter(base_model_dir, tmp_path / "adapter")
    for step in (2, 4):  # the adapter's learning-curve snapshots (random weights: each answers its own way)
        random_adapter(base_model_dir, tmp_path / "curve" / f"step-{step:06d}")
    # batch_size 1: each cell's 3 questions are 3 batches, so the 2 cells make 8 units (6 batches, 2 latency passes)
    spec = {"base_dir": str(base_model_dir), "adapters": {"lora": str(adapter)}, "batch_size": 1}
    spec["curve"] = ["lora", str(tmp_path / "curve")]
    env = project_env(tmp_path, PYTHONPATH=str(REPO))  # the driver imports tests.e2e; the nodes get no PYTHONPATH
    local, alone = _probe({**spec, "workers": 1, "cache_dir": str(tmp_path / "cache-local")}, tmp_path, env, "local")
    with ray_cluster(tmp_path, env, cpus=(2, 2), gpus=(2, 2)) as (ray_env, dirs):
        ray_spec = {**spec, "workers": 4, "gpus_per_worker": 1, "cache_dir": str(tmp_path / "cache-ray")}
        spread, pooled = _probe(ray_spec, tmp_path, {**env, **ray_env}, "ray")
    workers = pooled["workers"]
    assert [r["cell"] for r in local] == [r["cell"] for r in spread] == ["base+none", "lora+none"]
    assert {r["node"] for r in local} == {"local"}
    for one, many in zip(local, spread, strict=True):
        assert one["predictions"] == many["predictions"] and one["f1"] == pytest.approx(many["f1"])

    assert len(workers) == 4 and all(w["answers"] > 0 for w in workers), workers  # all four busy
    answers = [w["answers"] for w in workers]
    print(f"answers per worker {answers}, max/mean {max(answers) / (sum(answers) / 4):.2f}")  # -s shows it
    assert max(answers) / (sum(answers) / 4) <= 2.0, answers  # 8 units of 1-2 answers each: no worker holds half
    assert len({w["node"] for w in workers}) == 2, workers  # spread over both nodes
    seen = [(w["node"], w["devices"]) for w in workers]
    assert len(set(seen)) == 4 and all(d in {"0", "1"} for _, d in seen), seen  # one GPU each, its own
    assert all(w["loads"] == 1 for w in workers), workers  # each actor loaded its variant once
    for w in workers:  # the code came with the job (Ray unpacks its working_dir under its session folder)
        assert "runtime_resources" in w["code"] and not w["code"].startswith(str(REPO)), w["code"]
        assert any(w["code"].startswith(str(d)) for d in dirs), (w["code"], dirs)

    # the learning curve's snapshots were answered on the same pool, split over its actors, as in one process
    assert [p["step"] for p in pooled["curve"]] == [0, 2, 4]
    assert pooled["curve"] == alone["curve"]
    after = {w["worker"]: w for w in pooled["workers_after_curve"]}
    grew = [w for w in workers if after[w["worker"]]["answers"] > w["answers"]]
    assert len(grew) >= 2, pooled["workers_after_curve"]  # the curve's work went to several actors
