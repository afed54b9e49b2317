"""``ragtune schedule``, ``ragtune trigger`` and ``ragtune gate``: thin commands over flows/ops.py."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from flows.preflight import ServiceUnreachableError, check_services

ops_app = typer.Typer()


def preflight() -> None:
    """Exit 3 with a clear message when a configured MLflow, Prefect or Ray server does not answer."""
    try:
        check_services(os.environ)
    except ServiceUnreachableError as exc:
        typer.secho(str(exc), fg=typer.colors.RED, err=True)
        raise typer.Exit(3) from exc


@ops_app.command()
def schedule(
    cron: str = typer.Option("0 3 * * 1", help="cron schedule of scheduled-retraining"),
    timezone: str = typer.Option("UTC", help="time zone of the cron schedule"),
    check_every: int = typer.Option(300, help="seconds between new-data checks; 0: none (use `ragtune trigger`)"),
    retries: int = typer.Option(2, help="retries of a transiently failed stage"),
) -> None:
    """Serve the scheduled and on-new-data deployments from this machine (no work pool needed)."""
    preflight()
    from flows.ops import serve_deployments

    serve_deployments(Path.cwd(), cron=cron, timezone=timezone, check_every_s=check_every or None, retries=retries)


@ops_app.command()
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

    root = Path.cwd()
    try:
        check = check_new_data(root)
    except FileNotFoundError as exc:
        typer.secho(str(exc), fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from exc
    if not check.changed and not force:
        typer.echo(f"data/raw unchanged ({check.current}): nothing to run")
        return
    typer.echo(f"data/raw is {check.current}; the last ingest saw {check.recorded or 'nothing'}")
    if os.environ.get("PREFECT_API_URL"):
        run_id, name = start_deployment_run(root, deployment)
        typer.echo(f"started {deployment} run {name} ({run_id})")
    else:
        from flows.pipeline import pipeline

        summary = pipeline(root=str(root))
        typer.echo(f"stages run: {', '.join(summary['ran']) or 'none'}")


@ops_app.command()
def gate(
    margin: float = typer.Option(0.02, help="largest allowed drop of the main metric below the previous champion"),
) -> None:
    """Fail (exit 1) when the new best cell is worse than the previous pipeline run's by more than MARGIN."""
    from components import tracking
    from components.config import ConfigError, load_params
    from components.gate import quality_gate
    from components.io import read_json

    preflight()
    root = Path.cwd()
    try:
        params = load_params(root / "params")
    except ConfigError as exc:
        typer.secho(str(exc), fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from exc
    metric = params.evaluation.main_metric
    best = read_json(root / params.data.paths.metrics / "best.json")
    evaluated = read_json(root / params.data.paths.eval / "cells.json")
    tracking.setup(root, params.evaluation.experiment)
    baseline = tracking.previous_best(params.evaluation.experiment, metric, exclude_run_id=evaluated["parent_run_id"])
    result = quality_gate(float(best[metric]), baseline, margin, metric)
    typer.echo(result.summary())
    if not result.passed:
        raise typer.Exit(1)
