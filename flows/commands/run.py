"""``ragtune run`` (the whole pipeline as a Prefect flow) and ``ragtune ui`` (the MLflow UI)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import typer

from flows.common import error, params, root
from flows.preflight import preflight

app = typer.Typer()


class PipelineFailed(typer.Exit):
    """The flow failed: its exit code follows the exit-code contract (flows/common.py), ``message`` says why."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(code)
        self.message = message


def run_pipeline(here: Path, force: bool = False, pull: bool = False) -> dict:
    """Run the flow in this process; on failure print why in red and raise :class:`PipelineFailed`."""
    from components.redact import redact_logging
    from flows.pipeline import MissingRawDataError, exit_code, pipeline, require_raw, stage_exit_code

    redact_logging()  # Prefect configured its own handlers when it was imported
    try:
        if not pull:
            require_raw(here)  # before Prefect starts: a missing data/raw is reported in a second
        return pipeline(root=str(here), force=force, pull=pull)
    except Exception as exc:
        code = 1 if isinstance(exc, MissingRawDataError) else exit_code(exc)
        stage_code = stage_exit_code(exc)
        message = f"pipeline failed: {exc}" + (f" (the stage exited with {stage_code})" if stage_code else "")
        error(message)
        raise PipelineFailed(message, code) from exc


@app.command()
def run(
    force: bool = typer.Option(False, help="re-run every stage even if nothing changed"),
    demo: bool = typer.Option(False, help="copy the bundled demo set into data/raw first, if data/raw is absent"),
) -> None:
    """Run the whole pipeline as a Prefect flow; DVC skips the stages whose inputs did not change.

    Without data/raw it stops and says where data comes from (`dvc pull`, `ragtune data add`);
    the demo set is copied in only with --demo (`make run` passes it).
    """
    preflight()  # before the heavy imports: an unreachable server is reported in seconds
    from components.catalog import Catalog

    here = root()
    catalog = Catalog(here, params(here).data.paths)
    if demo:
        from components.data.demo import seed_from_demo

        copied = seed_from_demo(catalog.demo, catalog.raw)
        typer.echo(
            f"--demo: copied the bundled demo set into {catalog.raw}"
            if copied
            else f"--demo: {catalog.raw} exists, so it is used as it is (the demo is copied only into an absent one)"
        )
    summary = run_pipeline(here, force=force)
    if catalog.leaderboard.is_file():
        typer.echo(catalog.leaderboard.read_text(encoding="utf-8"))
    typer.echo(f"stages run: {', '.join(summary['ran']) or 'none'}; skipped: {', '.join(summary['skipped']) or 'none'}")


@app.command()
def ui(port: int = typer.Option(5000, help="port on 127.0.0.1")) -> None:
    """Open the MLflow UI on the default store (or MLFLOW_TRACKING_URI) at http://127.0.0.1:PORT."""
    from components import tracking
    from components.redact import redact

    here = root()
    uri = os.environ.get("MLFLOW_TRACKING_URI") or tracking.default_tracking_uri(here)
    cmd = [sys.executable, "-m", "mlflow", "ui", "--host", "127.0.0.1", "--port", str(port), "--backend-store-uri", uri]
    if not os.environ.get("MLFLOW_TRACKING_URI"):
        cmd += ["--default-artifact-root", str((here / tracking.DEFAULT_ARTIFACTS).resolve())]
    typer.echo(f"MLflow UI on http://127.0.0.1:{port} (store {redact(uri)}); Ctrl-C to stop")
    tracking.connect(here)
    for view, url in tracking.urls(f"http://127.0.0.1:{port}", params(here).evaluation.experiment).items():
        typer.echo(f"  {view}: {url}")  # docs/dashboard.md
    raise typer.Exit(subprocess.call(cmd))
