"""``ragtune run`` (the whole pipeline as a Prefect flow) and ``ragtune ui`` (the MLflow UI)."""

from __future__ import annotations

import os
import subprocess
import sys

import typer

from flows.common import params, root
from flows.preflight import preflight

app = typer.Typer()


@app.command()
def run(force: bool = typer.Option(False, help="re-run every stage even if nothing changed")) -> None:
    """Run the whole pipeline as a Prefect flow; DVC skips the stages whose inputs did not change."""
    preflight()  # before the heavy imports: an unreachable server is reported in seconds
    from components.catalog import Catalog
    from flows.pipeline import pipeline

    here = root()
    summary = pipeline(root=str(here), force=force)
    board = Catalog(here, params(here).data.paths).leaderboard
    if board.is_file():
        typer.echo(board.read_text(encoding="utf-8"))
    typer.echo(f"stages run: {', '.join(summary['ran']) or 'none'}; skipped: {', '.join(summary['skipped']) or 'none'}")


@app.command()
def ui(port: int = typer.Option(5000, help="port on 127.0.0.1")) -> None:
    """Open the MLflow UI on the default store (or MLFLOW_TRACKING_URI) at http://127.0.0.1:PORT."""
    from components import tracking

    here = root()
    uri = os.environ.get("MLFLOW_TRACKING_URI") or tracking.default_tracking_uri(here)
    cmd = [sys.executable, "-m", "mlflow", "ui", "--host", "127.0.0.1", "--port", str(port), "--backend-store-uri", uri]
    if not os.environ.get("MLFLOW_TRACKING_URI"):
        cmd += ["--default-artifact-root", str((here / tracking.DEFAULT_ARTIFACTS).resolve())]
    typer.echo(f"MLflow UI on http://127.0.0.1:{port} (store {uri}); Ctrl-C to stop")
    tracking.connect(here)
    for view, url in tracking.urls(f"http://127.0.0.1:{port}", params(here).evaluation.experiment).items():
        typer.echo(f"  {view}: {url}")  # docs/dashboard.md
    raise typer.Exit(subprocess.call(cmd))
