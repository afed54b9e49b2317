"""Bring a checkout up to date before a run: ``git pull --ff-only``, then ``dvc pull`` of the raw data.

A pool worker's checkout (or a CI runner's) is where runs happen, not where work is done: its only
local change is what the pipeline itself writes (``dvc.lock``). When upstream changed ``dvc.lock``
too, the local copy is dropped for upstream's (DVC then re-checks every stage against it); any
other local change or commit that blocks a fast-forward fails the pull with git's message. A
checkout with no upstream branch (a detached HEAD, as CI checks out a pull request) skips the git
part and says so.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PULL_TIMEOUT_S = 3600  # one git or dvc call; a hung network transfer fails the run instead of holding it


class PullError(RuntimeError):
    """git or DVC could not bring the checkout up to date; ``transient`` when a retry may succeed."""

    def __init__(self, message: str, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


def _run(cmd: list[str], root: Path, transient: bool, check: bool = True) -> subprocess.CompletedProcess:
    try:
        proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=PULL_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        raise PullError(f"`{' '.join(cmd)}` took longer than {PULL_TIMEOUT_S} s", transient=True) from exc
    if check and proc.returncode != 0:
        raise PullError(f"`{' '.join(cmd)}` failed in {root}:\n{(proc.stderr or proc.stdout).strip()}", transient)
    return proc


def git_pull(root: Path) -> str:
    """Fast-forward the checkout to its upstream branch; what happened, in one line."""
    upstream = _run(["git", "rev-parse", "--abbrev-ref", "--symbolic-full-name", "@{u}"], root, False, check=False)
    if upstream.returncode != 0:
        return "git: no upstream branch (a detached HEAD, as CI checks out a pull request): git pull skipped"
    before = _run(["git", "rev-parse", "HEAD"], root, False).stdout.strip()
    _run(["git", "fetch", "--quiet"], root, transient=True)
    lock_upstream = _run(["git", "diff", "--quiet", "HEAD", "@{u}", "--", "dvc.lock"], root, False, check=False)
    lock_local = _run(["git", "diff", "--quiet", "--", "dvc.lock"], root, False, check=False)
    note = ""
    if lock_upstream.returncode == 1 and lock_local.returncode == 1:
        _run(["git", "checkout", "--", "dvc.lock"], root, False)
        note = " (upstream changed dvc.lock: took it over this checkout's)"
    _run(["git", "merge", "--ff-only", "--quiet", "@{u}"], root, transient=False)
    after = _run(["git", "rev-parse", "HEAD"], root, False).stdout.strip()
    moved = f"{before[:8]} -> {after[:8]}" if after != before else f"already at {after[:8]}"
    return f"git: {upstream.stdout.strip()} {moved}{note}"


def dvc_pull(root: Path, raw: str) -> str:
    """Fetch the raw data that ``<raw>.dvc`` points at from the DVC remote; what happened, in one line."""
    if not (root / f"{raw}.dvc").is_file():
        return f"dvc: {raw}.dvc is absent (the raw data is not DVC-tracked here): dvc pull skipped"
    proc = _run([sys.executable, "-m", "dvc", "pull", "--quiet", f"{raw}.dvc"], root, transient=True)
    return f"dvc: pulled {raw}{' ' + proc.stdout.strip() if proc.stdout.strip() else ''}"


def pull(root: Path, raw: str) -> list[str]:
    """``git pull --ff-only`` then ``dvc pull`` of the raw data; one line per step.

    Raises:
        PullError: a step failed (``transient`` for fetches and downloads, not for a blocked fast-forward).
    """
    return [git_pull(root), dvc_pull(root, raw)]
