"""Typed models of the files one stage writes and another reads; every writer and reader goes through them.

``write(model, path)`` writes atomically (``components.io``); ``read(Model, path)`` validates, so a
file from an older layout or a hand edit fails with its path and the field named, not as a
``KeyError`` in the next stage.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal, TypeVar

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
    """One tune-loss evaluation of a training run (and the snapshot taken there)."""

    step: int
    tokens: int
    train_time_s: float
    compute_s: float
    tune_loss: float


class AdapterTraining(Artifact):
    """One adapter after ``ragtune finetune``: what its training run measured."""

    step: int
    planned_steps: int
    loss: float
    tune_loss: float | None = None  # the last evaluation's; absent when the adapter was never evaluated
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
    """``cells.json``: the evaluated grid: every cell on dev, the test cells on test."""

    parent_run_id: str
    experiment_id: str
    questions: dict[str, int]  # split -> questions scored
    max_new_tokens: int  # the answer cap of this run (from the train answers)
    few_shot_examples: list[tuple[str, str]]  # the turns the few-shot cells showed
    standing: list[str]  # the cells dev left standing (not clearly worse than the best)
    tested: list[str]  # the cells scored on test: the standing ones and the references (evaluation.test_cells)
    cells: list[CellRecord]

    def flat(self, split: str) -> list[dict]:
        """One dict per cell scored on ``split``: ``cell``, ``model``, ``retriever``, ``shots``, ``run_id``, metrics."""
        keys = ("cell", "model", "retriever", "shots", "run_id")
        return [{**c.metrics, **{k: getattr(c, k) for k in keys}} for c in self.cells if c.split == split]


class CurvesFile(RootModel[dict[str, list[dict[str, float]]]]):
    """``curves.json``: adapter -> its learning curve (step, tokens, compute_s, tune_loss, main metric on tune)."""


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


class Reference(Artifact):
    """A cell test scored beside the recommendation, and its paired difference to it on test."""

    cell: str
    family: str
    mean: float
    diff: float  # reference minus recommendation, on test
    diff_low: float  # simultaneous over the references (Bonferroni)
    diff_high: float
    beats: bool  # better beyond the margin: the interval above zero and the difference above the margin


class Confirmation(Artifact):
    """The test split's word on the dev recommendation: two rules fixed before test is read, reported apart.

    ``choice``: "confirmed" (no reference cell beats the recommendation on test beyond the margin),
    "not confirmed" (``beaten_by`` did), "too few test groups" (fewer than ``statistics.min_groups``), or
    "not scored" (the recommendation did not answer test).
    ``estimate``: "reproduced" (its test mean lies within its dev interval), "overestimated on dev" (below
    it: quote the test figure as what to expect), "underestimated on dev" (above), or "not scored".
    """

    choice: Literal["confirmed", "not confirmed", "too few test groups", "not scored"]
    estimate: Literal["reproduced", "overestimated on dev", "underestimated on dev", "not scored"]
    beaten_by: str | None  # the reference cell that beat it by the most; None when none did
    mean: float | None  # the recommended cell's main metric on test
    ci_low: float | None
    ci_high: float | None
    questions: int  # test questions it answered
    groups: int  # their independent groups
    references: list[Reference]
    text: str

    @property
    def confirmed(self) -> bool:
        return self.choice == "confirmed"


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
    underpowered: list[str]  # cells dev cannot tell apart from the best (their intervals exceed the margin)
    under_trained: list[str]  # adapters whose cells are "not ruled out (under-trained)"
    retention: dict[str, float]  # model -> its retention of what the base model answers on out-of-domain probes
    max_new_tokens: int  # the answer cap the cells were scored with
    few_shot_examples: list[tuple[str, str]]  # the recommended cell's few-shot turns ([] when it has none)
    confirmation: Confirmation


A = TypeVar("A", bound=BaseModel)


class FilterStep(Artifact):
    """One step of question generation: how many candidates it kept and dropped, a few of those it dropped."""

    step: str
    kept: int
    dropped: int
    examples: list[str]


class QuestionsFile(Artifact):
    """``report.json`` of ``ragtune questions``: whether it generated, with which model, and each filter's yield."""

    generated: bool
    reason: str
    mode: str
    generator: str | None = None  # the model (``base``: the shipped base model) and its engine
    engine: str | None = None
    chunker: str | None = None
    target: int = 0
    documents: int = 0  # documents with at least one candidate answer
    documents_covered: int = 0  # documents with at least one kept question
    candidates: int = 0  # candidates tried
    kept: int = 0
    steps: list[FilterStep] = []
    completions_generated: int = 0  # generator calls not served by the cache
    seconds: float = 0.0


def json_line(record: dict) -> str:
    """One JSONL line: keys sorted, UTF-8 as is (the same record always gives the same bytes)."""
    return json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n"


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
