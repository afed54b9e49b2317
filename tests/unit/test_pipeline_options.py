"""The flow's orchestration settings: which failures retry, tags, names, and prefect.yaml in step."""

from __future__ import annotations

import yaml
from dvc.exceptions import ReproductionError
from dvc.stage.exceptions import StageCmdFailedError, StageFileDoesNotExistError

from flows import ops, pipeline
from tests.conftest import REPO


def _raised_from(cause: BaseException) -> BaseException:
    try:
        try:
            raise cause
        except Exception as exc:
            raise ReproductionError("failed to reproduce 'finetune'") from exc
    except ReproductionError as outer:
        return outer


def test_a_failed_or_killed_stage_command_retries_a_config_error_does_not():
    assert pipeline.is_transient(_raised_from(StageCmdFailedError("ragtune finetune", 1)))
    assert pipeline.is_transient(_raised_from(StageCmdFailedError("ragtune finetune", -9)))
    assert not pipeline.is_transient(_raised_from(StageCmdFailedError("ragtune finetune", 2)))
    assert not pipeline.is_transient(_raised_from(StageFileDoesNotExistError("dvc.yaml")))
    assert not pipeline.is_transient(ValueError("bad input"))


def test_only_transient_prone_stages_retry_and_heavy_ones_carry_concurrency_tags():
    for stage in pipeline.STAGES:
        task = pipeline.stage_task(stage, retries=3, retry_delay_s=5)
        assert task.retries == (3 if stage in {"model", "index", "finetune", "evaluate"} else 0)
        assert task.cache_policy is pipeline.NO_CACHE
        if task.retries:
            assert task.retry_delay_seconds == [5, 10, 20]  # exponential backoff
    assert pipeline.stage_task("finetune", 2, 1).tags == {"ragtune-training"}
    assert pipeline.stage_task("index", 2, 1).tags == {"ragtune-indexing"}
    assert pipeline.stage_task("ingest", 0, 1).retries == 0


def test_prefect_yaml_deploys_the_pipeline_flow_as_ops_names_it():
    config = yaml.safe_load((REPO / "prefect.yaml").read_text())
    deployments = {d["name"]: d for d in config["deployments"]}
    assert set(deployments) >= {ops.SCHEDULED, ops.ON_NEW_DATA}
    for deployment in deployments.values():
        path, _, name = deployment["entrypoint"].partition(":")
        assert (REPO / path).is_file() and f"def {name}(" in (REPO / path).read_text()
        assert set(deployment.get("parameters", {})) <= {"root", "force", "retries", "retry_delay_s"}
        assert deployment["work_pool"]["name"] == config["deployments"][0]["work_pool"]["name"]
    crons = [s["cron"] for s in deployments[ops.SCHEDULED]["schedules"]]
    assert crons == [ops.DEFAULT_CRON]
    assert not deployments[ops.ON_NEW_DATA].get("schedules")
    tags = {t for d in deployments.values() for t in d.get("tags", [])}
    assert {"scheduled", "new-data"} <= tags


def test_schedule_builds_a_cron_deployment_with_parameters_and_an_on_demand_one(tmp_path):
    built = {
        d.name: d
        for d in ops.build_deployments(
            tmp_path, cron="15 2 * * *", timezone="Europe/Paris", check_every_s=60, retries=1
        )
    }
    assert set(built) == {ops.SCHEDULED, ops.ON_NEW_DATA, "watch-raw"}
    (schedule,) = built[ops.SCHEDULED].schedules
    assert schedule.schedule.cron == "15 2 * * *" and schedule.schedule.timezone == "Europe/Paris"
    assert built[ops.SCHEDULED].parameters == {"root": str(tmp_path.resolve()), "force": False, "retries": 1}
    assert not built[ops.ON_NEW_DATA].schedules
    assert built["watch-raw"].schedules[0].schedule.interval.total_seconds() == 60
    assert len(ops.build_deployments(tmp_path, check_every_s=None)) == 2


def test_every_task_run_has_a_readable_name():
    assert pipeline.seed_raw.task_run_name == "seed-raw-data"  # not Prefect's default "<name>-<random>"
    assert pipeline.reproduce.task_run_name == "{stage}"
