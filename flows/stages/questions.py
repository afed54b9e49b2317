"""``ragtune questions``: generate question-answer pairs from the documents when data/raw has no question file."""

from __future__ import annotations

import typer

from flows.common import exits_on, stage


def main() -> None:
    """Write questions for the documents (answer first, filtered) into data/questions; a no-op if raw has a QA file."""
    from components.catalog import artifacts
    from components.data.errors import DataValidationError
    from components.io import atomic_path, write_json
    from components.questions.run import questions_for_raw

    s = stage("questions")
    q, c, data = s.params.questions, s.catalog, s.params.data
    with exits_on(DataValidationError, FileNotFoundError):
        pairs, report = questions_for_raw(
            c.raw, c.base_model, c.question_cache, data.chunkers[q.chunker], data.max_file_mb, q
        )
    with atomic_path(c.questions) as out:
        out.mkdir()
        text = "".join(artifacts.json_line(p) for p in pairs)
        (out / c.generated_qa.name).write_text(text, encoding="utf-8")
        artifacts.write(report, out / c.questions_report.name)
    steps = {f"kept_after_{s.step}": s.kept for s in report.steps}
    write_json({"generated": report.generated, "candidates": report.candidates, **steps}, c.metrics("questions"))
    if not report.generated:
        typer.echo(f"questions: nothing generated: {report.reason}")
        return
    typer.echo(
        f"questions: kept {report.kept} of {report.candidates} candidates (target {report.target}) in "
        f"{report.documents_covered} of {report.documents} documents; {report.completions_generated} completions "
        f"generated, the rest from the cache ({report.seconds:.0f} s)"
    )
