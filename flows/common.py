"""What every command shares: the project root, its params and catalog, exit codes, the data version.

A stage gets its params through :func:`stage`: a view that allows only the keys ``dvc.yaml``
declares for that stage (``components.config.view``), so a stage cannot depend on a value DVC does
not watch.

Exit codes (the contract the Prefect flow's retry rule reads, see docs/operations.md):
0 success; 1 a deterministic failure (bad input data, a bug, a refused gate); 2 bad params or
usage; 3 a configured server did not answer (before a run starts); 75 a transient failure worth
retrying: the network, a server's 5xx answer, DVC's repository lock held by another process.
:func:`is_transient_error` says which exceptions are transient; :func:`classified` makes a
command exit 75 on them.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer
import yaml

from components.catalog import Catalog
from components.config import ConfigError, Params, load_params, restrict
from components.redact import redact

EXIT_FAILED = 1
EXIT_CONFIG = 2
EXIT_UNREACHABLE = 3
EXIT_TRANSIENT = 75  # sysexits EX_TEMPFAIL


def root() -> Path:
    """The project: the current directory (dvc.yaml runs every stage there)."""
    return Path.cwd()


def error(message: str, color: str = typer.colors.RED) -> None:
    """Print ``message`` on stderr (red by default), the credentials of any URL in it redacted."""
    typer.secho(redact(message), fg=color, err=True)


def fail(message: str, code: int = EXIT_FAILED) -> typer.Exit:
    """Print ``message`` in red on stderr (see :func:`error`); the ``typer.Exit`` to raise."""
    error(message)
    return typer.Exit(code)


def params(at: Path | None = None) -> Params:
    """All of ``params/``; exit 2 with every bad key named."""
    try:
        return load_params((at or root()) / "params")
    except ConfigError as exc:
        raise fail(str(exc), EXIT_CONFIG) from exc


def declared_params(dvc_yaml: Path, stage: str) -> list[str]:
    """The params keys dvc.yaml lists for ``stage``, dotted from the file stem (``evaluation.generation``)."""
    with dvc_yaml.open(encoding="utf-8") as f:
        stages = (yaml.safe_load(f) or {}).get("stages", {})
    if stage not in stages:
        raise KeyError(f"{dvc_yaml} has no stage {stage!r}")
    keys = []
    for entry in stages[stage].get("params", []):
        items = entry.items() if isinstance(entry, dict) else [("params.yaml", [entry])]
        for file, names in items:
            keys += [f"{Path(file).stem}.{name}" for name in names]
    return keys


@dataclass(frozen=True)
class Stage:
    """A pipeline stage's view of the project."""

    name: str
    root: Path
    params: Any  # a restricted view of Params: only the keys dvc.yaml declares for the stage
    catalog: Catalog


def stage(name: str) -> Stage:
    """The context of stage ``name`` (as dvc.yaml spells it) in the current project."""
    here = root()
    loaded = params(here)
    if not (here / "dvc.yaml").is_file():
        message = f"{here} has no dvc.yaml: run `ragtune {name.replace('_', '-')}` from the project's root"
        raise fail(message, EXIT_CONFIG)
    view = restrict(loaded, declared_params(here / "dvc.yaml", name), name)
    return Stage(name, here, view, Catalog(here, loaded.data.paths))


def data_version(project: Path, raw: str) -> str:
    """DVC's hash of the raw data, as recorded by the last `ingest` in dvc.lock ("untracked" if none)."""
    lock = project / "dvc.lock"
    if not lock.is_file():
        return "untracked"
    with lock.open(encoding="utf-8") as f:
        stages = (yaml.safe_load(f) or {}).get("stages", {})
    for dep in stages.get("ingest", {}).get("deps", []):
        if dep.get("path") == raw:
            return str(dep.get("md5", "untracked"))
    return "untracked"


@contextlib.contextmanager
def exits_on(*errors: type[BaseException], code: int = EXIT_FAILED, hint: str = "") -> Iterator[None]:
    """Turn the expected ``errors`` of a command into a red message and exit ``code`` (no traceback)."""
    try:
        yield
    except errors as exc:
        raise fail(f"{exc}{hint}", code) from exc


@contextlib.contextmanager
def exits_classified(what: str, accept: Callable[[BaseException], bool], outcome: str = "") -> Iterator[None]:
    """One red line and the contract's exit code for an error of the block that ``accept`` says is expected.

    The line is ``what: <the error>; outcome`` ("gate: cannot judge X: ...; ragtune-qa@champion stays
    where it was"). Exit 75 when a rerun may succeed (the network, a 5xx, the alias moved meanwhile),
    else 1 (a refusal: 401/403, a 404 that is not MLflow's, an unloadable champion). A traceback would
    bury the one thing to say: what happened to the alias.
    """
    try:
        yield
    except (typer.Exit, typer.Abort, KeyboardInterrupt):
        raise
    except Exception as exc:
        if not accept(exc):
            raise
        code = EXIT_TRANSIENT if is_transient_error(exc) else EXIT_FAILED
        raise fail(f"{what}: {one_line(exc)}" + (f"; {outcome}" if outcome else ""), code) from exc


def one_line(exc: BaseException, limit: int = 400) -> str:
    """The first line of ``exc``'s message (its type when it has none), at most ``limit`` characters."""
    text = str(exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    return first if len(first) <= limit else first[: limit - 3] + "..."


def _transient_one(exc: BaseException) -> bool:
    """One exception, not its causes: a network failure, a 5xx answer, DVC's lock held elsewhere."""
    if isinstance(exc, ConnectionError | TimeoutError):  # refused, reset, timed out (builtin OSErrors)
        return True
    if getattr(exc, "transient", None) is True:  # an error that says so itself (flows.pull.PullError)
        return True
    names = {f"{c.__module__}.{c.__qualname__}" for c in type(exc).__mro__}
    if names & {
        "requests.exceptions.ConnectionError",
        "requests.exceptions.Timeout",
        "requests.exceptions.RetryError",  # the client's retries of 5xx answers ran out
        "urllib3.exceptions.ProtocolError",
        "urllib3.exceptions.MaxRetryError",
        "dvc.lock.LockError",  # another DVC process holds the repository lock
    }:
        return True
    # MLflow: a server's 5xx answer (RestException carries the server's JSON error; a bare MlflowException
    # says "API request ... failed"); its other exceptions default to 500 without any server involved
    status = getattr(exc, "get_http_status_code", None)
    answered = "mlflow.exceptions.RestException" in names or str(exc).startswith("API request")
    return callable(status) and answered and status() >= 500


def is_transient_error(exc: BaseException | None) -> bool:
    """Whether ``exc`` or anything it was raised from is transient (worth retrying the same command)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if _transient_one(exc):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def classified(command: Callable[..., None]) -> Callable[..., None]:
    """``command``, exiting 75 (no traceback) on a transient failure; other failures keep their exit code."""

    @functools.wraps(command)  # typer reads the options from the wrapped signature
    def run(*args, **kwargs) -> None:
        try:
            command(*args, **kwargs)
        except (typer.Exit, typer.Abort, KeyboardInterrupt):
            raise
        except Exception as exc:
            if is_transient_error(exc):
                raise fail(
                    f"transient failure, worth a retry: {type(exc).__name__}: {one_line(exc)}", EXIT_TRANSIENT
                ) from exc
            raise

    return run
