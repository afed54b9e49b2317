"""``ragtune ingest``: validate data/raw (and the generated questions), split the questions, chunk the documents."""

from __future__ import annotations

import typer

from flows.common import exits_on, stage


def main() -> None:
    """Validate data/raw, split the questions, chunk the documents into data/processed."""
    from components.data.checks import split_problems
    from components.data.chunking import chunk_documents
    from components.data.errors import DataValidationError
    from components.data.ingest import ingest
    from components.io import atomic_path, write_json

    s = stage("ingest")
    data, c = s.params.data, s.catalog
    with exits_on(DataValidationError):
        result = ingest(c.raw, data.split, data.max_file_mb, generated=c.generated_qa)
    report = dict(result.report)
    with atomic_path(c.processed) as out:
        out.mkdir()
        result.documents.to_parquet(out / c.documents.name, index=False)
        result.qa.to_parquet(out / c.qa.name, index=False)
        for name, chunker in data.chunkers.items():
            chunks = chunk_documents(result.documents, chunker)
            chunks.to_parquet(out / c.chunks(name).name, index=False)
            report[f"chunks_{name}"] = len(chunks)
    write_json(report, c.metrics("ingest"))
    for line in split_problems(report, min_groups=1)[1]:  # evaluate will have nothing to choose or confirm on
        typer.secho(f"warning: {line}", fg=typer.colors.YELLOW, err=True)
    typer.echo(
        f"ingested {report['documents']} documents and {report['questions']} questions "
        f"(train {report['questions_train']}, dev {report['questions_dev']}, test {report['questions_test']})"
    )
