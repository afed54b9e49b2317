"""dvc.yaml is the only DAG: the flow's stages, their order and their retry and concurrency settings come from it."""

from __future__ import annotations

import pytest
import yaml
from dvc.exceptions import ReproductionError
from dvc.lock import LockError
from dvc.repo import Repo
from dvc.stage.exceptions import StageCmdFailedError, StageFileDoesNotExistError

from flows import ops, pipeline
from flows.dag import StageSpec, pipeline_stages, run_bound_s
from flows.runguard import PipelineBusyError, StageTimeoutError
from tests.conftest import REPO


def _raised_from(cause: BaseException) -> BaseException:
    try:
        try:
            raise cause
        except Exception as exc:
            raise ReproductionError("failed to reproduce 'finetune'") from exc
    except ReproductionError as outer:
        return outer


def _project(tmp_path, stages: dict) -> str:
    Repo.init(str(tmp_path), no_scm=True)
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages}, sort_keys=False))
    return str(tmp_path)


def test_stages_run_after_what_they_depend_on_whatever_their_order_in_dvc_yaml(tmp_path):
    root = _project(
        tmp_path,
        {
            "report": {"cmd": "cat b.txt > report.txt", "deps": ["b.txt"], "outs": ["report.txt"]},
            "b": {"cmd": "cat a.txt > b.txt", "deps": ["a.txt"], "outs": ["b.txt"]},
            "lone": {"cmd": "echo x > lone.txt", "outs": ["lone.txt"]},
            "a": {"cmd": "echo a > a.txt", "outs": ["a.txt"], "meta": {"retries": 3, "concurrency": "heavy"}},
        },
    )
    order = [s.name for s in pipeline_stages(root)]
    assert order.index("a") < order.index("b") < order.index("report")
    assert order == ["lone", "a", "b", "report"]  # independent stages keep their dvc.yaml order
    specs = {s.name: s for s in pipeline_stages(root)}
    assert specs["a"] == StageSpec("a", 3, "heavy") and specs["b"] == StageSpec("b", 0, None, None)


def test_the_projects_own_dvc_yaml_gives_every_stage_with_its_meta_and_a_timeout():
    specs = pipeline_stages(REPO)
    declared = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    assert sorted(s.name for s in specs) == sorted(declared)
    for spec in specs:
        meta = declared[spec.name].get("meta", {})
        assert (spec.retries, spec.concurrency) == (meta.get("retries", 0), meta.get("concurrency"))
        assert spec.timeout_s == meta["timeout_s"] > 0, f"{spec.name}: every shipped stage has a timeout"
    bound = run_bound_s(specs, retry_delay_s=10)
    assert bound == sum(s.timeout_s * (1 + s.retries) for s in specs) + sum(
        1.5 * 10 * 2**k for s in specs for k in range(s.retries)
    )
    assert run_bound_s([*specs, StageSpec("added", 0, None)], 10) is None  # a stage without a timeout: unbounded


@pytest.mark.parametrize(
    ("meta", "message"),
    [
        ({"retry": 2}, "unknown meta keys"),
        ({"retries": -1}, ">= 0"),
        ({"timeout_s": 0}, "timeout_s"),
        ({"timeout_s": "1h"}, "timeout_s"),
    ],
)
def test_bad_meta_is_refused_naming_the_stage(meta, message):
    with pytest.raises(ValueError, match=f"stage 'x'.*{message}|{message}.*"):
        StageSpec.from_meta("x", meta)


def _failed(code: int) -> BaseException:
    return _raised_from(StageCmdFailedError("ragtune finetune", code))


def test_only_transient_exit_codes_and_outside_kills_retry():
    assert pipeline.is_transient(_failed(75))  # the network, a server's 5xx, DVC's lock: worth a retry
    assert pipeline.is_transient(_failed(-9)) and pipeline.is_transient(_failed(137))  # killed from outside
    assert not pipeline.is_transient(_failed(1))  # a bug, bad data, a refused gate: it fails the same way again
    assert not pipeline.is_transient(_failed(2))  # bad params
    assert not pipeline.is_transient(_raised_from(StageFileDoesNotExistError("dvc.yaml")))
    assert not pipeline.is_transient(ValueError("bad input"))
    assert pipeline.is_transient(_raised_from(LockError("Unable to acquire lock")))  # DVC's lock, in the flow
    # what the flow's task raises in place of DVC's chain: the same contract
    assert pipeline.is_transient(pipeline.StageFailed("finetune", 75))
    assert not pipeline.is_transient(pipeline.StageFailed("register", 1))
    timed_out = StageTimeoutError("stage finetune ran past its meta.timeout_s")
    timed_out.__cause__ = _failed(-9)
    assert not pipeline.is_transient(timed_out)  # killed by its own timeout: would take as long again


def test_a_failed_run_exits_with_the_stage_code_or_75_when_worth_a_rerun():
    assert pipeline.exit_code(_failed(1)) == 1 and pipeline.exit_code(_failed(75)) == 75
    assert pipeline.exit_code(_failed(-9)) == 75
    assert pipeline.exit_code(PipelineBusyError("another run holds the lock")) == 75
    assert pipeline.exit_code(ValueError("bad")) == 1


def test_a_stage_task_takes_its_retries_backoff_and_tag_from_its_spec():
    task = pipeline.stage_task(StageSpec("finetune", 3, "ragtune-training"), retry_delay_s=5)
    assert task.retries == 3 and task.retry_delay_seconds == [5, 10, 20]  # exponential backoff
    assert task.tags == {"ragtune-training"}
    assert task.cache_policy is pipeline.NO_CACHE
    plain = pipeline.stage_task(StageSpec("ingest", 0, None), retry_delay_s=5)
    assert plain.retries == 0 and plain.tags == set()


def test_prefect_yaml_deploys_the_pipeline_flow_as_ops_names_it():
    config = yaml.safe_load((REPO / "prefect.yaml").read_text())
    deployments = {d["name"]: d for d in config["deployments"]}
    assert set(deployments) >= {ops.SCHEDULED, ops.ON_NEW_DATA}
    for deployment in deployments.values():
        path, _, name = deployment["entrypoint"].partition(":")
        assert (REPO / path).is_file() and f"def {name}(" in (REPO / path).read_text()
        assert set(deployment.get("parameters", {})) <= {"force", "retry_delay_s", "pull"}  # no path of the deployer
        assert deployment["parameters"]["pull"] is True  # a worker runs on what was pushed
        assert deployment["work_pool"]["name"] == config["deployments"][0]["work_pool"]["name"]
    crons = [s["cron"] for s in deployments[ops.SCHEDULED]["schedules"]]
    assert crons == [ops.DEFAULT_CRON]
    assert not deployments[ops.ON_NEW_DATA].get("schedules")


def test_schedule_builds_a_cron_deployment_with_parameters_and_an_on_demand_one():
    built = {d.name: d for d in ops.build_deployments(cron="15 2 * * *", timezone="Europe/Paris", check_every_s=60)}
    assert set(built) == {ops.SCHEDULED, ops.ON_NEW_DATA, "watch-raw"}
    (schedule,) = built[ops.SCHEDULED].schedules
    assert schedule.schedule.cron == "15 2 * * *" and schedule.schedule.timezone == "Europe/Paris"
    assert built[ops.SCHEDULED].parameters == {"force": False, "pull": False}  # no path: runs where it is served
    assert "root" not in built[ops.ON_NEW_DATA].parameters and not built["watch-raw"].parameters
    assert not built[ops.ON_NEW_DATA].schedules
    assert built["watch-raw"].schedules[0].schedule.interval.total_seconds() == 60
    assert len(ops.build_deployments(check_every_s=None)) == 2
    assert all(d.parameters["pull"] for d in ops.build_deployments(check_every_s=None, pull=True))


def test_register_always_runs_and_is_never_restored_from_dvcs_cache(tmp_path, monkeypatch):
    """Who is champion lives in the registry, which DVC cannot see: DVC must run `register` every time
    (a skipped or cache-restored register would report a gate that never judged)."""
    shipped = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]["register"]
    stage = {k: v for k, v in shipped.items() if k not in ("params", "metrics")}  # what DVC runs it by
    stage.update(cmd="echo judged >> runs.txt && echo {} > gate.json", deps=["best.json"])
    stage["metrics"] = [{"gate.json": {"cache": False}}]
    (tmp_path / "best.json").write_text("{}")
    root = _project(tmp_path, {"register": stage})
    monkeypatch.chdir(root)
    with Repo(root) as repo:
        for _ in range(2):  # nothing changed between the two: only always_changed makes it run again
            repo.reproduce(targets=["dvc.yaml:register"], single_item=True)
    assert (tmp_path / "runs.txt").read_text().splitlines() == ["judged", "judged"]
