"""One pipeline per repository, the exit-code contract, and `ragtune schedule` without a Prefect server."""

from __future__ import annotations

import shutil
import threading
import time

import pytest
import requests
import typer
from mlflow.exceptions import MlflowException, RestException
from typer.testing import CliRunner

from flows.common import EXIT_TRANSIENT, classified, is_transient_error
from flows.pull import PullError
from flows.runguard import LOCK_FILE, PipelineBusyError, pipeline_lock
from tests.conftest import REPO


def test_a_second_run_says_it_waits_for_the_first_then_runs_after_it(tmp_path):
    (tmp_path / ".dvc").mkdir()
    messages, order = [], []
    first_in = threading.Event()

    def first() -> None:
        with pipeline_lock(tmp_path, None, messages.append, name="first", poll_s=0.05):
            first_in.set()
            time.sleep(0.5)
            order.append("first done")

    thread = threading.Thread(target=first)
    thread.start()
    first_in.wait(10)
    with pipeline_lock(tmp_path, 30, messages.append, name="second", poll_s=0.05):
        order.append("second in")
    thread.join()
    assert order == ["first done", "second in"]  # never both at once
    assert "another pipeline run holds" in messages[0] and "run first" in messages[0] and "waiting" in messages[0]
    assert messages[1].startswith("got the pipeline lock")
    assert (tmp_path / LOCK_FILE).is_file()


def test_a_run_that_waited_past_its_bound_fails_naming_the_holder(tmp_path):
    (tmp_path / ".dvc").mkdir()
    with (
        pipeline_lock(tmp_path, None, print, name="holder"),
        pytest.raises(PipelineBusyError, match=r"still holds .*\(run holder, pid"),
        pipeline_lock(tmp_path, 0.2, lambda m: None, poll_s=0.05),
    ):
        pass
    with pipeline_lock(tmp_path, 0, lambda m: None):  # released: taken at once
        pass


def _chained(outer: BaseException, cause: BaseException) -> BaseException:
    try:
        try:
            raise cause
        except BaseException:
            raise outer  # noqa: B904 - implicit chaining, as MLflow's REST client does
    except BaseException as exc:
        return exc


@pytest.mark.parametrize(
    ("exc", "transient"),
    [
        (ConnectionRefusedError(111, "Connection refused"), True),
        (requests.exceptions.ConnectionError("Max retries exceeded"), True),
        (_chained(MlflowException("API request to http://x failed with exception boom"), requests.Timeout()), True),
        (
            MlflowException(
                "API request to endpoint /x failed with error code 503 != 200", error_code="TEMPORARILY_UNAVAILABLE"
            ),
            True,
        ),
        (RestException({"error_code": "INTERNAL_ERROR", "message": "database is locked"}), True),
        (RestException({"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "no such run"}), False),
        (MlflowException("Registered Model with name=x not found"), False),  # a 500 by default, no server said so
        (PullError("git fetch: could not resolve host", transient=True), True),
        (PullError("git merge --ff-only: diverged", transient=False), False),
        (ValueError("bad data in qa.jsonl line 3"), False),
        (KeyError("f1"), False),
    ],
)
def test_which_failures_are_transient(exc, transient):
    assert is_transient_error(exc) is transient


def test_a_command_exits_75_on_a_transient_failure_and_keeps_a_bug_a_bug():
    def unreachable() -> None:
        raise _chained(MlflowException("API request to http://mlflow failed with exception x"), ConnectionResetError())

    def bug() -> None:
        raise KeyError("f1")

    with pytest.raises(typer.Exit) as exited:
        classified(unreachable)()
    assert exited.value.exit_code == EXIT_TRANSIENT
    with pytest.raises(KeyError):  # a bug keeps its traceback and exit code 1
        classified(bug)()
    seen = []
    classified(lambda table_version=None: seen.append(table_version))(table_version=["t"])  # options pass through
    assert seen == [["t"]]


def test_schedule_refuses_to_start_without_a_prefect_server(monkeypatch):
    from flows.cli import app

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    result = CliRunner().invoke(app, ["schedule"])
    assert result.exit_code == 2
    assert "needs a Prefect server" in result.output and "PREFECT_API_URL" in result.output


def test_run_without_raw_data_says_where_data_comes_from_and_copies_nothing(tmp_path, monkeypatch):
    from flows.cli import app

    shutil.copytree(REPO / "params", tmp_path / "params")
    shutil.copy2(REPO / "dvc.yaml", tmp_path / "dvc.yaml")
    monkeypatch.chdir(tmp_path)
    for name in ("MLFLOW_TRACKING_URI", "PREFECT_API_URL", "RAY_ADDRESS"):
        monkeypatch.delenv(name, raising=False)
    result = CliRunner().invoke(app, ["run"])
    assert result.exit_code == 1
    for hint in ("data/raw is absent", "`dvc pull`", "`ragtune data add", "`ragtune run --demo`"):
        assert hint in result.output, result.output
    assert not (tmp_path / "data" / "raw").exists()  # no silent demo
