"""The stages to run, in order, as DVC's own graph of ``dvc.yaml`` gives them, with their orchestration settings.

``dvc.yaml`` is the only DAG: a stage added there is run by ``ragtune run`` with no other change.
Its orchestration settings sit beside it, under ``meta:`` (which DVC stores and ignores)::

    finetune:
      cmd: ragtune finetune
      meta:
        retries: 2                     # transient failures retry with exponential backoff
        concurrency: ragtune-training  # a Prefect tag; a server-side limit on it queues such stages
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

    @classmethod
    def from_meta(cls, name: str, meta: dict | None) -> StageSpec:
        meta = meta or {}
        unknown = set(meta) - {"retries", "concurrency"}
        if unknown:
            raise ValueError(f"dvc.yaml: stage {name!r} has unknown meta keys {sorted(unknown)}")
        retries = int(meta.get("retries", 0))
        if retries < 0:
            raise ValueError(f"dvc.yaml: stage {name!r}: meta.retries must be >= 0, got {retries}")
        return cls(name, retries, meta.get("concurrency"))


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
