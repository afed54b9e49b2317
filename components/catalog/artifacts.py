"""Typed models of the files one stage writes and another reads; every writer and reader goes through them.

``write(model, path)`` writes atomically (``components.io``); ``read(Model, path)`` validates, so a
file from an older layout or a hand edit fails with its path and the field named, not as a
``KeyError`` in the next stage.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, RootModel, ValidationError

from components.io import read_json, write_json


class Artifact(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelInfo(Artifact):
    """``model.json``: the base model ``ragtune model`` wrote."""

    name: str
    source: str
    parameters: int
    architecture: str


class IndexTable(Artifact):
    """One LanceDB table after ``ragtune index``."""

    table: str
    rows: int
    added: int
    updated: int
    deleted: int
    version: int
    embedder: str
    dim: int
    ann_index: str | None
    fts_index: bool
    embed_s: float
    index_s: float
    build_time_s: float


class IndexFile(RootModel[dict[str, IndexTable]]):
    """``index.json``: table name -> its report."""


class RetrieverScores(Artifact):
    """One retriever after ``ragtune retrieval-eval``: its summary metrics on each scored split."""

    run_id: str
    index_table: str
    index_table_version: int
    splits: dict[str, dict[str, float]]


class RetrievalFile(Artifact):
    """``retrieval.json``."""

    parent_run_id: str
    retrievers: dict[str, RetrieverScores]


class AdapterTraining(Artifact):
    """One adapter after ``ragtune finetune``: what its training run measured."""

    step: int
    planned_steps: int
    loss: float
    dev_loss: float | None = None  # measured only when held-out examples were given
    tokens_per_s: float
    train_time_s: float
    wall_time_s: float
    trainable_params: int
    peak_memory_mb: float
    restarts: int
    resumed_at: list[int]
    examples: int
    workers: int
    run_name: str
    mlflow_run_id: str

    @classmethod
    def from_run(cls, metrics: dict, mlflow_run_id: str) -> AdapterTraining:
        """From what :func:`components.training.trainer.train_adapter` returned (other keys left out)."""
        return cls(**{k: v for k, v in metrics.items() if k in cls.model_fields}, mlflow_run_id=mlflow_run_id)


class FinetuneFile(RootModel[dict[str, AdapterTraining]]):
    """``finetune.json``: adapter name -> its training."""


class CellRecord(Artifact):
    """One grid cell after ``ragtune evaluate``: its MLflow run and summary metrics."""

    cell: str
    model: str
    retriever: str
    run_id: str
    metrics: dict[str, float]


class CellsFile(Artifact):
    """``cells.json``: the evaluated grid."""

    parent_run_id: str
    experiment_id: str
    split: str
    questions: int
    cells: list[CellRecord]

    def flat(self) -> list[dict]:
        """One dict per cell: ``cell``, ``model``, ``retriever``, ``run_id`` and its metrics side by side."""
        return [
            {**c.metrics, "cell": c.cell, "model": c.model, "retriever": c.retriever, "run_id": c.run_id}
            for c in self.cells
        ]


class Choice(Artifact):
    """A cell the decision names, with its score and cost."""

    cell: str
    model: str
    retriever: str
    run_id: str
    mean: float
    ci_low: float
    ci_high: float
    cost_per_1k_amortised: float


class BestFile(Artifact):
    """``best.json``: the best cell by the main metric and the recommended one (what ``register`` serves)."""

    main_metric: str
    split: str
    questions: int
    parent_run_id: str
    best: Choice
    recommended: Choice
    tied: list[str]
    few_questions: bool


A = TypeVar("A", bound=BaseModel)


def write(model: BaseModel, path: Path | str) -> None:
    """Write ``model`` as JSON, atomically."""
    write_json(model.model_dump(mode="json"), path)


def read(cls: type[A], path: Path | str) -> A:
    """Read and validate ``path`` as ``cls``.

    Raises:
        FileNotFoundError: the file is absent (the stage that writes it has not run).
        ValueError: the file does not match ``cls``, with the path and the fields named.
    """
    try:
        return cls.model_validate(read_json(path))
    except ValidationError as exc:
        raise ValueError(f"{path} is not a valid {cls.__name__}: {exc}") from exc
