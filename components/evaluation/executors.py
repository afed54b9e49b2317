"""Where the grid's answers are generated: in this process, or on Ray workers (a cluster, or this machine's cores).

The unit of work is a *job*: one model variant (the base model or an adapter) and, for each of its
cells, the prompts the prediction cache misses plus the prompts of the timed latency pass. The
driver renders prompts, reads and writes the prediction cache, scores and logs; only the jobs
travel. ``evaluation.parallel.workers`` selects the executor: 1 runs the jobs here, one after
another; more start that many Ray actors (``cpus_per_worker`` CPUs each; on ``RAY_ADDRESS``'s
cluster when it is set), each loading the model variant of the job it runs, and results come back
as they finish. A job names the base model and its adapter as
:class:`~components.storage.StoredDir`: local paths on one machine, or (with an object
store configured) folders the driver uploaded once per content hash, which each node fetches into
its own cache, so no node needs the driver's disk (docs/scale-out.md).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from components.config import GenerationConfig
from components.storage import STORAGE_ENV, ObjectStore, StoredDir, publish_dir

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CellWork:
    """One cell's share of a job: the prompts to generate, and the prompts to time one at a time."""

    cell: str
    prompts: list[str]
    timed: list[str]


@dataclass(frozen=True)
class Job:
    model: str
    base: StoredDir
    adapter: StoredDir | None
    generation: GenerationConfig
    cells: list[CellWork]


@dataclass(frozen=True)
class CellOutput:
    cell: str
    generations: list  # components.llm.generation.Generation, one per prompt of the CellWork
    latencies_s: list[float]  # generation time of each timed prompt, one at a time
    node: str  # where it ran: "local", or the Ray node id


def _on_this_node(folder: StoredDir) -> Path:
    """The folder on this node (fetched if it lives in the store); a clear error if a driver's path is missing."""
    local = folder.local()
    if not local.is_dir():
        raise FileNotFoundError(
            f"{local}: not on this node; on a cluster without a shared disk set {STORAGE_ENV} so the models "
            "travel through object storage (docs/scale-out.md)"
        )
    return local


def run_job(job: Job) -> list[CellOutput]:
    """Load the job's model variant once and answer every cell's prompts (batched) and timed prompts (one by one)."""
    from components.evaluation.answer import time_queries
    from components.llm.engines import generate
    from components.llm.models import load_model, load_tokenizer

    base_dir = _on_this_node(job.base)
    tokenizer = load_tokenizer(base_dir)
    model = load_model(base_dir, _on_this_node(job.adapter) if job.adapter else None)
    return [
        CellOutput(
            work.cell,
            generate(model, tokenizer, work.prompts, job.generation) if work.prompts else [],
            time_queries(model, tokenizer, work.timed, job.generation),
            "local",
        )
        for work in job.cells
    ]


def local_dir(path: Path | None) -> StoredDir | None:
    """A folder read in place (one machine, or a disk every node shares)."""
    return None if path is None else StoredDir(str(path.resolve()), digest="")


def publish(jobs: list[Job], store: ObjectStore | None) -> list[Job]:
    """The jobs with their base model and adapter uploaded to ``store`` (each once per content hash), if one is set."""
    if store is None:
        return jobs

    def up(d: StoredDir | None, name: str) -> StoredDir | None:
        return None if d is None else publish_dir(Path(d.path), store, name)

    return [dataclasses.replace(j, base=up(j.base, "base"), adapter=up(j.adapter, f"adapter-{j.model}")) for j in jobs]


def run_local(jobs: list[Job]) -> Iterator[CellOutput]:
    """The jobs in this process, one after another."""
    for job in jobs:
        yield from run_job(job)


def run_on_ray(
    jobs: list[Job], workers: int, cpus_per_worker: int, cluster_address: str | None, store: ObjectStore | None
) -> Iterator[CellOutput]:
    """The jobs on ``workers`` Ray actors, each job on the next free actor; outputs as jobs finish.

    With ``store`` the models travel through it (:func:`publish`); without, the actors read the driver's paths.
    """
    import ray

    from components.ray_runtime import start_ray

    jobs = publish(jobs, store)
    start_ray(workers * cpus_per_worker, cluster_address)

    @ray.remote(num_cpus=cpus_per_worker, scheduling_strategy="SPREAD")  # over the cluster's nodes
    class GridWorker:
        def __init__(self, threads: int) -> None:
            import torch

            torch.set_num_threads(threads)

        def run(self, job: Job) -> list[CellOutput]:
            node = ray.get_runtime_context().get_node_id()
            return [dataclasses.replace(out, node=node) for out in run_job(job)]

    actors = [GridWorker.remote(cpus_per_worker) for _ in range(min(workers, len(jobs)))]
    pending, idle, queue = {}, list(actors), list(jobs)
    while queue or pending:
        while queue and idle:
            actor = idle.pop()
            pending[actor.run.remote(queue.pop(0))] = actor
        done, _ = ray.wait(list(pending), num_returns=1)
        idle.append(pending.pop(done[0]))
        yield from ray.get(done[0])
    for actor in actors:
        ray.kill(actor)
