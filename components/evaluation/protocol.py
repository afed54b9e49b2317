"""The protocol: dev chooses, test confirms.

Every cell answers the dev questions; the verdicts against the best are computed on dev alone;
the cells dev left standing (every cell not clearly worse than the best, so the recommendation
among them) then answer the test questions, once. Nothing computed on test feeds back into a
choice: the recommendation is made by ``select`` from the dev rows, and the test rows only
confirm it or not (tests/unit/test_protocol.py changes test answers and sees the same choice).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from components.config import StatisticsConfig
from components.decision.statistics import bootstrap, per_question, survivors
from components.evaluation.grid import NO_RETRIEVAL, Cell
from components.evaluation.run import CellResult, GridSetup, Retrieved, evaluate_cells, retrieve
from components.retrieval.search import Retriever

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProtocolResult:
    dev: list[CellResult]
    test: list[CellResult]
    standing: list[str]  # cell names dev left standing, scored on test


def run_protocol(
    cells: list[Cell],
    splits: dict[str, pd.DataFrame],
    retrievers: dict[str, Retriever],
    run_params: dict[str, dict],
    setup: GridSetup,
    statistics: StatisticsConfig,
    main_metric: str,
    groups: pd.Series,
    on_result: Callable[[CellResult], None],
) -> ProtocolResult:
    """Score every cell on ``splits["dev"]``, then the cells not clearly worse on ``splits["test"]``.

    Args:
        retrievers: the grid's retrievers, opened; run_params: their MLflow params.
        groups: each question's leakage group (index: qa_id): the bootstrap resamples them together.
        on_result: called with each cell's result as it comes (the stage logs it to MLflow).
    """
    dev = _score(cells, splits["dev"], retrievers, run_params, setup, "dev", on_result)
    table = bootstrap(
        per_question(pd.concat([r.rows.assign(cell=r.cell.name) for r in dev]), main_metric), statistics, groups
    )
    standing = survivors(table)
    logger.info(
        "dev: %d of %d cells not clearly worse than %s; they answer the test split",
        len(standing),
        len(cells),
        table.index[0],
    )
    confirm = [c for c in cells if c.name in standing]
    test = _score(confirm, splits["test"], retrievers, run_params, setup, "test", on_result)
    return ProtocolResult(dev, test, standing)


def _score(cells, questions, retrievers, run_params, setup, split, on_result) -> list[CellResult]:
    needed = {c.retriever for c in cells} - {NO_RETRIEVAL}
    retrieved: dict[str, Retrieved] = retrieve({n: retrievers[n] for n in needed}, questions, run_params)
    results = []
    for result in evaluate_cells(cells, questions, retrieved, setup, split):
        on_result(result)
        results.append(result)
    return results
