"""``ragtune index``: embed the chunks into one LanceDB table per (chunker, embedder), incrementally."""

from __future__ import annotations

import typer

from flows.common import EXIT_CONFIG, exits_on, stage


def main() -> None:
    """Embed the chunks into one LanceDB table per (chunker, embedder), incrementally."""
    import os
    import time

    import lancedb

    from components.catalog import artifacts
    from components.catalog.artifacts import IndexFile, IndexTable
    from components.io import read_parquet
    from components.retrieval.index import describe, sync_table, table_specs
    from components.retrieval.open import Embedders
    from components.retrieval.search import NEEDS_FULLTEXT
    from components.storage import ObjectStore

    s = stage("index")
    r = s.params.retrieval
    db = lancedb.connect(str(s.catalog.index))
    with exits_on(ValueError, code=EXIT_CONFIG):
        store = ObjectStore.from_env(os.environ)  # the Ray Data actors fetch the embedder from it
    embedders = Embedders(r.embedders, ray=r.ray_embedding, cluster_address=os.environ.get("RAY_ADDRESS"), store=store)
    tables = {}
    for spec in table_specs(r.retrievers, NEEDS_FULLTEXT):
        chunks = read_parquet(s.catalog.chunks(spec.chunker))
        started = time.perf_counter()
        report = sync_table(db, spec.name, chunks, embedders[spec.embedder], r.index, fts=spec.fulltext)
        tables[spec.name] = IndexTable(**report.as_dict(), build_time_s=time.perf_counter() - started)
        typer.echo(describe(report))
    artifacts.write(IndexFile(tables), s.catalog.metrics("index"))
