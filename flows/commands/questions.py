"""``ragtune questions``: the stage (no sub-command) and ``ragtune questions export``, the review file."""

from __future__ import annotations

from pathlib import Path

import typer

from flows.common import classified, exits_on, params, root
from flows.stages import questions as stage

OUT_OPTION = typer.Option(Path("questions-review.csv"), "--out", help="the CSV file to write")
app = typer.Typer(help="Questions generated from the documents: the stage, and the file people review.")


@app.callback(invoke_without_command=True)
def questions(ctx: typer.Context) -> None:
    """Generate question-answer pairs from the documents (the DVC stage `questions`); see `export`."""
    if ctx.invoked_subcommand is None:
        classified(stage.main)()


@app.command()
def export(
    out: Path = OUT_OPTION,
) -> None:
    """Write the generated questions as CSV for review; bring the edited file back with `ragtune data add --qa`."""
    import json

    from components.catalog import catalog
    from components.io import write_text
    from components.questions.export import review_csv

    c = catalog(root(), params().data.paths)
    with exits_on(FileNotFoundError, hint=": run `ragtune questions` (or `ragtune run`) first"):
        lines = c.generated_qa.read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines if line.strip()]
    if not records:
        raise typer.Exit(_nothing(c))
    write_text(review_csv(records), out)
    typer.echo(
        f"wrote {len(records)} generated questions to {out}: fix or delete rows, then "
        f"`ragtune data add --qa {out}` (they come back marked reviewed)"
    )


def _nothing(c) -> int:
    typer.secho(f"no generated questions in {c.generated_qa} (see {c.questions_report})", fg=typer.colors.RED, err=True)
    return 1
