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
    full_build_s: float  # the cost of building the table from nothing (the retriever's fixed cost)
    build_time_s: float  # this run's sync, often incremental: not a cost


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


class EvalPoint(Artifact):
    """One dev-loss evaluation of a training run (and the snapshot taken there)."""

    step: int
    tokens: int
    train_time_s: float
    compute_s: float
    dev_loss: float


class AdapterTraining(Artifact):
    """One adapter after ``ragtune finetune``: what its training run measured."""

    step: int
    planned_steps: int
    loss: float
    dev_loss: float | None = None  # the last evaluation's; absent when the adapter was never evaluated
    tokens_per_s: float
    train_time_s: float
    compute_s: float  # the workers' whole time on the run that produced the adapter, over restarts and resumes
    wall_time_s: float  # this call's wall time (a resumed run's is short): not a cost
    evals: list[EvalPoint]
    best: EvalPoint | None  # the snapshot kept as the adapter; None: the last weights
    stopped_early: bool
    trainable_params: int
    peak_memory_mb: float
    restarts: int
    resumed_at: list[int]
    examples: int
    examples_per_step: int  # batch x gradient accumulation x workers
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
    """One grid cell scored on one split by ``ragtune evaluate``: its MLflow run and summary metrics."""

    cell: str
    model: str
    retriever: str
    shots: int
    split: str
    run_id: str
    metrics: dict[str, float]


class CellsFile(Artifact):
    """``cells.json``: the evaluated grid: every cell on dev, the cells dev left standing on test."""

    parent_run_id: str
    experiment_id: str
    questions: dict[str, int]  # split -> questions scored
    max_new_tokens: int  # the answer cap of this run (from the train answers)
    few_shot_examples: list[tuple[str, str]]  # the turns the few-shot cells showed
    standing: list[str]  # the cells dev left standing (not clearly worse than the best), scored on test
    cells: list[CellRecord]

    def flat(self, split: str) -> list[dict]:
        """One dict per cell scored on ``split``: ``cell``, ``model``, ``retriever``, ``shots``, ``run_id``, metrics."""
        keys = ("cell", "model", "retriever", "shots", "run_id")
        return [{**c.metrics, **{k: getattr(c, k) for k in keys}} for c in self.cells if c.split == split]


class CurvesFile(RootModel[dict[str, list[dict[str, float]]]]):
    """``curves.json``: adapter -> its learning curve (step, tokens, compute_s, dev_loss, main metric on dev)."""


class Choice(Artifact):
    """A cell the decision names, with its dev score and cost."""

    cell: str
    model: str
    retriever: str
    shots: int
    run_id: str
    mean: float
    ci_low: float
    ci_high: float
    cost_per_1k_amortised: float


class Confirmation(Artifact):
    """The test split's word on the dev recommendation."""

    outcome: str  # "confirmed", "not confirmed" or "inconclusive"
    mean: float | None  # the recommended cell's main metric on test
    ci_low: float | None
    ci_high: float | None
    verdict: str | None  # the recommended cell's verdict among the cells scored on test
    text: str


class BestFile(Artifact):
    """``best.json``: the dev decision (what ``register`` serves) and the test confirmation."""

    main_metric: str
    split: str  # the split that chose: dev
    questions: int
    groups: int  # independent question groups on that split
    parent_run_id: str
    best: Choice
    recommended: Choice
    ranking: list[Choice]  # every dev cell, best first
    tied: list[str]
    few_groups: bool
    max_new_tokens: int  # the answer cap the cells were scored with
    few_shot_examples: list[tuple[str, str]]  # the recommended cell's few-shot turns ([] when it has none)
    confirmation: Confirmation


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
