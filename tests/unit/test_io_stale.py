"""Temporaries left by a killed writer are removed by the next atomic write; a live writer's are kept."""

from __future__ import annotations

import os

from components.io import atomic_path, remove_stale_temps, write_json


def _dead_pid() -> int:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    return pid


def test_next_write_removes_a_killed_writers_temporaries_and_keeps_live_ones(tmp_path):
    out = tmp_path / "processed"
    dead = _dead_pid()
    stale_dir = tmp_path / f".processed.{dead}.abc123.tmp"
    (stale_dir / "processed").mkdir(parents=True)
    (stale_dir / "processed" / "half.parquet").write_bytes(b"partial")
    stale_old = tmp_path / f".processed.old-{dead}"
    stale_old.mkdir()
    live = tmp_path / f".processed.{os.getpid()}.xyz.tmp"
    live.mkdir()
    other = tmp_path / ".other.123.tmp"
    other.mkdir()

    with atomic_path(out) as tmp:
        tmp.mkdir()
        (tmp / "documents.parquet").write_bytes(b"whole")

    assert (out / "documents.parquet").read_bytes() == b"whole"
    assert not stale_dir.exists() and not stale_old.exists()
    assert live.exists() and other.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([".other.123.tmp", live.name, "processed"])


def test_remove_stale_temps_on_files_and_missing_parent(tmp_path):
    assert remove_stale_temps(tmp_path / "nowhere" / "x.json") == []
    stale = tmp_path / f".best.json.{_dead_pid()}.q.tmp"
    stale.write_text("{")
    write_json({"a": 1}, tmp_path / "best.json")
    assert not stale.exists() and (tmp_path / "best.json").read_text().startswith("{")
