"""A Ray Tune sweep over LoRA hyperparameters, stopped early by ASHA on held-out loss.

Each trial is one Ray Train run of the sweep's base adapter (``sweep.adapter`` in
params/finetune.yaml: its data sources, batch size and length) with ``r``, ``alpha``, ``dropout``
and ``learning_rate`` sampled from ``sweep.space``. Trials run the same ``TorchTrainer`` and worker
code as ``ragtune finetune`` (:func:`components.training.trainer.make_trainer`); every ``eval_every`` steps
the workers measure the loss on held-out tune questions (:func:`components.training.trainer.held_out_examples`)
and ASHA (Li et al. 2020) stops the trials whose tune loss is in the worst part of those that
reached the same step. The best trial is the completed one with the lowest final tune loss; the
sweep proposes it as a new adapter entry, which goes into the grid like any other once it is added
to params/finetune.yaml (a human reads the sweep before it changes what the pipeline trains).
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

import pandas as pd

from components.config import INTEGER_HYPERPARAMETERS, AdapterConfig, RayConfig, SweepConfig
from components.decision.markdown import to_markdown
from components.storage import ObjectStore, StoredDir, publish_dir, ray_storage
from components.training.trainer import ensure_ray, make_trainer, plan_steps

logger = logging.getLogger(__name__)

__all__ = ["best_adapter", "run_sweep", "search_space", "trial_adapter", "trials_markdown"]


def search_space(cfg: SweepConfig) -> dict:
    """Ray Tune sampling domains for ``cfg.space`` (integers stay integers)."""
    from ray import tune

    space = {}
    for name, dim in cfg.space.items():
        if dim.values is not None:
            values = [int(v) for v in dim.values] if name in INTEGER_HYPERPARAMETERS else list(dim.values)
            space[name] = tune.choice(values) if dim.choice is not None else tune.grid_search(values)
        elif dim.loguniform is not None:
            space[name] = tune.loguniform(*dim.loguniform)
        else:
            space[name] = tune.uniform(*dim.uniform)
    return space


def trial_adapter(base: AdapterConfig, hyper: dict, max_steps: int) -> AdapterConfig:
    """``base`` with the trial's hyperparameters, capped at ``max_steps``, no intermediate checkpoints."""
    # validated: a sampled value out of range (dropout 1.2) fails here, named
    return AdapterConfig(**{**base.model_dump(), **hyper, "max_steps": max_steps, "checkpoint_every": None})


def _trial(
    hyper: dict,
    *,
    examples: list[dict],
    eval_examples: list[dict],
    base_model: StoredDir,
    base: dict,
    ray_cfg: dict,
    storage_dir: str,
    store: ObjectStore | None,
    max_steps: int,
    eval_every: int,
) -> None:
    """One Tune trial: a Ray Train run whose reports Tune (and ASHA) see through TuneReportCallback."""
    import ray.tune
    from ray.tune.integration.ray_train import TuneReportCallback

    ray_config = RayConfig(**ray_cfg)
    cfg = trial_adapter(AdapterConfig(**base), hyper, max_steps)
    steps = plan_steps(len(examples), cfg, ray_config.num_workers)
    run_name = f"{cfg.name}-{ray.tune.get_context().get_trial_id()}"
    trainer = make_trainer(
        examples,
        base_model,
        cfg,
        ray_config,
        Path(storage_dir),
        run_name,
        steps,
        eval_examples=eval_examples,
        eval_every=eval_every,
        callbacks=[TuneReportCallback()],
        report_every=eval_every,  # every report then carries the tune loss ASHA compares
        early_stopping=False,  # ASHA decides which trials stop
        store=store,
    )
    trainer.fit()


def run_sweep(
    examples: list[dict],
    eval_examples: list[dict],
    base_dir: Path,
    base: AdapterConfig,
    cfg: SweepConfig,
    ray_cfg: RayConfig,
    storage_dir: Path,
    cluster_address: str | None = None,
    store: ObjectStore | None = None,
) -> tuple[pd.DataFrame, dict[str, list[dict]]]:
    """Run the sweep; return one row per trial and each trial's per-step loss curve.

    Rows: ``trial``, the sampled hyperparameters, ``steps`` reached, ``planned_steps``, final
    ``loss`` and ``tune_loss``, ``stopped`` (by ASHA), ``error``; sorted best first. With ``store``
    the base model is uploaded once and the sweep's state and every trial's run live in the object
    store, so no node needs this machine's disk.
    """
    from ray import tune

    if not examples or not eval_examples:
        raise ValueError(f"sweep of {base.name!r}: needs training examples and held-out examples")
    ensure_ray(ray_cfg, cluster_address, concurrent_runs=cfg.max_concurrent, state_api=True)
    planned = plan_steps(len(examples), trial_adapter(base, {}, cfg.max_steps), ray_cfg.num_workers)
    trainable = tune.with_parameters(
        _trial,
        examples=examples,
        eval_examples=eval_examples,
        base_model=publish_dir(base_dir, store, "base"),
        base=base.model_dump(mode="json"),
        ray_cfg=ray_cfg.model_dump(),
        storage_dir=str((storage_dir / "trials").resolve()),
        store=store,
        max_steps=cfg.max_steps,
        eval_every=cfg.eval_every,
    )
    tuner = _tuner(trainable, cfg, planned, base.name, ray_storage(storage_dir, store, "sweep"))
    logger.info(
        "sweep of %s: %d trials of up to %d steps, tune loss every %d steps",
        base.name,
        cfg.num_samples,
        planned,
        cfg.eval_every,
    )
    trials, curves = _collect(tuner.fit(), list(cfg.space), planned)
    trials = trials.assign(completed=_completed(trials)).sort_values(
        ["completed", "tune_loss"], ascending=[False, True], na_position="last"
    )
    return trials.drop(columns="completed").reset_index(drop=True), curves


def _tuner(trainable, cfg: SweepConfig, planned: int, name: str, storage: tuple):
    """The Tune run: ASHA on dev loss over the seeded search, its state in ``storage`` (path, filesystem)."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    scheduler = ASHAScheduler(
        time_attr="step",  # optimiser steps, as the workers report them
        max_t=planned,
        grace_period=min(cfg.grace_period, planned),
        reduction_factor=cfg.reduction_factor,
        stop_last_trials=False,  # a trial that reached max_t ends on its own, its Ray Train run cleanly shut down
    )
    return tune.Tuner(
        # the trial itself only waits on its Ray Train run, whose workers hold the CPUs (Tune refuses 0)
        tune.with_resources(trainable, {"CPU": 0.01}),
        param_space=search_space(cfg),
        tune_config=tune.TuneConfig(
            metric="tune_loss",
            mode="min",
            scheduler=scheduler,
            num_samples=cfg.num_samples,
            search_alg=_seeded_search(cfg.seed, cfg.max_concurrent),
        ),
        run_config=tune.RunConfig(storage_path=storage[0], storage_filesystem=storage[1], name=f"sweep-{name}"),
    )


def _collect(grid, space: list[str], planned: int) -> tuple[pd.DataFrame, dict[str, list[dict]]]:
    """One row per finished trial (see :func:`run_sweep`) and each trial's loss curve."""
    rows, curves = [], {}
    for result in grid:
        metrics = result.metrics or {}
        trial = str(metrics.get("trial_id") or Path(result.path).name)
        frame = result.metrics_dataframe if result.metrics_dataframe is not None else pd.DataFrame()
        # the frame is rectangular: a report without a value holds NaN there, which a curve leaves out
        records = frame[[c for c in ("step", "loss", "tune_loss") if c in frame]].to_dict("records")
        curve = [{k: v for k, v in r.items() if not _nan(v)} for r in records]
        dev = [r["tune_loss"] for r in curve if "tune_loss" in r]
        steps = int(metrics.get("step", 0))
        rows.append(
            {
                "trial": trial,
                **{name: result.config.get(name) for name in space},
                "steps": steps,
                "planned_steps": planned,
                "loss": metrics.get("loss", math.nan),
                "tune_loss": dev[-1] if dev else math.nan,
                "stopped": result.error is None and steps < planned,
                "error": None if result.error is None else f"{type(result.error).__name__}: {result.error}",
            }
        )
        curves[trial] = curve
    return pd.DataFrame(rows), curves


def _completed(trials: pd.DataFrame) -> pd.Series:
    """Trials that ran all their planned steps without an error."""
    return (trials["steps"] >= trials["planned_steps"]) & trials["error"].isna()


def _seeded_search(seed: int, max_concurrent: int):
    """Random (and grid) search over the space, reproducible by ``seed``, ``max_concurrent`` trials at once."""
    from ray.tune.search import BasicVariantGenerator

    return BasicVariantGenerator(random_state=seed, max_concurrent=max_concurrent)


def _nan(value) -> bool:
    return isinstance(value, float) and math.isnan(value)


def best_adapter(trials: pd.DataFrame, base: AdapterConfig, space: list[str]) -> AdapterConfig | None:
    """The best completed trial as an adapter entry named ``<base>-tuned``; None if no trial completed.

    It keeps the base adapter's ``max_steps`` (the trial ran the sweep's), so it trains as long as
    the adapter it tunes.
    """
    done = trials[_completed(trials) & trials["tune_loss"].notna()]
    if done.empty:
        return None
    best = done.sort_values("tune_loss").iloc[0]
    hyper = {name: _plain(best[name]) for name in space}
    return AdapterConfig(**{**base.model_dump(), **hyper, "name": f"{base.name}-tuned"})


def _plain(value):
    """numpy scalars to Python numbers (for YAML and pydantic)."""
    return value.item() if hasattr(value, "item") else value


def trials_markdown(trials: pd.DataFrame, best: AdapterConfig | None, base: AdapterConfig) -> str:
    """The sweep report: the trial table, best first, and the adapter entry it proposes."""
    import yaml

    table = trials.copy()
    for column in ("loss", "tune_loss", "learning_rate", "dropout"):
        if column in table:
            table[column] = table[column].map(lambda v: "-" if _nan(v) or v is None else f"{v:.4g}")
    table["error"] = table["error"].fillna("")
    lines = [
        f"# Sweep of {base.name}",
        "",
        "Trials best first (completed trials by final tune loss, then those ASHA stopped early).",
        "",
        to_markdown(table, list(table.columns)),
    ]
    if best is None:
        lines.append("No trial completed: nothing to propose.")
    else:
        entry = yaml.safe_dump([best.model_dump(mode="json")], sort_keys=False)
        lines += [
            "Proposed adapter (add it under `adapters:` in params/finetune.yaml to train and evaluate it):",
            "",
            "```yaml",
            entry.rstrip(),
            "```",
        ]
    return "\n".join(lines) + "\n"


def sweep(params, catalog, tags: dict[str, str], store: ObjectStore | None = None) -> str:
    """``ragtune sweep``: run the sweep of ``params.finetune.sweep``, record it, return its report.

    Writes ``reports/sweep.md`` and ``metrics/sweep.json``; logs one MLflow parent run with a child
    per trial (MLflow must be set up by the caller). ``store``: the object store the runs go through.

    Raises:
        ValueError: no held-out tune questions to measure the loss on.
    """
    import json
    import time

    from components import tracking
    from components.io import write_json, write_text
    from components.llm.models import load_tokenizer
    from components.training.examples import build_examples, held_out_examples
    from components.training.inputs import load_inputs

    cfg = params.finetune.sweep
    base = params.finetune.adapter(cfg.adapter)
    prompts = params.evaluation.prompts
    inputs = load_inputs(catalog, [base], params.retrieval)
    tokenizer = load_tokenizer(catalog.base_model)
    examples = build_examples(inputs, tokenizer, base, prompts)
    held_out = held_out_examples(inputs, tokenizer, base, prompts, cfg.tune_questions)
    trials, curves = run_sweep(
        examples,
        held_out,
        catalog.base_model,
        base,
        cfg,
        params.finetune.ray,
        catalog.scratch("sweep"),
        cluster_address=os.environ.get("RAY_ADDRESS"),
        store=store,
    )
    best = best_adapter(trials, base, list(cfg.space))
    run_params = {
        "sweep": cfg.model_dump(mode="json"),
        "adapter": base.model_dump(mode="json"),
        "held_out_examples": len(held_out),
    }
    parent = tracking.start_parent(
        f"sweep-{base.name}-{time.strftime('%Y%m%d-%H%M%S')}", run_params, tags, kind="sweep"
    )
    for row in trials.to_dict("records"):
        hyper = {name: row[name] for name in cfg.space}
        summary = {k: row[k] for k in ("steps", "loss", "tune_loss")} | {"stopped": float(row["stopped"])}
        tracking.log_sweep_trial(parent, row["trial"], hyper, curves[row["trial"]], summary, tags)
    report = trials_markdown(trials, best, base)
    write_text(report, catalog.sweep_report)
    trial_rows = json.loads(trials.to_json(orient="records"))
    best_entry = None if best is None else best.model_dump(mode="json")
    write_json(
        {"adapter": base.name, "mlflow_run_id": parent, "trials": trial_rows, "best": best_entry},
        catalog.metrics("sweep"),
    )
    if best is not None:  # trials are sorted best first: the proposed adapter's trial is the first row
        tracking.log_to_run(parent, {"best_tune_loss": float(trials.iloc[0]["tune_loss"])}, [catalog.sweep_report])
    return report
