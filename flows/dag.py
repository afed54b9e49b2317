"""The stages to run, in order, as DVC's own graph of ``dvc.yaml`` gives them, with their orchestration settings.

``dvc.yaml`` is the only DAG: a stage added there is run by ``ragtune run`` with no other change.
Its orchestration settings sit beside it, under ``meta:`` (which DVC stores and ignores)::

    finetune:
      cmd: ragtune finetune
      meta:
        retries: 2                     # transient failures (exit code 75) retry with exponential backoff
        concurrency: ragtune-training  # a Prefect tag; a server-side limit on it queues such stages
        timeout_s: 21600               # the stage's process is killed after this long, and the run fails

A stage without ``timeout_s`` runs as long as it takes (and so may the flow: see :func:`run_bound_s`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class StageSpec:
    """One stage of dvc.yaml and how the flow runs it."""

    name: str
    retries: int  # retries of a transient failure (see flows.pipeline.is_transient)
    concurrency: str | None  # Prefect tag, for a global concurrency limit across flow runs
    timeout_s: float | None = None  # the stage's process is killed after this many seconds (None: never)

    @classmethod
    def from_meta(cls, name: str, meta: dict | None) -> StageSpec:
        meta = meta or {}
        unknown = set(meta) - {"retries", "concurrency", "timeout_s"}
        if unknown:
            raise ValueError(f"dvc.yaml: stage {name!r} has unknown meta keys {sorted(unknown)}")
        retries = int(meta.get("retries", 0))
        if retries < 0:
            raise ValueError(f"dvc.yaml: stage {name!r}: meta.retries must be >= 0, got {retries}")
        timeout = meta.get("timeout_s")
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0):
            raise ValueError(
                f"dvc.yaml: stage {name!r}: meta.timeout_s must be a number of seconds > 0, got {timeout!r}"
            )
        return cls(name, retries, meta.get("concurrency"), None if timeout is None else float(timeout))


def pipeline_stages(root: Path | str) -> list[StageSpec]:
    """Every stage of ``root/dvc.yaml`` in an order that runs each after what it depends on.

    Stages that do not depend on each other keep their order in dvc.yaml.
    """
    import networkx as nx
    from dvc.repo import Repo
    from dvc.stage import PipelineStage

    with Repo(str(root)) as repo:
        graph = repo.index.graph
        stages = [s for s in graph.nodes if isinstance(s, PipelineStage)]
        position = {s: i for i, s in enumerate(repo.index.stages) if isinstance(s, PipelineStage)}
        order = nx.lexicographical_topological_sort(graph.reverse(copy=True).subgraph(stages), key=position.get)
        return [StageSpec.from_meta(s.name, s.meta) for s in order]


def run_bound_s(stages: list[StageSpec], retry_delay_s: float) -> float | None:
    """The longest a whole run of ``stages`` can take: every attempt of every stage to its timeout, plus the
    retry delays (doubling from ``retry_delay_s``, jitter at most 1.5x). None when a stage has no timeout.

    The flow's own timeout and how long a run waits for another run's lock derive from it, so the
    stages' ``meta.timeout_s`` are the only timeouts to set.
    """
    if any(s.timeout_s is None for s in stages):
        return None
    attempts = sum(s.timeout_s * (1 + s.retries) for s in stages)
    delays = sum(1.5 * retry_delay_s * (2**k) for s in stages for k in range(s.retries))
    return attempts + delays
