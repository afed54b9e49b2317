"""``ragtune data check`` and ``ragtune data add``: validate new data, then version it with DVC.

Wiring only: the checks live in ``components.data.ingest``, the merge/replace/swap logic in
``components.data.rawdata``; this module resolves paths, calls DVC and prints.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from components.data.errors import DataValidationError
from flows.common import params, root

if TYPE_CHECKING:
    from components.data.ingest import IngestResult

data_app = typer.Typer(help="Check new documents and questions, and add them to data/raw (DVC-tracked).")

DOCS_OPTION = typer.Option(..., "--docs", help="folder of documents (md, txt, html, pdf, jsonl; sub-folders kept)")
QA_OPTION = typer.Option(..., "--qa", help="QA file: .jsonl or .csv (schema in data/README.md)")


def _fail(exc: DataValidationError) -> typer.Exit:
    typer.secho(str(exc), fg=typer.colors.RED, err=True)
    return typer.Exit(1)


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.1f} kB"


def _summary(result: IngestResult) -> str:
    r = result.report
    formats = ", ".join(f"{k.removeprefix('documents_')} {v}" for k, v in r.items() if k.startswith("documents_"))
    dupes = ", ".join(f"{a} = {b}" for a, b in sorted(result.duplicates.items())[:10])
    more = f", ... (+{len(result.duplicates) - 10})" if len(result.duplicates) > 10 else ""
    return "\n".join(
        [
            f"documents: {r['documents']} ({formats})",
            f"duplicate documents dropped: {r['duplicate_documents_dropped']}" + (f" ({dupes}{more})" if dupes else ""),
            f"questions: {r['questions']} (train {r['questions_train']}, dev {r['questions_dev']}, "
            f"test {r['questions_test']})",
            f"input: {r['input_files']} files, {_size(r['input_bytes'])}",
        ]
    )


@data_app.command()
def check(docs: Path = DOCS_OPTION, qa: Path = QA_OPTION) -> None:
    """Validate a documents folder and a QA file with the ingest rules; write nothing."""
    from components.data.ingest import ingest_paths

    data = params().data
    try:
        result = ingest_paths(docs, qa, data.split, data.max_file_mb)
    except DataValidationError as exc:
        raise _fail(exc) from exc
    typer.echo(_summary(result))
    typer.echo("ok: no problems found (nothing was written)")


def _recorded(here: Path, raw: str) -> bool:
    """Whether the raw folder is exactly what ``<raw>.dvc`` records (``dvc add`` completed)."""
    import yaml

    from flows.datahash import raw_data_hash

    pointer = here / f"{raw}.dvc"
    if not pointer.is_file():
        return False
    outs = (yaml.safe_load(pointer.read_text(encoding="utf-8")) or {}).get("outs") or [{}]
    return outs[0].get("md5") == raw_data_hash(here)


def _recover(here: Path, raw: str) -> list[str]:
    from components.data.rawdata import recover_raw

    return recover_raw(here / raw, lambda: _recorded(here, raw))


@data_app.command()
def recover() -> None:
    """Finish or undo an interrupted `ragtune data add`: restore data/raw, remove staged and backup folders."""
    data = params().data
    notes = _recover(root(), data.paths.raw)
    typer.echo("\n".join(notes) if notes else f"nothing to recover beside {data.paths.raw}")


@data_app.command()
def add(
    docs: Path = DOCS_OPTION,
    qa: Path = QA_OPTION,
    replace: bool = typer.Option(False, "--replace", help="make data/raw exactly these inputs instead of merging"),
) -> None:
    """Check the inputs, merge them into data/raw (or --replace it) atomically, then `dvc add` it."""
    import contextlib

    from flows.runguard import pipeline_lock

    data, here = params().data, root()
    waiting = lambda m: typer.secho(m, fg=typer.colors.YELLOW, err=True)  # noqa: E731
    # never while a pipeline run reads data/raw in this checkout (outside a DVC repo `dvc add` fails anyway)
    lock = pipeline_lock(here, None, waiting, name="data add") if (here / ".dvc").is_dir() else contextlib.nullcontext()
    with lock:
        _add(data, docs, qa, replace)


def _add(data, docs: Path, qa: Path, replace: bool) -> None:
    from components.data.rawdata import update_raw

    for note in _recover(root(), data.paths.raw):  # what an interrupted earlier `data add` left
        typer.secho(note, fg=typer.colors.YELLOW, err=True)

    def dvc_add() -> None:
        cmd = [sys.executable, "-m", "dvc", "add", data.paths.raw]
        proc = subprocess.run(cmd, cwd=root(), capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"`dvc add {data.paths.raw}` failed:\n{proc.stderr or proc.stdout}")

    try:
        update = update_raw(root() / data.paths.raw, docs, qa, data.split, data.max_file_mb, replace, dvc_add)
    except DataValidationError as exc:
        raise _fail(exc) from exc
    except RuntimeError as exc:
        typer.secho(f"{exc}\n{data.paths.raw} is unchanged", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from exc
    if not update.written:
        typer.echo(f"nothing changed: {data.paths.raw} already holds these documents and questions")
        return
    typer.echo(_summary(update.result))
    typer.echo(update.change.summary())
    typer.echo(
        f"{'replaced' if replace else 'merged into'} {data.paths.raw}; recorded in {data.paths.raw}.dvc "
        f"(commit it with git; `dvc push` uploads the data)"
    )
