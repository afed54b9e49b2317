"""`ragtune trigger`'s check: DVC's hash of data/raw now versus the one the last ingest recorded."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from flows.ops import check_new_data
from tests.conftest import REPO, demo_slice


@pytest.fixture
def repo(tmp_path):
    shutil.copytree(REPO / "params", tmp_path / "params")
    shutil.copy2(REPO / "dvc.yaml", tmp_path / "dvc.yaml")
    demo_slice(tmp_path / "data" / "raw", n_docs=3, n_questions=5)
    dvc = str(Path(sys.executable).parent / "dvc")
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run([dvc, "init", "-q"], cwd=tmp_path, check=True)
    return tmp_path


def _record(repo, md5: str) -> None:
    lock = {
        "schema": "2.0",
        "stages": {"ingest": {"cmd": "ragtune ingest", "deps": [{"path": "data/raw", "hash": "md5", "md5": md5}]}},
    }
    (repo / "dvc.lock").write_text(yaml.safe_dump(lock))


def test_changed_until_an_ingest_records_the_current_hash_then_changed_again_on_new_data(repo):
    first = check_new_data(repo)
    assert first.recorded is None and first.changed and first.current.endswith(".dir")
    _record(repo, first.current)
    assert not check_new_data(repo).changed
    with (repo / "data" / "raw" / "qa.jsonl").open("a", encoding="utf-8") as f:
        f.write(json.dumps({"id": "new", "question": "?", "answers": ["a"], "doc_ids": []}) + "\n")
    after = check_new_data(repo)
    assert after.changed and after.recorded == first.current and after.current != first.current


def test_missing_raw_data_is_a_clear_error(repo):
    shutil.rmtree(repo / "data" / "raw")
    with pytest.raises(FileNotFoundError, match="dvc pull"):
        check_new_data(repo)
