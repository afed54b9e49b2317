"""The flow's guards on real Prefect and DVC, with shell stages: retries by exit code, timeouts, the lock, no data.

Each test builds a throw-away DVC project whose stages are shell commands, so the flow's own
behaviour is what is measured (seconds per test, no model).
"""

from __future__ import annotations

import shutil
import threading
import time

import pytest
import yaml
from dvc.repo import Repo

from flows.pipeline import MissingRawDataError, exit_code, pipeline, stage_exit_code
from flows.runguard import LOCK_FILE, StageTimeoutError, pipeline_lock
from tests.conftest import REPO


@pytest.fixture(scope="module", autouse=True)
def prefect_api():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=240):
        yield


def _project(tmp_path, stages: dict, raw: bool = True):
    shutil.copytree(REPO / "params", tmp_path / "params")
    if raw:
        (tmp_path / "data" / "raw").mkdir(parents=True)
    Repo.init(str(tmp_path), no_scm=True).close()
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages}, sort_keys=False))
    return tmp_path


def _attempts(root, name: str) -> int:
    path = root / f"{name}.attempts"
    return len(path.read_text().splitlines()) if path.is_file() else 0


def _stage(name: str, tail: str, **meta) -> dict:
    return {name: {"cmd": f"echo x >> {name}.attempts && {tail}", "meta": meta}}


def test_exit_75_is_retried_and_exit_1_is_not(tmp_path):
    flaky = _project(tmp_path / "flaky", _stage("flaky", "exit 75", retries=1))
    with pytest.raises(Exception) as failed:
        pipeline(root=str(flaky), retry_delay_s=0.1)
    assert stage_exit_code(failed.value) == 75 and exit_code(failed.value) == 75
    assert _attempts(flaky, "flaky") == 2  # the first try and one retry
    bug = _project(tmp_path / "bug", _stage("bug", "exit 1", retries=2))
    with pytest.raises(Exception) as failed:
        pipeline(root=str(bug), retry_delay_s=0.1)
    assert stage_exit_code(failed.value) == 1
    assert _attempts(bug, "bug") == 1  # a deterministic failure fails the same way again: no retry


def test_a_stage_past_its_timeout_is_killed_and_not_retried(tmp_path):
    root = _project(tmp_path, _stage("slow", "sleep 300", retries=2, timeout_s=3))
    start = time.monotonic()
    with pytest.raises(StageTimeoutError, match="meta.timeout_s"):
        pipeline(root=str(root), retry_delay_s=0.1)
    assert time.monotonic() - start < 120 and _attempts(root, "slow") == 1


def test_a_second_run_waits_for_the_lock_of_the_first(tmp_path):
    root = _project(tmp_path, {"quick": {"cmd": "date +%s.%N > quick.txt", "meta": {"timeout_s": 60}}})
    held = threading.Event()
    released = []

    def first_run() -> None:  # another run of this repository holds the lock for a while
        with pipeline_lock(root, None, print, name="first"):
            held.set()
            time.sleep(4)
            released.append(time.time())

    thread = threading.Thread(target=first_run)
    thread.start()
    held.wait(10)
    result = pipeline(root=str(root))
    thread.join()
    assert result["ran"] == ["quick"]
    assert float((root / "quick.txt").read_text()) >= released[0]  # the stage ran only after the first released
    assert '"run": "ragtune-' in (root / LOCK_FILE).read_text()  # the lock then named this flow run


def test_no_raw_data_stops_the_run_before_any_stage_and_says_what_to_do(tmp_path):
    root = _project(tmp_path, {"ingest": {"cmd": "touch ran.txt"}}, raw=False)
    with pytest.raises(MissingRawDataError, match="dvc pull.*ragtune data add.*ragtune run --demo"):
        pipeline(root=str(root))
    assert not (root / "ran.txt").exists() and not (root / "data" / "raw").exists()  # nothing seeded
