"""``ragtune ci``'s parts: whether the run may register, the CI profile's overrides, the markdown summary.

Whether a CI run may move ``@champion`` is decided here, from the event and the profile, never by
a value the workflow file passes (a branch can edit its workflow): a pull request, or any run whose
params differ from the team's committed ones (a ``-S`` CI profile), is judge-only
(:func:`judge_only_reason`); the command then writes ``gate.judge_only: true`` after the overrides.

The overrides use DVC's own code for ``dvc exp run -S`` (Hydra's override grammar: list items by
index, ``adapters.0.max_steps=10``), so a value CI accepts is one DVC accepts, and an invalid one
fails before anything runs. The summary is built from what the run wrote (the gate's verdict,
the registry result, the leaderboard), only from files written after the run started.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from components.redact import redact

PULL_REQUEST_EVENTS = ("pull_request", "pull_request_target", "merge_group")  # GITHUB_EVENT_NAME of a branch's run
JUDGE_ONLY = "params/evaluation.yaml:gate.judge_only=true"


def judge_only_reason(event: str | None, overrides: list[str]) -> str | None:
    """Why a CI run must not register (None: it may): a pull request's event, or a CI profile.

    Args:
        event: the CI event (GitHub's ``GITHUB_EVENT_NAME``), None outside GitHub Actions.
        overrides: the ``-S`` overrides of the run; any at all make it a profile, not the team's params.
    """
    if event in PULL_REQUEST_EVENTS:
        return f"a {event} run: a branch never moves @champion"
    if overrides:
        return "a CI profile (-S overrides): only the team's committed params register"
    return None


class OverrideError(ValueError):
    """A params override that DVC's (Hydra's) grammar or the params' own validation refuses."""


def apply_overrides(root: Path, overrides: list[str]) -> list[str]:
    """Apply ``path:key=value`` overrides (``dvc exp run -S`` syntax) to the params files in place.

    Raises:
        OverrideError: a file outside ``params/``, an unknown key or an invalid value.
    """
    from dvc.exceptions import InvalidArgumentError
    from dvc.utils.cli_parse import to_path_overrides
    from dvc.utils.hydra import apply_overrides as dvc_apply

    applied = []
    for path, items in to_path_overrides(overrides).items():
        target = (root / path).resolve()
        if target.parent != (root / "params").resolve() or not target.is_file():
            raise OverrideError(f"override {path}:{items[0]}: only files of params/ can be overridden")
        try:
            dvc_apply(target, items)
        except InvalidArgumentError as exc:
            raise OverrideError(f"invalid override for {path}: {items} ({exc.__cause__ or exc})") from exc
        applied += [f"{path}:{item}" for item in items]
    return applied


@dataclass
class CiRun:
    """What ``ragtune ci`` saw, for its summary."""

    started: float = field(default_factory=time.time)
    overrides: list[str] = field(default_factory=list)
    judge_only: str | None = None  # why the run may not register (None: it may)
    stages_run: list[str] = field(default_factory=list)
    stages_skipped: list[str] = field(default_factory=list)
    failure: str | None = None
    exit_code: int = 0


def _fresh(path: Path, since: float) -> bool:
    return path.is_file() and path.stat().st_mtime >= since - 1


def summary(run: CiRun, gate: Path, registry: Path, leaderboard: Path, data_version: str) -> str:
    """The job summary in markdown: outcome, gate verdict, registry, then the leaderboard folded."""
    verdict = json.loads(gate.read_text(encoding="utf-8")) if _fresh(gate, run.started) else None
    registered = json.loads(registry.read_text(encoding="utf-8")) if _fresh(registry, run.started) else None
    outcome = "passed" if run.exit_code == 0 else f"failed (exit code {run.exit_code})"
    lines = [f"## ragtune CI: {outcome}", "", f"- data: `{data_version}`"]
    if run.overrides:
        lines.append("- CI profile: " + ", ".join(f"`{o}`" for o in run.overrides))
    if run.judge_only:
        lines.append(f"- judge only: {run.judge_only}")
    if run.stages_run or run.stages_skipped:
        lines.append(
            f"- stages run: {', '.join(run.stages_run) or 'none'}; skipped: {', '.join(run.stages_skipped) or 'none'}"
        )
    if run.failure:
        lines += ["", "### Failure", "", "```", run.failure.strip()[-3000:], "```"]
    if verdict is not None:
        from components.decision.gate import Verdict

        lines += ["", "### Gate", "", "```", Verdict(**verdict).summary(), "```"]
    else:
        lines += ["", "### Gate", "", "not reached: the run stopped before the register stage judged a cell"]
    if registered is not None:
        moved = (
            f"{registered['cell']} is `{registered['name']}` version {registered['version']} @{registered['alias']}"
            if registered.get("registered")
            else f"nothing registered (gate.judge_only); @{registered['alias']} unchanged"
        )
        lines += ["", "### Registry", "", moved]
    if _fresh(leaderboard, run.started) or (leaderboard.is_file() and run.exit_code == 0):
        board = leaderboard.read_text(encoding="utf-8")
        lines += ["", "<details><summary>Leaderboard</summary>", "", board, "", "</details>"]
    return redact("\n".join(lines) + "\n")
