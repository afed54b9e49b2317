"""``ragtune data check`` and ``ragtune data add``: validate new data, then version it with DVC.

Wiring only: the checks live in ``components.data.ingest``, the merge/replace/swap logic in
``components.data.rawdata``; this module resolves paths, calls DVC and prints.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from components.data.errors import DataValidationError
from flows.common import error, fail, params, root

if TYPE_CHECKING:
    from components.data.ingest import IngestResult

data_app = typer.Typer(help="Check new documents and questions, and add them to data/raw (DVC-tracked).")

DOCS_OPTION = typer.Option(None, "--docs", help="folder of documents (md, txt, html, pdf, jsonl; sub-folders kept)")
QA_OPTION = typer.Option(
    None, "--qa", help="QA file: .jsonl or .csv (schema in docs/ingestion.md); without it, questions are generated"
)


def _fail(exc: DataValidationError) -> typer.Exit:
    return fail(str(exc))


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.1f} kB"


def _summary(result: IngestResult) -> str:
    r = result.report
    formats = ", ".join(f"{k.removeprefix('documents_')} {v}" for k, v in r.items() if k.startswith("documents_"))
    dupes = ", ".join(f"{a} = {b}" for a, b in sorted(result.duplicates.items())[:10])
    more = f", ... (+{len(result.duplicates) - 10})" if len(result.duplicates) > 10 else ""
    questions = (
        f"questions: {r['questions']} (train {r['questions_train']}, dev {r['questions_dev']}, "
        f"test {r['questions_test']})"
        if r["questions"]
        else "questions: none (the `questions` stage will generate them from the documents: params/questions.yaml)"
    )
    return "\n".join(
        [
            f"documents: {r['documents']} ({formats})",
            f"duplicate documents dropped: {r['duplicate_documents_dropped']}" + (f" ({dupes}{more})" if dupes else ""),
            questions,
            f"input: {r['input_files']} files, {_size(r['input_bytes'])}",
        ]
    )


def _need_input(docs: Path | None, qa: Path | None) -> None:
    if docs is None and qa is None:
        raise typer.BadParameter("give --docs, --qa or both")


def _split_notes(result: IngestResult, min_groups: int) -> list[str]:
    """Print the split's warnings; return its refusals (dev or test empty)."""
    from components.data.checks import split_problems

    warnings, refusals = split_problems(result.report, min_groups)
    for line in warnings:
        typer.secho(f"warning: {line}", fg=typer.colors.YELLOW, err=True)
    return refusals


@data_app.command()
def check(docs: Path = DOCS_OPTION, qa: Path = QA_OPTION) -> None:
    """Validate a documents folder and a QA file with the ingest rules, and the split they give; write nothing.

    Exits 1 when the split leaves dev or test without a question (nothing could choose or confirm).
    """
    from components.data.ingest import ingest_paths

    _need_input(docs, qa)
    p = params()
    data = p.data
    try:
        result = ingest_paths(docs, qa, data.split, data.max_file_mb)
    except DataValidationError as exc:
        raise _fail(exc) from exc
    typer.echo(_summary(result))
    refusals = _split_notes(result, p.evaluation.statistics.min_groups)
    if refusals:
        typer.secho("refused: " + "; ".join(refusals), fg=typer.colors.RED, err=True)
        raise typer.Exit(1)
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


def _adopt(raw_dir: Path) -> list[str]:
    """Rename the leftovers of ``data add`` named for a live process to this process's id; one line each.

    Called only under the checkout's pipeline lock, which every ``data add`` holds from start to
    end: no update runs now, so a live process with the pid of a leftover's name is another program
    that reused the pid, and the leftover is stranded. Under this process's pid, ``recover_raw``
    treats it as abandoned (it skips the folders of live processes, and would skip it forever).
    """
    import psutil

    notes = []
    for kind in ("new", "old"):
        for path in sorted(raw_dir.parent.glob(f".{raw_dir.name}.{kind}-*")) if raw_dir.parent.is_dir() else []:
            pid, _, rest = path.name.rpartition(f".{kind}-")[2].partition("-")
            if not pid.isdigit() or int(pid) == os.getpid() or not psutil.pid_exists(int(pid)):
                continue  # recover_raw handles it as it is
            target = path.with_name(f".{raw_dir.name}.{kind}-{os.getpid()}" + (f"-{rest}" if rest else ""))
            if not target.exists():
                path.rename(target)
                notes.append(f"{path.name}: its pid {pid} now belongs to another program, not to a `data add`")
    return notes


def _recover(here: Path, raw: str, locked: bool) -> list[str]:
    """Repair what an interrupted ``data add`` left; ``locked``: this process holds the pipeline lock."""
    from components.data.rawdata import recover_raw

    adopted = _adopt(here / raw) if locked else []
    return adopted + recover_raw(here / raw, lambda: _recorded(here, raw))


def _lock(here: Path, name: str):
    """The checkout's pipeline lock (waiting for a run or a ``data add`` that holds it); none outside a DVC repo."""
    import contextlib

    from flows.runguard import pipeline_lock

    if not (here / ".dvc").is_dir():  # outside a DVC repo `dvc add` fails anyway
        return contextlib.nullcontext()
    return pipeline_lock(here, None, lambda m: error(m, typer.colors.YELLOW), name=name)


@data_app.command()
def recover() -> None:
    """Finish or undo an interrupted `ragtune data add`: restore data/raw, remove staged and backup folders."""
    data, here = params().data, root()
    with _lock(here, "data recover"):  # never beside a running `data add` or pipeline
        notes = _recover(here, data.paths.raw, locked=(here / ".dvc").is_dir())
    typer.echo("\n".join(notes) if notes else f"nothing to recover beside {data.paths.raw}")


@data_app.command()
def add(
    docs: Path = DOCS_OPTION,
    qa: Path = QA_OPTION,
    replace: bool = typer.Option(False, "--replace", help="make data/raw exactly these inputs instead of merging"),
) -> None:
    """Check the inputs, merge them into data/raw (or --replace it) atomically, then `dvc add` it.

    Without --qa the documents come in alone: the `questions` stage generates questions from them
    (when data/raw holds no question file); an edited `ragtune questions export` file comes back with --qa.
    """
    _need_input(docs, qa)
    data, here = params().data, root()
    with _lock(here, "data add"):  # never while a pipeline run reads data/raw in this checkout
        _add(data, docs, qa, replace, locked=(here / ".dvc").is_dir())


def _add(data, docs: Path | None, qa: Path | None, replace: bool, locked: bool) -> None:
    from components.data.rawdata import update_raw

    for note in _recover(root(), data.paths.raw, locked):  # what an interrupted earlier `data add` left
        error(note, typer.colors.YELLOW)

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
        raise fail(f"{exc}\n{data.paths.raw} is unchanged") from exc
    if not update.written:
        typer.echo(f"nothing changed: {data.paths.raw} already holds these documents and questions")
        return
    typer.echo(_summary(update.result))
    for line in _split_notes(update.result, params().evaluation.statistics.min_groups):
        typer.secho(f"warning: {line}", fg=typer.colors.YELLOW, err=True)
    typer.echo(update.change.summary())
    typer.echo(
        f"{'replaced' if replace else 'merged into'} {data.paths.raw}; recorded in {data.paths.raw}.dvc "
        f"(commit it with git; `dvc push` uploads the data)"
    )
