"""Ray Train runs on tiny data: resume from a checkpoint, and a killed worker's restart."""

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from components.training.trainer import plan_steps, train_adapter
from tests.conftest import PARAMS, REPO, code_examples, like


@pytest.fixture(scope="module")
def ray_session():
    import ray

    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def tiny(base_model_dir):
    return code_examples(base_model_dir, 8, "tiny")


def test_a_stopped_run_resumes_to_the_planned_total(tiny, base_model_dir, tmp_path, ray_session):
    examples, cfg = tiny
    ray_cfg = like(PARAMS.finetune.ray, num_workers=1, max_failures=0)
    planned = plan_steps(len(examples), cfg, 1)
    assert planned == 8
    first = train_adapter(examples, base_model_dir, cfg, ray_cfg, tmp_path / "a1", tmp_path / "ray", stop_after=4)
    assert first["step"] == 4
    second = train_adapter(examples, base_model_dir, cfg, ray_cfg, tmp_path / "a2", tmp_path / "ray")
    assert second["step"] == planned and second["resumed_at"] == [4]
    assert [h["step"] for h in second["history"]] == list(range(1, planned + 1))  # one history across both calls
    assert (tmp_path / "a2" / "adapter_model.safetensors").is_file()
    assert not (tmp_path / "a2" / "trainer_state.pt").exists()
    assert second["components_file"].startswith(str(REPO))  # workers import this checkout's components
    # the compute that produced the adapter adds up over both calls (a resume alone would look cheap)
    assert second["compute_s"] > first["compute_s"] > 0 and second["compute_s"] > second["wall_time_s"] * 0.1


def _train_worker(storage: Path) -> int | None:
    """The pid rank 1 recorded for the run in ``storage`` (this test's own worker, nobody else's)."""
    pid_files = list(storage.glob("tiny-*/workers/rank-1.pid"))
    return int(pid_files[0].read_text()) if pid_files else None


def test_a_killed_worker_resumes_from_the_last_checkpoint(tiny, base_model_dir, tmp_path, ray_session):
    examples, cfg = tiny
    cfg = cfg.model_copy(update={"epochs": 2, "checkpoint_every": 3})
    ray_cfg = like(PARAMS.finetune.ray, num_workers=2, max_failures=1)
    planned = plan_steps(len(examples), cfg, 2)
    result: dict = {}

    def run():
        result.update(train_adapter(examples, base_model_dir, cfg, ray_cfg, tmp_path / "adapter", tmp_path / "ray"))

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 150
    # kill rank 1 once a checkpoint is registered (Ray writes the snapshot file when it is)
    killed = None
    while killed is None and thread.is_alive() and time.monotonic() < deadline:
        if list((tmp_path / "ray").glob("tiny-*/checkpoint_manager_snapshot.json")) and (
            pid := _train_worker(tmp_path / "ray")
        ):
            killed = pid
            os.kill(killed, signal.SIGKILL)
        time.sleep(0.2)
    thread.join(timeout=240)
    assert killed is not None, "no checkpoint and worker seen before the run ended"
    assert result["step"] == planned == 8
    assert result["restarts"] == 1 and 0 < result["resumed_at"][0] < planned
    assert result["resumed_at"][0] % 3 == 0  # resumed from a checkpoint step
    assert (tmp_path / "adapter" / "adapter_model.safetensors").is_file()


def test_early_stopping_keeps_the_best_dev_snapshot_and_the_learning_curve(tiny, base_model_dir, tmp_path, ray_session):
    examples, cfg = tiny
    dev = examples[:4]  # held-out examples: a learning rate this high makes their loss climb after the first steps
    cfg = cfg.model_copy(
        update={"learning_rate": 0.5, "eval_every": 2, "patience": 1, "min_delta": 0.0, "checkpoint_every": None}
    )
    ray_cfg = like(PARAMS.finetune.ray, num_workers=1, max_failures=0)
    result = train_adapter(
        examples,
        base_model_dir,
        cfg,
        ray_cfg,
        tmp_path / "a",
        tmp_path / "ray",
        eval_examples=dev,
        curve_dir=tmp_path / "curve",
    )
    losses = [e["tune_loss"] for e in result["evals"]]
    assert result["stopped_early"] and result["step"] < plan_steps(len(examples), cfg, 1), losses
    assert result["best"]["tune_loss"] == min(losses) and losses[-1] > min(losses)
    snapshots = sorted(p.name for p in (tmp_path / "curve").iterdir())
    assert snapshots == [f"step-{e['step']:06d}" for e in result["evals"]]
    best = tmp_path / "curve" / f"step-{result['best']['step']:06d}" / "adapter_model.safetensors"
    assert (tmp_path / "a" / "adapter_model.safetensors").read_bytes() == best.read_bytes()  # the best, not the last
    # each snapshot was stored once, in the run's folder; no checkpoint carries them (each would re-upload all)
    stored = sorted(p.name for p in (tmp_path / "ray").glob("*/snapshots/step-*"))
    assert stored == snapshots
    checkpoints = list((tmp_path / "ray").glob("*/checkpoint_*"))
    assert checkpoints and not [c for c in checkpoints if (c / "snapshots").exists()]
