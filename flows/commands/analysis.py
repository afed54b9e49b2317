"""``ragtune compare``, ``ragtune sweep`` and ``ragtune drill``: analysis beside the pipeline, never a stage."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from flows.common import EXIT_CONFIG, data_version, exits_on, fail, params, root

app = typer.Typer()


@app.command()
def compare(
    experiment: Annotated[str | None, typer.Option(help="MLflow experiment (default: params' experiment)")] = None,
    run: Annotated[str | None, typer.Option("--run", help="pipeline parent run id (default: the latest)")] = None,
) -> None:
    """Print the comparison of a past pipeline run from MLflow: cells, intervals, costs, recommendation."""
    from components import tracking
    from components.decision.compare import comparison

    p = params()
    tracking.connect(root())
    with exits_on(LookupError, ValueError):
        typer.echo(comparison(experiment or p.evaluation.experiment, run, p.evaluation.main_metric))


@app.command()
def sweep() -> None:
    """Ray Tune sweep (ASHA on tune loss) over one adapter's LoRA hyperparameters; proposes the best.

    Reads ``sweep:`` in params/finetune.yaml; writes reports/sweep.md and data/metrics/sweep.json; one
    MLflow parent run with a child per trial. Not a pipeline stage: add the proposed adapter to
    params/finetune.yaml to train it.
    """
    from components import tracking
    from components.catalog import Catalog
    from components.training.sweep import sweep as run_sweep

    p, here, store = params(), root(), _store()
    if p.finetune.sweep is None:
        message = "params/finetune.yaml has `sweep: null`; give it a section to run a sweep (docs/finetuning.md)"
        raise fail(message, EXIT_CONFIG)
    catalog = Catalog(here, p.data.paths)
    tracking.setup_ops(here, p.evaluation.experiment)
    tags = tracking.provenance_tags(here, data_version(here, p.data.paths.raw))
    with exits_on(ValueError, hint=" (params/data.yaml split.dev)"):
        typer.echo(run_sweep(p, catalog, tags, store))


@app.command()
def drill() -> None:
    """Knowledge-update drill: hold documents back, add them as new data, time and score each mix absorbing them."""
    from components import tracking
    from components.catalog import Catalog
    from components.evaluation.drill_run import drill_report

    p, here = params(), root()
    catalog = Catalog(here, p.data.paths)
    markdown, metrics, files = drill_report(p, catalog, _store())
    tracking.setup_ops(here, p.evaluation.experiment)
    run_id = tracking.start_parent(
        f"drill-{time.strftime('%Y%m%d-%H%M%S')}",
        {"drill": p.evaluation.drill.model_dump()},
        tracking.provenance_tags(here, data_version(here, p.data.paths.raw)),
        kind="drill",
    )
    tracking.log_to_run(run_id, metrics=metrics, files=files)
    typer.echo(markdown + f"\nMLflow run {run_id}")


def _store():
    """The object store of ``RAGTUNE_STORAGE_URI`` (None: local folders); a malformed URI exits 2."""
    import os

    from components.storage import ObjectStore

    with exits_on(ValueError, code=EXIT_CONFIG):
        return ObjectStore.from_env(os.environ)
