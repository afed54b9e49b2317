"""dvc.yaml is the only DAG: the flow's stages, their order and their retry and concurrency settings come from it."""

from __future__ import annotations

import pytest
import yaml
from dvc.exceptions import ReproductionError
from dvc.repo import Repo
from dvc.stage.exceptions import StageCmdFailedError, StageFileDoesNotExistError

from flows import ops, pipeline
from flows.dag import StageSpec, pipeline_stages
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
    assert specs["a"] == StageSpec("a", 3, "heavy") and specs["b"] == StageSpec("b", 0, None)


def test_the_projects_own_dvc_yaml_gives_every_stage_with_its_meta():
    specs = pipeline_stages(REPO)
    declared = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    assert sorted(s.name for s in specs) == sorted(declared)
    for spec in specs:
        meta = declared[spec.name].get("meta", {})
        assert (spec.retries, spec.concurrency) == (meta.get("retries", 0), meta.get("concurrency"))


@pytest.mark.parametrize(("meta", "message"), [({"retry": 2}, "unknown meta keys"), ({"retries": -1}, ">= 0")])
def test_bad_meta_is_refused_naming_the_stage(meta, message):
    with pytest.raises(ValueError, match=f"stage 'x'.*{message}|{message}.*"):
        StageSpec.from_meta("x", meta)


def test_a_failed_or_killed_stage_command_retries_a_config_error_does_not():
    assert pipeline.is_transient(_raised_from(StageCmdFailedError("ragtune finetune", 1)))
    assert pipeline.is_transient(_raised_from(StageCmdFailedError("ragtune finetune", -9)))
    assert not pipeline.is_transient(_raised_from(StageCmdFailedError("ragtune finetune", 2)))
    assert not pipeline.is_transient(_raised_from(StageFileDoesNotExistError("dvc.yaml")))
    assert not pipeline.is_transient(ValueError("bad input"))


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
        assert set(deployment.get("parameters", {})) <= {"root", "force", "retry_delay_s"}
        assert deployment["work_pool"]["name"] == config["deployments"][0]["work_pool"]["name"]
    crons = [s["cron"] for s in deployments[ops.SCHEDULED]["schedules"]]
    assert crons == [ops.DEFAULT_CRON]
    assert not deployments[ops.ON_NEW_DATA].get("schedules")


def test_schedule_builds_a_cron_deployment_with_parameters_and_an_on_demand_one(tmp_path):
    built = {
        d.name: d for d in ops.build_deployments(tmp_path, cron="15 2 * * *", timezone="Europe/Paris", check_every_s=60)
    }
    assert set(built) == {ops.SCHEDULED, ops.ON_NEW_DATA, "watch-raw"}
    (schedule,) = built[ops.SCHEDULED].schedules
    assert schedule.schedule.cron == "15 2 * * *" and schedule.schedule.timezone == "Europe/Paris"
    assert built[ops.SCHEDULED].parameters == {"root": str(tmp_path.resolve()), "force": False}
    assert not built[ops.ON_NEW_DATA].schedules
    assert built["watch-raw"].schedules[0].schedule.interval.total_seconds() == 60
    assert len(ops.build_deployments(tmp_path, check_every_s=None)) == 2
