"""``ragtune schedule``, ``ragtune trigger`` and ``ragtune ci``: thin commands over flows/ops.py, flows/ci.py."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from flows.common import EXIT_CONFIG, data_version, fail, params, root
from flows.preflight import preflight

app = typer.Typer()


@app.command()
def schedule(
    cron: str = typer.Option("0 3 * * 1", help="cron schedule of scheduled-retraining"),
    timezone: str = typer.Option("UTC", help="time zone of the cron schedule"),
    check_every: int = typer.Option(300, help="seconds between new-data checks; 0: none (use `ragtune trigger`)"),
    pull: bool = typer.Option(False, help="each run first pulls (git pull --ff-only, dvc pull of the raw data)"),
) -> None:
    """Serve the scheduled and on-new-data deployments from this machine (no work pool needed).

    Needs a Prefect server (PREFECT_API_URL): Prefect does not run schedules on its ephemeral API.
    """
    if not os.environ.get("PREFECT_API_URL"):
        message = (
            "ragtune schedule needs a Prefect server: Prefect does not run schedules on its ephemeral API, so "
            "nothing would ever fire. Start one (`prefect server start`, or infra/compose.yaml) and set "
            "PREFECT_API_URL=http://HOST:4200/api, then run this again."
        )
        raise fail(message, EXIT_CONFIG)
    preflight()
    from flows.ops import serve_deployments

    serve_deployments(cron=cron, timezone=timezone, check_every_s=check_every or None, pull=pull)


@app.command()
def trigger(
    force: bool = typer.Option(False, help="start a run even if data/raw is unchanged"),
    deployment: str = typer.Option("ragtune/on-new-data", help="deployment to run when PREFECT_API_URL is set"),
) -> None:
    """Start the pipeline when DVC's hash of data/raw differs from the one the last ingest recorded.

    With PREFECT_API_URL set it creates a run of the on-new-data deployment (served by `ragtune
    schedule` or a worker, in its own checkout) and returns; otherwise it runs the flow here.
    """
    preflight()  # before the heavy imports (prefect, dvc)
    from flows.ops import check_new_data, start_deployment_run

    here = root()
    try:
        check = check_new_data(here)
    except FileNotFoundError as exc:
        raise fail(str(exc)) from exc
    if not check.changed and not force:
        typer.echo(f"data/raw unchanged ({check.current}): nothing to run")
        return
    typer.echo(f"data/raw is {check.current}; the last ingest saw {check.recorded or 'nothing'}")
    if os.environ.get("PREFECT_API_URL"):
        run_id, name = start_deployment_run(check.current, deployment)
        typer.echo(f"started {deployment} run {name} ({run_id})")
    else:
        from flows.commands.run import run_pipeline

        run_pipeline(here)


@app.command()
def ci(
    overrides: Annotated[
        list[str] | None,
        typer.Option("--set", "-S", help="CI profile: a params override as `dvc exp run -S` takes it (repeatable)"),
    ] = None,
    summary: Annotated[
        Path | None, typer.Option(help="append the markdown summary here (default: $GITHUB_STEP_SUMMARY)")
    ] = None,
    pull: Annotated[
        bool, typer.Option(help="first git pull --ff-only (on a branch with an upstream) and dvc pull")
    ] = True,
) -> None:
    """CI on new data in one command: pull -> pipeline (CI profile) -> gate -> register on a pass -> summary.

    The overrides are written into params/ (run it in a CI checkout); the pipeline is `ragtune run`'s
    flow, whose register stage holds the gate. A pull request (GITHUB_EVENT_NAME) or a CI profile
    (any --set) is judge-only, whatever the overrides say: only a run of the team's committed params
    registers. Exit code: the pipeline's (1 when the gate refuses).
    """
    preflight()
    from components.catalog import Catalog
    from flows import ci as ci_parts
    from flows.commands.run import PipelineFailed, run_pipeline

    here = root()
    run = ci_parts.CiRun(judge_only=ci_parts.judge_only_reason(os.environ.get("GITHUB_EVENT_NAME"), overrides or []))
    try:
        run.overrides = ci_parts.apply_overrides(here, overrides or [])
        if run.judge_only:  # applied last, on its own: no override can turn it off
            ci_parts.apply_overrides(here, [ci_parts.JUDGE_ONLY])
    except ci_parts.OverrideError as exc:
        raise fail(str(exc), EXIT_CONFIG) from exc
    loaded = params(here)  # validates the overridden params (exit 2)
    if run.judge_only:
        if not loaded.evaluation.gate.judge_only:  # never: the override above wrote it
            raise fail(f"ragtune ci: {run.judge_only}, but gate.judge_only is not set", EXIT_CONFIG)
        typer.echo(f"judge only: {run.judge_only}")
    catalog = Catalog(here, loaded.data.paths)
    try:
        result = run_pipeline(here, pull=pull)
        run.stages_run, run.stages_skipped = result["ran"], result["skipped"]
    except PipelineFailed as exc:
        run.exit_code, run.failure = exc.exit_code, exc.message
    text = ci_parts.summary(
        run,
        catalog.metrics("gate"),
        catalog.metrics("registry"),
        catalog.leaderboard,
        data_version(here, catalog.paths.raw),
    )
    target = summary or (Path(os.environ["GITHUB_STEP_SUMMARY"]) if os.environ.get("GITHUB_STEP_SUMMARY") else None)
    if target is not None:
        with target.open("a", encoding="utf-8") as f:
            f.write(text)
    typer.echo(text)
    raise typer.Exit(run.exit_code)
