"""The grid on Ray: cells evaluated on both nodes of a two-node cluster give the one-process results."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.grid_probe import random_adapter
from tests.e2e.servers import ray_cluster
from tests.tiny_project import project_env


def _probe(spec: dict, tmp_path: Path, env: dict, name: str) -> list[dict]:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(spec))
    proc = subprocess.run(
        [sys.executable, "-m", "tests.e2e.grid_probe", str(path)], env=env, capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    return sorted(
        (json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")), key=lambda r: r["cell"]
    )


def test_cells_run_on_both_nodes_and_match_the_one_process_run(tmp_path, base_model_dir):
    adapter = random_adapter(base_model_dir, tmp_path / "adapter")
    spec = {"base_dir": str(base_model_dir), "adapters": {"lora": str(adapter)}}
    env = project_env(tmp_path)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    local = _probe({**spec, "workers": 1, "cache_dir": str(tmp_path / "cache-local")}, tmp_path, env, "local")
    with ray_cluster(tmp_path, env, cpus=(1, 1)) as (ray_env, _):  # one CPU per node: two actors, two nodes
        spread = _probe(
            {**spec, "workers": 2, "cache_dir": str(tmp_path / "cache-ray")}, tmp_path, {**env, **ray_env}, "ray"
        )
    assert [r["cell"] for r in local] == [r["cell"] for r in spread] == ["base+none", "lora+none"]
    assert {r["node"] for r in local} == {"local"}
    assert len({r["node"] for r in spread}) == 2, spread  # the two model variants ran on the two nodes
    for one, many in zip(local, spread, strict=True):
        assert one["predictions"] == many["predictions"] and one["f1"] == pytest.approx(many["f1"])
