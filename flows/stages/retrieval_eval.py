"""``ragtune retrieval-eval``: every retriever scored on the dev and test questions (no LLM), one MLflow run each."""

from __future__ import annotations

from typing import Annotated

import typer

from flows.common import EXIT_CONFIG, data_version, exits_on, stage

PIN = typer.Option(help="TABLE=VERSION: search that table as it was, to reproduce a past run's index_table_version")


def main(table_version: Annotated[list[str] | None, PIN] = None) -> None:
    """Score every retriever on the dev and test questions (no LLM); one MLflow run per retriever."""
    import time

    import lancedb

    from components import tracking
    from components.catalog import artifacts
    from components.catalog.artifacts import RetrievalFile, RetrieverScores
    from components.io import read_parquet
    from components.retrieval.evaluate import evaluate_retriever, flat_metrics, summary_line
    from components.retrieval.index import TableVersionError
    from components.retrieval.open import Embedders, open_retrievers, parse_versions, run_params_of

    s = stage("retrieval_eval")
    p, c = s.params, s.catalog
    with exits_on(ValueError, TableVersionError, code=EXIT_CONFIG):
        versions = parse_versions(table_version or [])
        db = lancedb.connect(str(c.index))
        retrievers = open_retrievers(p.retrieval.retrievers, db, Embedders(p.retrieval.embedders), versions)
    qa = read_parquet(c.qa)
    splits = p.retrieval.eval_splits
    tracking.setup_ops(s.root, p.evaluation.experiment)
    tags = tracking.provenance_tags(s.root, data_version(s.root, p.data.paths.raw))
    parent = tracking.start_parent(
        f"retrieval-{time.strftime('%Y%m%d-%H%M%S')}",
        {"splits": ",".join(splits), "retrievers": ",".join(retrievers)},
        tags,
        kind="retrieval",
    )
    results = {}
    for name, retriever in retrievers.items():
        result = evaluate_retriever(retriever, qa, splits)
        run_params = run_params_of({name: retriever}, p.retrieval, p.data.chunkers)[name]
        run_id = tracking.log_cell(
            parent, name, run_params, flat_metrics(result), result.questions, tags, kind="retrieval"
        )
        results[name] = RetrieverScores(
            run_id=run_id,
            index_table=run_params["index_table"],
            index_table_version=run_params["index_table_version"],
            splits=result.splits,
        )
        typer.echo(summary_line(name, result))
    artifacts.write(RetrievalFile(parent_run_id=parent, retrievers=results), c.metrics("retrieval"))
    typer.echo(f"scored {len(results)} retrievers on {', '.join(splits)} (MLflow run {parent})")
