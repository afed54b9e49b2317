"""Run a command that cannot see the driver's temporary files, wherever the project itself lives.

The command runs in its own mount namespace (``unshare --mount``): a fresh tmpfs covers ``/tmp``
and this process's temp dir, then the folders the command needs (the project's checkout, its
venv, the Python install: its import path) are bound back from the real tree, and the caller's
private folders (pytest's base temp) are covered again, even where they lie inside one of those.
So a checkout under ``/tmp`` still runs, while the driver's files beside it stay out of sight.

Before the command starts, the wrapper checks its own view, and exits 3 with a message naming the
path if a file the driver wrote into a hidden folder still shows, or a needed folder does not.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

# root (or CAP_SYS_ADMIN) first; else an unprivileged user namespace where the caller maps to root
UNSHARE = (
    ("unshare", "--mount", "--propagation", "private"),
    ("unshare", "--user", "--map-root-user", "--mount", "--propagation", "private"),
)
MISSING = (
    "no private mount namespace for the isolated Ray node: `unshare --mount` needs root (or CAP_SYS_ADMIN) "
    "or unprivileged user namespaces (util-linux `unshare`)"
)
MARKER = ".ragtune-driver-only"  # a file the driver writes into each folder it hides


@functools.cache
def namespace_prefix() -> tuple[str, ...] | None:
    """The ``unshare`` command under which a child can mount a tmpfs over ``/tmp`` here; None if none can."""
    if shutil.which("unshare") is None:
        return None
    for prefix in UNSHARE:
        if subprocess.run([*prefix, "mount", "-t", "tmpfs", "tmpfs", "/tmp"], capture_output=True).returncode == 0:
            return prefix
    return None


def python_needs(env: dict[str, str]) -> list[Path]:
    """The folders a process of this interpreter needs: ``PYTHONPATH`` of ``env``, ``sys.path``, the venv
    and the Python install (each also as its resolved path, for symlinked installs)."""
    found = [*env.get("PYTHONPATH", "").split(os.pathsep), *sys.path, sys.prefix, sys.base_prefix]
    return _both(Path(p) for p in found if p and Path(p).is_dir())


def _both(paths: Iterable[Path]) -> list[Path]:
    """Each path as given (made absolute) and resolved, once."""
    paths = [Path(p).absolute() for p in paths]
    return list(dict.fromkeys([*paths, *(p.resolve() for p in paths)]))


def _under(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _outermost(paths: Iterable[Path]) -> list[Path]:
    paths = sorted(set(paths), key=lambda p: len(p.parts))
    return [p for i, p in enumerate(paths) if not any(_under(p, q) for q in paths[:i])]


def _script(temp: list[Path], hide: list[Path], keep: list[Path], markers: list[Path]) -> str:
    """The bash that builds the private view, checks it, then runs the command (its ``$@``) in its place."""
    q = shlex.quote
    temp = _outermost(temp)
    binds = _outermost(k for k in keep if any(_under(k, t) for t in temp))
    # covered again after the binds: a hidden folder inside a bound one, or one that no tmpfs covers
    again = [
        h
        for h in sorted(set(hide) - set(temp), key=lambda p: len(p.parts))
        if any(_under(h, b) for b in binds) or not any(_under(h, t) for t in temp)
    ]
    lines = ["set -e"]
    lines += [f"exec {fd}<{q(str(b))}" for fd, b in enumerate(binds, start=3)]  # the real folders, before the tmpfs
    lines += [f"mount -t tmpfs tmpfs {q(str(t))}" for t in temp]
    for fd, b in enumerate(binds, start=3):
        # --no-canonicalize: mount(8) would otherwise read the fd's link as the (now empty) path
        lines += [f"mkdir -p {q(str(b))}", f"mount --no-canonicalize --rbind /proc/self/fd/{fd} {q(str(b))}"]
        lines.append(f"exec {fd}<&-")
    lines += [f"if [ -d {q(str(h))} ]; then mount -t tmpfs tmpfs {q(str(h))}; fi" for h in again]
    for m in markers:
        lines.append(f"if [ -e {q(str(m))} ]; then echo {q(f'private tmp: the driver-side {m} shows')} >&2; exit 3; fi")
    for k in keep:  # the very folder (device and inode), not an empty one in its place
        st = k.stat()
        same = f'[ "$(stat -L -c %d:%i -- {q(str(k))} 2>/dev/null)" = {st.st_dev}:{st.st_ino} ]'
        lines.append(f"if ! {same}; then echo {q(f'private tmp: needed {k} is hidden')} >&2; exit 3; fi")
    return "\n".join([*lines, 'exec "$@"'])


@contextlib.contextmanager
def private_tmp_command(cmd: list[str], keep: Iterable[Path], hide: Iterable[Path] = ()) -> Iterator[list[str]]:
    """``cmd`` wrapped to run with ``/tmp`` (and this process's temp dir) and ``hide`` out of its sight,
    ``keep`` in it. Yields the wrapped command, to start while the context is open (the marker files
    it checks for are removed on exit).

    Raises:
        RuntimeError: no ``unshare`` that can give the command its own mount namespace here.
    """
    prefix = namespace_prefix()
    if prefix is None:
        raise RuntimeError(MISSING)
    temp = [p for p in _both([Path("/tmp"), Path(tempfile.gettempdir())]) if p.is_dir()]
    hide = [h for h in _both([*temp, *map(Path, hide)]) if h.is_dir()]
    markers = [h / f"{MARKER}-{os.getpid()}" for h in hide]
    try:
        for m in markers:
            m.write_text("the node must not see this file\n", encoding="utf-8")
        script = _script(temp, hide, [Path(k).absolute() for k in keep if Path(k).is_dir()], markers)
        yield [*prefix, "bash", "-c", script, "bash", *cmd]
    finally:
        for m in markers:
            m.unlink(missing_ok=True)
