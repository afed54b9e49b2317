"""Deployments, schedules and the new-data trigger of the ``ragtune`` flow. Wiring only.

Two deployments of the one flow (also declared in ``prefect.yaml`` for work pools):

- ``ragtune/scheduled-retraining``: on a cron schedule;
- ``ragtune/on-new-data``: started by :func:`trigger` when DVC's hash of ``data/raw`` differs from
  the one the last ``ingest`` recorded in ``dvc.lock``.

No parameter names a path of the machine that created them: a run works in the checkout it is
started in (``ragtune schedule`` serves from the project's root; a pool worker's pull step changes
to ``$RAGTUNE_ROOT``). ``ragtune schedule`` serves both from one process (``prefect.serve``),
plus a small ``ragtune-new-data-check`` flow that runs the trigger check on an interval. Each
on-new-data run carries a ``data-<hash>`` tag, and the check never starts a second run on data
that already had one: data a run refused stays refused until it changes.
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


def data_tag(md5: str) -> str:
    """The tag of the runs started on raw data with DVC hash ``md5``."""
    return f"data-{md5.removesuffix('.dir')[:16]}"


def start_deployment_run(data_hash: str, deployment: str = f"{FLOW_NAME}/{ON_NEW_DATA}") -> tuple[str, str]:
    """Create a run of ``deployment`` on the Prefect server (returns at once); its (id, name).

    It runs in the checkout of whoever executes it (no path is passed), tagged with the data's hash.
    """
    from prefect.deployments import run_deployment

    run = run_deployment(deployment, timeout=0, as_subflow=False, tags=["new-data", data_tag(data_hash)])
    return str(run.id), run.name


def runs_on_data(data_hash: str) -> list[tuple[str, str]]:
    """(name, state) of every flow run already started on the raw data with this hash."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[data_tag(data_hash)])))
    return [(r.name, r.state.name if r.state else "unknown") for r in runs]


@flow(name=CHECK_FLOW)
def new_data_check(root: str = ".") -> str | None:
    """Start ``ragtune/on-new-data`` when data/raw changed since the last ingest and no run saw it yet; its id."""
    check = check_new_data(root)
    logger = get_run_logger()
    if not check.changed:
        logger.info("data/raw unchanged (%s): nothing to do", check.current)
        return None
    earlier = runs_on_data(check.current)
    if earlier:
        name, state = earlier[0]
        logger.info(
            "data/raw %s already had run %s (%s): not starting another on the same data; change the data "
            "or run `ragtune trigger --force`",
            check.current,
            name,
            state,
        )
        return None
    run_id, name = start_deployment_run(check.current)
    logger.info("data/raw is %s, last ingest saw %s: started %s (%s)", check.current, check.recorded, name, run_id)
    return run_id


def build_deployments(
    cron: str = DEFAULT_CRON,
    timezone: str = "UTC",
    check_every_s: int | None = 300,
    pull: bool = False,
) -> list:
    """The deployments ``ragtune schedule`` serves (see :func:`serve_deployments` for the arguments)."""
    from prefect.schedules import Cron, Interval

    deployments = [
        pipeline.to_deployment(
            name=SCHEDULED,
            schedules=[Cron(cron, timezone=timezone)],
            parameters={"force": False, "pull": pull},
            tags=["scheduled"],
            description="Retrain and re-evaluate on a schedule; DVC skips unchanged stages.",
        ),
        pipeline.to_deployment(
            name=ON_NEW_DATA,
            parameters={"pull": pull},
            tags=["new-data"],
            description="Started by `ragtune trigger` when DVC's hash of data/raw changes.",
        ),
    ]
    if check_every_s:
        deployments.append(new_data_check.to_deployment(name="watch-raw", schedules=[Interval(check_every_s)]))
    return deployments


def serve_deployments(
    cron: str = DEFAULT_CRON,
    timezone: str = "UTC",
    check_every_s: int | None = 300,
    pull: bool = False,
    limit: int = 1,
) -> None:
    """Serve the deployments from this process until it is stopped (Ctrl-C pauses their schedules).

    Runs work in this process's current directory (the project's root).

    Args:
        cron: schedule of ``scheduled-retraining``.
        timezone: of the cron schedule.
        check_every_s: interval of the new-data check; None or 0: no check (use ``ragtune trigger``).
        pull: each run first pulls (git and DVC), for a checkout that follows a shared repository.
        limit: runs at once in this process (the pipeline lock keeps a second one waiting anyway).
    """
    serve(*build_deployments(cron, timezone, check_every_s, pull), limit=limit)
