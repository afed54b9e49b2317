"""The protocol: dev chooses, test confirms.

Every cell answers the dev questions; the verdicts against the best are computed on dev alone;
then the test cells answer the test questions, once (``evaluation.test_cells``): the cells dev left
standing (every cell not clearly worse than the best, so the recommendation among them), plus, by
default, the best dev cell of every family (:data:`components.evaluation.grid.FAMILIES`), so the
recommendation meets each alternative on fresh questions; or every cell. Nothing computed on test
feeds back into a choice: the recommendation is made by ``select`` from the dev rows, and the test
rows only confirm it or not (tests/unit/test_protocol.py changes test answers and sees the same choice).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from components.config import StatisticsConfig
from components.decision.statistics import bootstrap, per_question, survivors
from components.evaluation.grid import NO_RETRIEVAL, Cell
from components.evaluation.prepare import Grid
from components.evaluation.run import CellResult, Retrieved, evaluate_cells, retrieve

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProtocolResult:
    dev: list[CellResult]
    test: list[CellResult]
    standing: list[str]  # cell names dev left standing
    tested: list[str]  # cell names scored on test: the standing ones and, by test_cells, the references


def run_protocol(
    grid: Grid,
    statistics: StatisticsConfig,
    main_metric: str,
    on_result: Callable[[CellResult], None],
    test_cells: str = "families",
    pool=None,
) -> ProtocolResult:
    """Score every cell on the dev questions, then the test cells (:func:`cells_for_test`) on the test questions.

    Args:
        grid: the prepared grid (:func:`components.evaluation.prepare.prepare_grid`): cells, questions of each
            split, opened retrievers, their MLflow params, the setup, each question's leakage group (the
            bootstrap resamples a group's questions together).
        on_result: called with each cell's result as it comes (the stage logs it to MLflow).
        test_cells: ``evaluation.test_cells``: standing, families or all.
        pool: the workers that generate (:func:`components.evaluation.executors.open_pool`), opened once by
            the caller for dev and test; None: each split opens its own.
    """
    cells, splits, retrievers, run_params, setup = grid.cells, grid.splits, grid.retrievers, grid.run_params, grid.setup
    groups = grid.groups
    dev = _score(cells, splits["dev"], retrievers, run_params, setup, "dev", on_result, pool)
    table = bootstrap(
        per_question(pd.concat([r.rows.assign(cell=r.cell.name) for r in dev]), main_metric), statistics, groups
    )
    standing = survivors(table)
    tested = cells_for_test(cells, table, test_cells)
    logger.info(
        "dev: %d of %d cells not clearly worse than %s; %d cells answer the test split (test_cells: %s)",
        len(standing),
        len(cells),
        table.index[0],
        len(tested),
        test_cells,
    )
    test = _score(
        [c for c in cells if c.name in tested], splits["test"], retrievers, run_params, setup, "test", on_result, pool
    )
    return ProtocolResult(dev, test, standing, tested)


def cells_for_test(cells: list[Cell], dev: pd.DataFrame, mode: str) -> list[str]:
    """The cells that answer test, in grid order: those dev left standing; with ``families`` also the best dev
    cell of every family; with ``all`` every cell.

    Args:
        dev: :func:`components.decision.statistics.bootstrap`'s table of the dev scores (index: cell).
    """
    if mode == "all":
        return [c.name for c in cells]
    chosen = set(survivors(dev))
    if mode == "families":
        means = dev["mean"]
        best_of: dict[str, Cell] = {}
        for cell in cells:
            top = best_of.get(cell.family)
            if top is None or means[cell.name] > means[top.name]:
                best_of[cell.family] = cell
        chosen |= {c.name for c in best_of.values()}
    return [c.name for c in cells if c.name in chosen]


def _score(cells, questions, retrievers, run_params, setup, split, on_result, pool) -> list[CellResult]:
    needed = {c.retriever for c in cells} - {NO_RETRIEVAL}
    retrieved: dict[str, Retrieved] = retrieve({n: retrievers[n] for n in needed}, questions, run_params)
    results = []
    for result in evaluate_cells(cells, questions, retrieved, setup, split, pool):
        on_result(result)
        results.append(result)
    return results
