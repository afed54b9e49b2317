"""``ragtune data recover`` puts back a backup whose pid another program reused (``ragtune run`` says it does)."""

from __future__ import annotations

import os

from typer.testing import CliRunner

from tests.conftest import params_project


def test_a_backup_named_for_a_reused_pid_is_put_back(tmp_path, monkeypatch):
    from flows.cli import app

    params_project(tmp_path, monkeypatch)
    (tmp_path / ".dvc").mkdir()  # a DVC repository: recover takes the pipeline lock, as `data add` does
    live = os.getppid()  # a live process that is not a `data add`: the pid of the crashed one, reused
    backup = tmp_path / "data" / f".raw.old-{live}"
    (backup / "docs").mkdir(parents=True)
    (backup / "qa.jsonl").write_text('{"id": "q1"}\n')
    result = CliRunner().invoke(app, ["data", "recover"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "data" / "raw" / "qa.jsonl").read_text() == '{"id": "q1"}\n'
    assert not list((tmp_path / "data").glob(".raw.old-*"))
    assert f"its pid {live} now belongs to another program" in result.output
    assert "put" in result.output and "back as raw" in result.output
