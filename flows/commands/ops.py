"""``ragtune schedule``, ``ragtune trigger`` and ``ragtune gate``: thin commands over flows/ops.py."""

from __future__ import annotations

import os

import typer

from flows.common import params, root
from flows.preflight import preflight

app = typer.Typer()


@app.command()
def schedule(
    cron: str = typer.Option("0 3 * * 1", help="cron schedule of scheduled-retraining"),
    timezone: str = typer.Option("UTC", help="time zone of the cron schedule"),
    check_every: int = typer.Option(300, help="seconds between new-data checks; 0: none (use `ragtune trigger`)"),
) -> None:
    """Serve the scheduled and on-new-data deployments from this machine (no work pool needed)."""
    preflight()
    from flows.ops import serve_deployments

    serve_deployments(root(), cron=cron, timezone=timezone, check_every_s=check_every or None)


@app.command()
def trigger(
    force: bool = typer.Option(False, help="start a run even if data/raw is unchanged"),
    deployment: str = typer.Option("ragtune/on-new-data", help="deployment to run when PREFECT_API_URL is set"),
) -> None:
    """Start the pipeline when DVC's hash of data/raw differs from the one the last ingest recorded.

    With PREFECT_API_URL set it creates a run of the on-new-data deployment (served by `ragtune
    schedule` or a worker) and returns; otherwise it runs the flow here.
    """
    preflight()  # before the heavy imports (prefect, dvc)
    from flows.ops import check_new_data, start_deployment_run

    here = root()
    try:
        check = check_new_data(here)
    except FileNotFoundError as exc:
        typer.secho(str(exc), fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from exc
    if not check.changed and not force:
        typer.echo(f"data/raw unchanged ({check.current}): nothing to run")
        return
    typer.echo(f"data/raw is {check.current}; the last ingest saw {check.recorded or 'nothing'}")
    if os.environ.get("PREFECT_API_URL"):
        run_id, name = start_deployment_run(here, deployment)
        typer.echo(f"started {deployment} run {name} ({run_id})")
    else:
        from flows.pipeline import pipeline

        summary = pipeline(root=str(here))
        typer.echo(f"stages run: {', '.join(summary['ran']) or 'none'}")


@app.command()
def gate(
    margin: float = typer.Option(0.02, help="largest allowed drop of the main metric below the previous champion"),
) -> None:
    """Fail (exit 1) when the new best cell is worse than the previous pipeline run's by more than MARGIN."""
    from components import tracking
    from components.catalog import Catalog, artifacts
    from components.catalog.artifacts import BestFile
    from components.decision.gate import quality_gate

    preflight()
    here = root()
    p = params(here)
    metric = p.evaluation.main_metric
    best = artifacts.read(BestFile, Catalog(here, p.data.paths).metrics("best"))
    tracking.setup(here, p.evaluation.experiment)
    baseline = tracking.previous_best(p.evaluation.experiment, metric, exclude_run_id=best.parent_run_id)
    result = quality_gate(best.best.mean, baseline, margin, metric)
    typer.echo(result.summary())
    if not result.passed:
        raise typer.Exit(1)
