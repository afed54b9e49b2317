"""A pipeline killed (SIGKILL) in the middle of a stage re-runs cleanly.

Killed (through `dvc repro`, as the flow runs each stage) while `model` writes the converted
weights, then while `index` writes LanceDB: the re-run
succeeds, the tables open with every chunk, and no `.*.tmp` folder is left in the outputs.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

import lancedb
import pandas as pd
import psutil

from tests.tiny_project import BIN, build_tiny_project, project_env


def _kill_when(proc: subprocess.Popen, ready, log: Path, timeout_s: float = 600) -> None:
    """SIGKILL ``proc``'s whole process group as soon as ``ready()`` holds."""
    deadline = time.monotonic() + timeout_s
    try:
        while not ready():
            assert proc.poll() is None, (
                f"ended (rc {proc.returncode}) before the kill point:\n{log.read_text()[-6000:]}"
            )
            assert time.monotonic() < deadline, "kill point not reached in time"
            time.sleep(0.2)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)


def _start(cmd: list[str], project: Path, env: dict, log: Path) -> subprocess.Popen:
    with log.open("wb") as out:
        return subprocess.Popen(cmd, cwd=project, env=env, start_new_session=True, stdout=out, stderr=subprocess.STDOUT)


def _stage_running(proc: subprocess.Popen, stage: str) -> bool:
    try:
        children = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return False
    for child in children:
        try:
            cmd = child.cmdline()
        except psutil.Error:
            continue
        if len(cmd) >= 2 and cmd[-1] == stage and Path(cmd[1]).name == "ragtune":
            return True
    return False


def _temps(root: Path) -> list[Path]:
    return [p for p in (root / "data").rglob(".*") if p.name.endswith(".tmp") or ".old-" in p.name]


def test_killed_mid_stage_reruns_cleanly(tmp_path, base_model_dir):
    project = build_tiny_project(tmp_path / "project", base_model_dir)
    env = project_env(project)
    models = project / "data" / "models"

    # 1. killed while `model` writes data/models/base through a temporary folder
    run = _start([str(BIN / "dvc"), "repro", "model"], project, env, tmp_path / "run.log")
    _kill_when(run, lambda: models.is_dir() and any(models.glob(".base.*.tmp/base/*")), tmp_path / "run.log")
    assert not (models / "base").exists(), "a killed write must not leave a half-written output in place"
    assert _temps(project), "the kill left no temporary folder: it did not hit the write"

    # 2. killed while `index` writes the LanceDB tables
    repro = _start([str(BIN / "dvc"), "repro", "index"], project, env, tmp_path / "repro.log")
    index = project / "data" / "index"
    _kill_when(
        repro,
        lambda: _stage_running(repro, "index") and index.is_dir() and any(index.glob("*.lance/*")),
        tmp_path / "repro.log",
    )

    # 3. re-running both killed stages succeeds and leaves whole outputs only
    done = subprocess.run(
        [str(BIN / "dvc"), "repro", "model", "index"], cwd=project, env=env, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert not _temps(project), _temps(project)
    assert (models / "base" / "config.json").is_file()
    chunks = pd.read_parquet(project / "data" / "processed" / "chunks-para-400.parquet")
    db = lancedb.connect(str(index))
    tables = db.list_tables().tables
    assert tables
    for name in tables:
        table = db.open_table(name)
        if name.startswith("chunks__para_400"):
            assert table.count_rows() == chunks["content_hash"].nunique()
        assert table.count_rows() > 0
    status = subprocess.run(
        [str(BIN / "dvc"), "status", "index"], cwd=project, env=env, capture_output=True, text=True, timeout=300
    )
    assert "up to date" in status.stdout, status.stdout
