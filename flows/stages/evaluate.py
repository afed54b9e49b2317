"""``ragtune evaluate``: answer the held-out questions in every grid cell; one MLflow run per cell."""

from __future__ import annotations

import typer

from flows.common import data_version, stage


def main() -> None:
    """Answer the held-out questions in every grid cell; log each cell to MLflow."""
    import time

    import lancedb
    import pandas as pd

    from components import tracking
    from components.catalog import artifacts
    from components.catalog.artifacts import CellRecord, CellsFile, FinetuneFile, ModelInfo
    from components.evaluation.grid import grid, grid_retrievers, select_questions
    from components.evaluation.run import GridSetup, evaluate_grid, retrieve
    from components.io import atomic_path, read_parquet, write_json
    from components.retrieval.open import Embedders, open_retrievers, run_params_of

    s = stage("evaluate")
    p, c, cfg = s.params, s.catalog, s.params.evaluation
    questions = select_questions(read_parquet(c.qa), cfg.split, cfg.max_questions)
    in_grid = [p.retrieval.retriever(n) for n in grid_retrievers(cfg.grid_retrievers, p.retrieval.retrievers)]
    opened = open_retrievers(in_grid, lancedb.connect(str(c.index)), Embedders(p.retrieval.embedders))
    run_params = run_params_of(opened, p.retrieval, p.data.chunkers)
    adapters = {a.name: a for a in p.finetune.adapters}
    setup = GridSetup(
        questions=questions,
        retrieved=retrieve(opened, questions, run_params),
        base_dir=c.base_model,
        adapter_dirs={name: c.adapter(name) for name in adapters},
        adapters=adapters,
        split=cfg.split,
        prompts=cfg.prompts,
        generation=cfg.generation,
        model_info=artifacts.read(ModelInfo, c.metrics("model")).model_dump(),
        training={k: v.model_dump() for k, v in artifacts.read(FinetuneFile, c.metrics("finetune")).root.items()},
        cache_dir=c.prediction_cache,
    )
    experiment_id = tracking.setup(s.root, cfg.experiment)
    tags = tracking.provenance_tags(s.root, data_version(s.root, p.data.paths.raw))
    evaluated = {"split": cfg.split, "max_questions": cfg.max_questions, "grid_retrievers": list(opened)}
    parent = tracking.start_parent(
        f"pipeline-{time.strftime('%Y%m%d-%H%M%S')}",
        {"evaluation": {**evaluated, "generation": cfg.generation.model_dump()}, "questions": len(questions)},
        tags,
    )
    records, rows, generated = [], [], 0
    for result in evaluate_grid(grid(list(adapters), list(opened)), setup):
        run_id = log_cell(parent, result, tags, questions, cfg.split, str(c.qa))
        records.append(CellRecord(**vars(result.cell), cell=result.cell.name, run_id=run_id, metrics=result.metrics))
        rows.append(result.rows.assign(cell=result.cell.name))
        generated += result.generated
    cells = CellsFile(
        parent_run_id=parent, experiment_id=experiment_id, split=cfg.split, questions=len(questions), cells=records
    )
    with atomic_path(c.eval) as out:
        out.mkdir()
        pd.concat(rows, ignore_index=True).to_parquet(out / c.predictions.name, index=False)
        artifacts.write(cells, out / c.cells.name)
    write_json({r.cell: r.metrics for r in records}, c.metrics("eval"))
    typer.echo(
        f"evaluated {len(records)} cells on {len(questions)} {cfg.split} questions, {generated} answers generated "
        f"(the rest from the prediction cache) (MLflow run {parent})"
    )


def log_cell(parent: str, result, tags: dict, qa, split: str, source: str) -> str:
    """The cell's MLflow run, then that run as a GenAI evaluation on the split's questions (docs/dashboard.md)."""
    from components.evaluation.scores import scored
    from components.tracking import genai

    return genai.log_cell(parent, result, tags, genai.split_dataset(qa, split, source), scored(result.rows.columns))
