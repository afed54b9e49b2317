"""Temporaries left by a killed writer are removed by the next atomic write; a live writer's are kept."""

from __future__ import annotations

import os
import time

import pytest

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


def test_a_zombie_writers_temporaries_are_stale(tmp_path):
    """A killed writer nobody reaped (its parent died too; a container's PID 1 does not reap) still
    answers signal 0: its temporaries go all the same, or a rerun finds them forever."""
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    try:
        for _ in range(200):  # until the child has exited and waits, unreaped, as a zombie
            with open(f"/proc/{pid}/stat") as stat:
                if stat.read().rsplit(")", 1)[-1].split()[0] == "Z":
                    break
            time.sleep(0.01)
        os.kill(pid, 0)  # signal 0 still reaches it: the check must look further
        stale = tmp_path / f".models.{pid}.abc.tmp"
        stale.mkdir()
        assert remove_stale_temps(tmp_path / "models") == [stale] and not stale.exists()
    finally:
        os.waitpid(pid, 0)


def test_a_section_between_markers_is_replaced_and_the_rest_kept(tmp_path):
    from components.io import replace_section

    doc = tmp_path / "doc.md"
    doc.write_text("intro\n<!-- bench:x -->\nold table\n<!-- /bench:x -->\noutro\n", encoding="utf-8")
    replace_section(doc, "bench:x", "\nnew table\n")
    assert doc.read_text(encoding="utf-8") == "intro\n<!-- bench:x -->\nnew table\n<!-- /bench:x -->\noutro\n"
    with pytest.raises(SystemExit, match=r"doc\.md has no <!-- bench:y --> \.\.\. <!-- /bench:y --> section"):
        replace_section(doc, "bench:y", "x")
