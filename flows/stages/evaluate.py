"""``ragtune evaluate``: every grid cell on dev, the cells dev left standing on test; one MLflow run each."""

from __future__ import annotations

import os
import time

import typer

from flows.common import EXIT_CONFIG, data_version, exits_on, stage


def main() -> None:
    """Answer the dev questions in every grid cell, then the test questions in the test cells."""
    import pandas as pd

    from components import tracking
    from components.catalog.artifacts import CellRecord, CellsFile
    from components.evaluation.curves import score_curves
    from components.evaluation.executors import open_pool
    from components.evaluation.outputs import write_evaluation
    from components.evaluation.prepare import prepare_grid
    from components.evaluation.probes import answer_probes, load_probes
    from components.evaluation.protocol import run_protocol
    from components.io import read_parquet, write_json
    from components.questions.report import origin_tags
    from components.storage import ObjectStore
    from components.tracking import genai

    s = stage("evaluate")
    with exits_on(ValueError, code=EXIT_CONFIG):
        store = ObjectStore.from_env(os.environ)
    p, c, cfg = s.params, s.catalog, s.params.evaluation
    g = prepare_grid(p, c, store)
    experiment_id = tracking.setup(s.root, cfg.experiment)
    tags = tracking.provenance_tags(s.root, data_version(s.root, p.data.paths.raw))
    tags.update(origin_tags(read_parquet(c.qa)))  # who wrote the questions: team, generated, reviewed
    sizes = {split: len(q) for split, q in g.splits.items()}
    run_params = {"evaluation": {"max_questions": cfg.max_questions, "cells": len(g.cells)}, "questions": sizes}
    parent = tracking.start_parent(f"pipeline-{time.strftime('%Y%m%d-%H%M%S')}", run_params, tags)
    datasets = {split: genai.split_dataset(qa, split, experiment_id, str(c.qa)) for split, qa in g.splits.items()}
    records = []

    def log(result) -> None:
        name, cell_tags = result.cell.name, {**tags, "ragtune.split": result.split, "ragtune.node": result.node}
        run_id = log_cell(parent, result, cell_tags, datasets[result.split], cfg.tracing.span_batch)
        record = CellRecord(**vars(result.cell), cell=name, split=result.split, run_id=run_id, metrics=result.metrics)
        records.append(record)

    with open_pool(cfg.parallel, store, os.environ.get("RAY_ADDRESS")) as pool:  # one pool for every answer
        result = run_protocol(g, cfg.statistics, cfg.main_metric, log, cfg.test_cells, pool)
        curves = score_curves(g, c.curve, g.tune.head(cfg.learning_curve.questions), cfg.main_metric, pool)
        probes = load_probes(c.probes, cfg.probes.max_questions) if cfg.probes.enabled else pd.DataFrame()
        probes = answer_probes(g, probes, cfg.probes, cfg.answered_threshold, pool)  # none asked: none answered
    rows = [r.rows.assign(cell=r.cell.name, split=r.split) for r in [*result.dev, *result.test]]
    cells = CellsFile(
        parent_run_id=parent,
        experiment_id=experiment_id,
        questions=sizes,
        max_new_tokens=g.setup.generation.max_new_tokens,
        few_shot_examples=g.setup.examples,
        standing=result.standing,
        tested=result.tested,
        cells=records,
    )
    write_evaluation(c, [*rows, probes], cells, curves)
    write_json({f"{r.cell}@{r.split}": r.metrics for r in records}, c.metrics("eval"))
    generated = sum(r.generated for r in [*result.dev, *result.test])
    typer.echo(
        f"evaluated {len(result.dev)} cells on {sizes['dev']} dev questions and {len(result.test)} on {sizes['test']} "
        f"test questions; {generated} answers generated (the rest from the prediction cache) (MLflow run {parent})"
    )


def log_cell(parent: str, result, tags: dict, dataset, span_batch: int) -> str:
    """The cell's MLflow run, then that run as a GenAI evaluation on the split's questions (docs/dashboard.md)."""
    from components.evaluation.scores import scored
    from components.tracking import genai

    return genai.log_cell(parent, result, tags, dataset, scored(result.rows.columns), span_batch)
