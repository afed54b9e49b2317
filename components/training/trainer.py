"""LoRA fine-tuning with Ray Train: the driver that plans, starts and collects one adapter's run.

The run is named after the adapter and a fingerprint of its config and data, so re-running an
interrupted ``ragtune finetune`` with the same storage resumes from the latest checkpoint.
``RAY_ADDRESS`` (read by Ray itself) selects an existing cluster; with an object store
(:mod:`components.storage`) the run, its checkpoints and the base model live in a bucket
every node reaches, so the cluster needs no filesystem shared with the driver.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import shutil
import tempfile
import time
from pathlib import Path

from components.config import AdapterConfig, RayConfig
from components.ray_runtime import start_ray
from components.storage import ObjectStore, StoredDir, get_dir, publish_dir, ray_storage, run_dir
from components.training.reports import follow_reports
from components.training.worker import SNAPSHOTS, STATE_FILE, snapshot_at, snapshot_name, train_loop_per_worker

logger = logging.getLogger(__name__)


def plan_steps(n_examples: int, cfg: AdapterConfig, world_size: int) -> int:
    """Optimiser steps: full epochs over the data, capped by ``max_steps``.

    One step consumes ``batch_size * grad_accum`` examples on each of ``world_size`` workers.
    """
    per_epoch = math.ceil(n_examples / (cfg.batch_size * cfg.grad_accum * world_size))
    total = per_epoch * cfg.epochs
    return min(total, cfg.max_steps) if cfg.max_steps else total


def fingerprint(
    examples: list[dict],
    cfg: AdapterConfig,
    ray_cfg: RayConfig,
    base_dir: Path,
    eval_examples: list[dict] = (),
    salt: str = "",
) -> str:
    """Hash of everything that decides the trained weights (and, through early stopping, the held-out
    examples): same hash, same run, so it can resume. ``salt`` makes a run that must not resume
    (the drill times a fresh training) its own."""
    h = hashlib.sha256()
    parts = [cfg.model_dump(mode="json"), ray_cfg.num_workers, str(base_dir.resolve())]
    parts += [ray_cfg.strategy] if ray_cfg.strategy != "ddp" else []  # its checkpoints hold gathered optimiser state
    parts += [salt] if salt else []
    h.update(json.dumps(parts).encode())
    for e in [*examples, {"dev": True}, *eval_examples]:
        h.update(json.dumps([e.get("input_ids"), e.get("labels")]).encode())
    return h.hexdigest()[:12]


def snapshots_of(storage_dir: Path, store: ObjectStore | None, run_name: str) -> StoredDir:
    """Where a run keeps its learning-curve snapshots: ``<run>/snapshots`` in the run's storage."""
    run = run_dir(storage_dir, store, run_name)
    return StoredDir(f"{run.path}/{SNAPSHOTS}", "", run.filesystem)


def evaluations(steps: int, eval_every: int | None) -> int:
    """Held-out evaluations in a run of ``steps`` steps: every ``eval_every`` steps and at the last one."""
    if not eval_every:
        return 0
    return steps // eval_every + (steps % eval_every != 0)


def warn_if_early_stopping_cannot_fire(cfg: AdapterConfig, steps: int, evaluated: bool) -> bool:
    """Log (and return True) when the run has too few evaluations for ``patience`` ever to stop it."""
    n = evaluations(steps, cfg.eval_every) if evaluated else 0
    if cfg.patience is None or n > cfg.patience:
        return False
    logger.warning(
        "adapter %s: %d held-out evaluation(s) in %d steps and patience %d: early stopping can never fire, and the "
        "learning curve has %d point(s); lower eval_every or raise max_steps",
        cfg.name,
        n,
        steps,
        cfg.patience,
        n,
    )
    return True


def _announce(cfg: AdapterConfig, examples: int, steps: int, workers: int, run_name: str, evaluated: bool) -> None:
    logger.info(
        "training %s: %d examples, %d steps on %d worker(s), run %s", cfg.name, examples, steps, workers, run_name
    )
    warn_if_early_stopping_cannot_fire(cfg, steps, evaluated)


def ensure_ray(
    ray_cfg: RayConfig, cluster_address: str | None, concurrent_runs: int = 1, state_api: bool = False
) -> None:
    """Ray for training: enough logical CPUs for ``concurrent_runs`` runs at once, each its workers plus one spare."""
    needed = concurrent_runs * (ray_cfg.num_workers * ray_cfg.cpus_per_worker + 1)
    start_ray(needed, cluster_address, state_api)


def make_trainer(
    examples: list[dict],
    base: StoredDir,
    cfg: AdapterConfig,
    ray_cfg: RayConfig,
    storage_dir: Path,
    run_name: str,
    steps: int,
    stop_after: int | None = None,
    eval_examples: list[dict] | None = None,
    eval_every: int | None = None,
    callbacks: list | None = None,
    report_every: int | None = None,
    early_stopping: bool = True,
    store: ObjectStore | None = None,
):
    """The Ray Train ``TorchTrainer`` for one adapter run of ``steps`` steps, stored under ``run_name``.

    Workers report metrics every ``report_every`` steps (default: about 20 reports per run), at
    checkpoints, at held-out evaluations and at the end. With ``eval_examples`` the tune loss is
    measured every ``eval_every`` steps (default: the adapter's) and, with ``early_stopping``, the
    run stops after the adapter's ``patience`` evaluations without improvement. ``base`` is the base
    model where the workers reach it (:func:`components.storage.publish_dir`); with ``store`` the
    run, its checkpoints and its snapshots live in the object store.
    """
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    storage_path, storage_filesystem = ray_storage(storage_dir, store)
    return TorchTrainer(
        train_loop_per_worker,
        train_loop_config={
            "adapter": cfg.model_dump(mode="json"),
            "base_model": base,
            "snapshots": snapshots_of(storage_dir, store, run_name),
            "examples": examples,
            "steps": steps,
            "threads": ray_cfg.cpus_per_worker,
            "strategy": ray_cfg.strategy,
            "gradient_checkpointing": ray_cfg.gradient_checkpointing,
            "report_every": report_every or max(1, steps // 20),
            "stop_after": stop_after,
            "run_dir": None if store else str(storage_dir.resolve() / run_name),  # None: node-local
            "eval_examples": eval_examples or [],
            "eval_every": eval_every or cfg.eval_every,
            "patience": cfg.patience if early_stopping else None,
            "min_delta": cfg.min_delta,
        },
        torch_config=TorchConfig(backend="nccl" if ray_cfg.use_gpu else "gloo"),
        scaling_config=ScalingConfig(
            num_workers=ray_cfg.num_workers,
            use_gpu=ray_cfg.use_gpu,
            resources_per_worker={"CPU": ray_cfg.cpus_per_worker},
        ),
        run_config=RunConfig(
            storage_path=storage_path,
            storage_filesystem=storage_filesystem,
            name=run_name,
            failure_config=FailureConfig(max_failures=ray_cfg.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=2),  # the latest two: enough to resume
            callbacks=callbacks,
        ),
    )


def collect_adapter(
    checkpoint_dir: Path, metrics: dict, snapshots: StoredDir, out_dir: Path, curve_dir: Path | None
) -> None:
    """The adapter kept from a finished run: its best snapshot by tune loss when evaluated, else the last weights.

    The snapshots of the run's evaluations (the learning curve) are fetched from the run's storage
    into ``curve_dir``; the optimiser state stays in the run's storage.
    """
    best = metrics.get("best")
    wanted = [e["step"] for e in metrics.get("evals", [])] if curve_dir is not None else []
    wanted += [best["step"]] if best and best["step"] not in wanted else []
    with tempfile.TemporaryDirectory() as tmp:
        fetched = Path(tmp)
        for step in wanted:
            get_dir(snapshot_at(snapshots, step), fetched / snapshot_name(step))
        source = fetched / snapshot_name(best["step"]) if best else checkpoint_dir
        out_dir.mkdir(parents=True, exist_ok=True)
        for item in source.iterdir():
            if item.is_file() and item.name != STATE_FILE:
                shutil.copy2(item, out_dir / item.name)
        if curve_dir is not None:
            curve_dir.mkdir(parents=True, exist_ok=True)
            for step in [e["step"] for e in metrics.get("evals", [])]:
                shutil.copytree(fetched / snapshot_name(step), curve_dir / snapshot_name(step), dirs_exist_ok=True)


def train_adapter(
    examples: list[dict],
    base_dir: Path,
    cfg: AdapterConfig,
    ray_cfg: RayConfig,
    out_dir: Path,
    storage_dir: Path,
    cluster_address: str | None = None,
    stop_after: int | None = None,
    eval_examples: list[dict] | None = None,
    curve_dir: Path | None = None,
    store: ObjectStore | None = None,
    run_salt: str = "",
) -> dict:
    """Train one LoRA adapter with Ray Train; copy the adapter kept to ``out_dir``, its snapshots to ``curve_dir``.

    The run lives in ``storage_dir/<adapter>-<fingerprint>``: starting the same adapter on the same
    data again resumes from its latest checkpoint (or returns at once if it had finished).
    ``stop_after`` ends this call after that many steps (counted from the start of the run) with a
    checkpoint, so a long run can be trained in slices; the learning-rate schedule still spans
    the planned total. With ``eval_examples`` (held-out tune questions) the tune loss is measured
    every ``cfg.eval_every`` steps, the run stops early after ``cfg.patience`` evaluations without
    improvement, and the adapter kept is the best snapshot by tune loss. With ``store`` the run lives in the
    object store (see :func:`make_trainer`); the adapter is read back from its checkpoint there.

    Returns:
        Training metrics: step, final loss, tokens/s, compute and wall time, peak memory, per-step
        history, the evaluations (``evals``), the best one (``best``) and ``stopped_early``.
    """
    if not examples:
        raise ValueError(f"adapter {cfg.name!r}: no training examples")
    # the state API on: Ray Train's placement-group cleaner polls it, and without it logs
    # "Failed to query Ray Train Controller actor state" every few seconds of the fit
    ensure_ray(ray_cfg, cluster_address, state_api=True)
    steps = plan_steps(len(examples), cfg, ray_cfg.num_workers)
    run_name = f"{cfg.name}-{fingerprint(examples, cfg, ray_cfg, base_dir, eval_examples or [], run_salt)}"
    _announce(cfg, len(examples), steps, ray_cfg.num_workers, run_name, bool(eval_examples))
    start = time.perf_counter()
    base = publish_dir(base_dir, store, "base")
    args = (examples, base, cfg, ray_cfg, storage_dir, run_name, steps, stop_after, eval_examples)
    with follow_reports(f"train {cfg.name}", steps) as callbacks:
        result = make_trainer(*args, callbacks=callbacks, store=store).fit()
    wall = time.perf_counter() - start
    if result.checkpoint is None:
        raise RuntimeError(f"adapter {cfg.name!r}: training finished without a checkpoint")
    metrics = dict(result.metrics)
    with result.checkpoint.as_directory() as ckpt:
        collect_adapter(Path(ckpt), metrics, snapshots_of(storage_dir, store, run_name), out_dir, curve_dir)
    metrics.update(
        {
            "wall_time_s": wall,
            "examples": len(examples),
            "examples_per_step": cfg.batch_size * cfg.grad_accum * ray_cfg.num_workers,
            "workers": ray_cfg.num_workers,
            "planned_steps": steps,
            "run_name": run_name,
            "checkpoint_uri": _checkpoint_uri(result.checkpoint, store),
        }
    )
    logger.info(
        "trained %s in %.0f s: loss %.3f, %.0f tokens/s%s",
        cfg.name,
        wall,
        metrics["loss"],
        metrics["tokens_per_s"],
        f", kept step {metrics['best']['step']} (tune loss {metrics['best']['tune_loss']:.3f})"
        if metrics.get("best")
        else "",
    )
    return metrics


def _checkpoint_uri(checkpoint, store: ObjectStore | None) -> str:
    """Where the result checkpoint (the adapter) lives: a local path or an ``s3://`` URI."""
    return f"s3://{checkpoint.path}" if store else checkpoint.path
