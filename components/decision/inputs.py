"""Reading what ``select`` decides on, from the earlier stages' outputs (the I/O edge of the decision)."""

from __future__ import annotations

from components.catalog import Catalog, artifacts, table_name
from components.catalog.artifacts import CellsFile, CurvesFile, FinetuneFile, IndexFile, RetrievalFile
from components.config import RetrieverConfig
from components.decision.select import SelectInputs
from components.io import read_parquet


def read_inputs(catalog: Catalog, retrievers: list[RetrieverConfig]) -> SelectInputs:
    """The evaluated grid, training and index figures, retrieval scores, curves and questions of ``catalog``."""
    c = catalog
    train = {k: v.model_dump() for k, v in artifacts.read(FinetuneFile, c.metrics("finetune")).root.items()}
    tables = artifacts.read(IndexFile, c.metrics("index")).root
    index_time = {
        r.name: tables[t].full_build_s if (t := table_name(r.chunker, r.embedder)) in tables else 0.0
        for r in retrievers
    }
    retrieval = {n: r.splits for n, r in artifacts.read(RetrievalFile, c.metrics("retrieval")).retrievers.items()}
    return SelectInputs(
        cells=artifacts.read(CellsFile, c.cells),
        rows=read_parquet(c.predictions),
        train=train,
        index_time_s=index_time,
        retrieval=retrieval,
        curves=artifacts.read(CurvesFile, c.curves_file).root,
        curve_scores=read_parquet(c.curve_scores),
        qa=read_parquet(c.qa),
    )
