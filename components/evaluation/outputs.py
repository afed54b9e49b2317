"""What the ``evaluate`` stage writes, in one atomic folder: predictions, the grid's cells, the learning curves."""

from __future__ import annotations

import pandas as pd

from components.catalog import Catalog, artifacts
from components.catalog.artifacts import CellsFile, CurvesFile
from components.evaluation.curves import Curve, curve_scores
from components.io import atomic_path


def write_evaluation(catalog: Catalog, rows: list[pd.DataFrame], cells: CellsFile, curves: dict[str, Curve]) -> None:
    """Write ``data/eval`` whole or not at all: ``predictions.parquet`` (every cell, split and question, the probes
    included), ``cells.json``, ``curves.json`` and ``curve_scores.parquet``."""
    c = catalog
    with atomic_path(c.eval) as out:
        out.mkdir()
        pd.concat([r for r in rows if not r.empty], ignore_index=True).to_parquet(out / c.predictions.name, index=False)
        artifacts.write(cells, out / c.cells.name)
        artifacts.write(CurvesFile({name: curve.points for name, curve in curves.items()}), out / c.curves_file.name)
        curve_scores(curves).to_parquet(out / c.curve_scores.name, index=False)
