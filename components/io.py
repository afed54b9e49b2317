"""Reading and writing at the edges: atomic writes, parquet tables, JSON files.

A stage that fails must leave the previous output intact, so every write goes to a temporary
sibling first and is renamed into place only once it is complete.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd


def _pid_alive(pid: int) -> bool:
    """Whether process ``pid`` still runs. A zombie does not: a killed writer whose parent died too stays
    one wherever PID 1 does not reap orphans (a container's init), and would keep its temporaries forever."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # no procfs (macOS), or it ended just now: trust the signal
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"  # the state field follows the command name


def remove_stale_temps(path: Path | str) -> list[Path]:
    """Remove what a killed writer of ``path`` left beside it; return what was removed.

    :func:`atomic_path` names its temporaries ``.<name>.<pid>.<random>.tmp`` and ``.<name>.old-<pid>``;
    a process killed with SIGKILL cannot clean them up, so the next writer removes those whose
    process is gone (a live writer's are kept).
    """
    path = Path(path)
    removed = []
    if not path.parent.is_dir():
        return removed
    for entry in path.parent.glob(f".{path.name}.*"):
        middle = entry.name[len(path.name) + 2 :]
        pid_text = middle.removeprefix("old-") if middle.startswith("old-") else middle.split(".", 1)[0]
        if not pid_text.isdigit() or (not middle.startswith("old-") and not entry.name.endswith(".tmp")):
            continue
        if _pid_alive(int(pid_text)):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


@contextlib.contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it onto ``path`` only if the block succeeds.

    Works for files and directories alike: whatever the block creates at the yielded path
    replaces ``path``. On error the temporary is removed and ``path`` is untouched. Temporaries
    left by a killed earlier writer are removed first (:func:`remove_stale_temps`).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent))
    target = tmp / path.name
    try:
        yield target
        if not target.exists():
            raise FileNotFoundError(f"nothing was written for {path}")
        if path.is_dir() and not path.is_symlink():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            path.rename(old)
            target.rename(path)
            shutil.rmtree(old)
        else:
            os.replace(target, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_parquet(df: pd.DataFrame, path: Path | str) -> None:
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False)


def read_parquet(path: Path | str) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run the stage that writes it first")
    return pd.read_parquet(path)


def write_json(obj: Any, path: Path | str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")


def read_json(path: Path | str) -> Any:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run the stage that writes it first")
    with path.open(encoding="utf-8") as f:
        return json.load(f)


def write_text(text: str, path: Path | str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def replace_section(path: Path | str, name: str, body: str) -> None:
    """Put ``body`` between the markers ``<!-- name -->`` and ``<!-- /name -->`` of a text file.

    Generated figures in the docs (benchmarks, reports, the mutation table) live between such
    markers; the rest of the file is left as it is.

    Raises:
        SystemExit: the file lacks either marker (naming the file and the markers).
    """
    path = Path(path)
    start, end = f"<!-- {name} -->", f"<!-- /{name} -->"
    text = path.read_text(encoding="utf-8")
    if start not in text or end not in text:
        raise SystemExit(f"{path} has no {start} ... {end} section")
    before, rest = text.split(start, 1)
    _, after = rest.split(end, 1)
    write_text(f"{before}{start}{body}{end}{after}", path)


def dir_hash(path: Path) -> str:
    """SHA-256 over the relative names and bytes of every file under ``path``, in sorted order.

    The content identity of a model or adapter folder (prediction cache keys, registry bundles).
    """
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(file.relative_to(path).as_posix().encode())
        with file.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()
