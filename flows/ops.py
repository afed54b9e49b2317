"""Deployments, schedules and the new-data trigger of the ``ragtune`` flow. Wiring only.

Two deployments of the one flow (also declared in ``prefect.yaml`` for work pools):

- ``ragtune/scheduled-retraining``: on a cron schedule, with parameters;
- ``ragtune/on-new-data``: started by :func:`trigger` when DVC's hash of ``data/raw`` differs from
  the one the last ``ingest`` recorded in ``dvc.lock``.

``ragtune schedule`` serves both from one process (``prefect.serve``), plus a small
``ragtune-new-data-check`` flow that runs the trigger check on an interval.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from prefect import flow, get_run_logger, serve

from flows.datahash import raw_data_hash, recorded_raw_hash
from flows.pipeline import pipeline

FLOW_NAME = "ragtune"
SCHEDULED = "scheduled-retraining"
ON_NEW_DATA = "on-new-data"
CHECK_FLOW = "ragtune-new-data-check"
DEFAULT_CRON = "0 3 * * 1"  # Mondays 03:00; keep in step with prefect.yaml


@dataclass(frozen=True)
class DataCheck:
    """DVC's hash of data/raw now, and the one the last ingest ran on."""

    current: str
    recorded: str | None

    @property
    def changed(self) -> bool:
        return self.current != self.recorded


def check_new_data(root: Path | str) -> DataCheck:
    """Compare the current DVC hash of data/raw with the one recorded in dvc.lock."""
    return DataCheck(raw_data_hash(root), recorded_raw_hash(root))


def start_deployment_run(root: Path | str, deployment: str = f"{FLOW_NAME}/{ON_NEW_DATA}") -> tuple[str, str]:
    """Create a run of ``deployment`` on the Prefect server (returns at once); its (id, name)."""
    from prefect.deployments import run_deployment

    run = run_deployment(
        deployment,
        parameters={"root": str(Path(root).resolve())},
        timeout=0,
        as_subflow=False,
        tags=["new-data"],
    )
    return str(run.id), run.name


@flow(name=CHECK_FLOW)
def new_data_check(root: str) -> str | None:
    """Start ``ragtune/on-new-data`` when data/raw changed since the last ingest; the new run's id."""
    check = check_new_data(root)
    logger = get_run_logger()
    if not check.changed:
        logger.info("data/raw unchanged (%s): nothing to do", check.current)
        return None
    run_id, name = start_deployment_run(root)
    logger.info("data/raw is %s, last ingest saw %s: started %s (%s)", check.current, check.recorded, name, run_id)
    return run_id


def build_deployments(
    root: Path | str,
    cron: str = DEFAULT_CRON,
    timezone: str = "UTC",
    check_every_s: int | None = 300,
) -> list:
    """The deployments ``ragtune schedule`` serves (see :func:`serve_deployments` for the arguments)."""
    from prefect.schedules import Cron, Interval

    root = str(Path(root).resolve())
    deployments = [
        pipeline.to_deployment(
            name=SCHEDULED,
            schedules=[Cron(cron, timezone=timezone)],
            parameters={"root": root, "force": False},
            tags=["scheduled"],
            description="Retrain and re-evaluate on a schedule; DVC skips unchanged stages.",
        ),
        pipeline.to_deployment(
            name=ON_NEW_DATA,
            parameters={"root": root},
            tags=["new-data"],
            description="Started by `ragtune trigger` when DVC's hash of data/raw changes.",
        ),
    ]
    if check_every_s:
        deployments.append(
            new_data_check.to_deployment(
                name="watch-raw", schedules=[Interval(check_every_s)], parameters={"root": root}
            )
        )
    return deployments


def serve_deployments(
    root: Path | str,
    cron: str = DEFAULT_CRON,
    timezone: str = "UTC",
    check_every_s: int | None = 300,
    limit: int = 1,
) -> None:
    """Serve the deployments from this process until it is stopped (Ctrl-C pauses their schedules).

    Args:
        root: the project the runs work in.
        cron: schedule of ``scheduled-retraining``.
        timezone: of the cron schedule.
        check_every_s: interval of the new-data check; None or 0: no check (use ``ragtune trigger``).
        limit: runs at once in this process; 1 keeps two pipelines off the same DVC repo.
    """
    serve(*build_deployments(root, cron, timezone, check_every_s), limit=limit)
