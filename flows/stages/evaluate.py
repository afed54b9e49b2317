"""``ragtune evaluate``: every grid cell on dev, the cells dev left standing on test; one MLflow run each."""

from __future__ import annotations

import os
import time

import typer

from flows.common import EXIT_CONFIG, data_version, exits_on, stage


def main() -> None:
    """Answer the dev questions in every grid cell, then the test questions in the cells not clearly worse."""
    import pandas as pd

    from components import tracking
    from components.catalog import artifacts
    from components.catalog.artifacts import CellRecord, CellsFile, CurvesFile
    from components.evaluation.curves import score_curves
    from components.evaluation.prepare import prepare_grid
    from components.evaluation.protocol import run_protocol
    from components.io import atomic_path, write_json
    from components.storage import ObjectStore

    s = stage("evaluate")
    with exits_on(ValueError, code=EXIT_CONFIG):
        store = ObjectStore.from_env(os.environ)
    p, c, cfg = s.params, s.catalog, s.params.evaluation
    g = prepare_grid(p, c, store)
    experiment_id = tracking.setup(s.root, cfg.experiment)
    tags = tracking.provenance_tags(s.root, data_version(s.root, p.data.paths.raw))
    sizes = {split: len(q) for split, q in g.splits.items()}
    run_params = {"evaluation": {"max_questions": cfg.max_questions, "cells": len(g.cells)}, "questions": sizes}
    parent = tracking.start_parent(f"pipeline-{time.strftime('%Y%m%d-%H%M%S')}", run_params, tags)
    records = []

    def log(result) -> None:
        name, cell_tags = result.cell.name, {**tags, "ragtune.split": result.split, "ragtune.node": result.node}
        run_id = log_cell(parent, result, cell_tags, g.splits[result.split], result.split, str(c.qa))
        records.append(
            CellRecord(**vars(result.cell), cell=name, split=result.split, run_id=run_id, metrics=result.metrics)
        )

    result = run_protocol(
        g.cells, g.splits, g.retrievers, g.run_params, g.setup, cfg.statistics, cfg.main_metric, g.groups, log
    )
    curves = score_curves(g, c.curve, g.splits["dev"].head(cfg.learning_curve.dev_questions), cfg.main_metric)
    rows = [r.rows.assign(cell=r.cell.name, split=r.split) for r in [*result.dev, *result.test]]
    cells = CellsFile(
        parent_run_id=parent,
        experiment_id=experiment_id,
        questions=sizes,
        max_new_tokens=g.setup.generation.max_new_tokens,
        few_shot_examples=g.setup.examples,
        standing=result.standing,
        cells=records,
    )
    with atomic_path(c.eval) as out:
        out.mkdir()
        pd.concat(rows, ignore_index=True).to_parquet(out / c.predictions.name, index=False)
        artifacts.write(cells, out / c.cells.name)
        artifacts.write(CurvesFile(curves), out / c.curves_file.name)
    write_json({f"{r.cell}@{r.split}": r.metrics for r in records}, c.metrics("eval"))
    generated = sum(r.generated for r in [*result.dev, *result.test])
    typer.echo(
        f"evaluated {len(result.dev)} cells on {sizes['dev']} dev questions and {len(result.test)} on {sizes['test']} "
        f"test questions; {generated} answers generated (the rest from the prediction cache) (MLflow run {parent})"
    )


def log_cell(parent: str, result, tags: dict, qa, split: str, source: str) -> str:
    """The cell's MLflow run, then that run as a GenAI evaluation on the split's questions (docs/dashboard.md)."""
    from components.evaluation.scores import scored
    from components.tracking import genai

    return genai.log_cell(parent, result, tags, genai.split_dataset(qa, split, source), scored(result.rows.columns))
