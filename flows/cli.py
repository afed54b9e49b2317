"""The ``ragtune`` command line: it only assembles commands.

Pipeline stages (what dvc.yaml runs) live one per module in ``flows/stages/``; the other commands
in ``flows/commands/``. Every command resolves paths and params through ``flows/common.py``.
"""

from __future__ import annotations

import logging

import typer

from components.redact import redact_logging
from flows.commands import analysis, data, ops, run
from flows.commands import questions as questions_commands
from flows.common import classified
from flows.env import set_offline_defaults
from flows.stages import evaluate, finetune, index, ingest, model, questions, register, retrieval_eval, select

app = typer.Typer(help="ragtune: RAG or fine-tuning, or both? Settle it with measurements.", no_args_is_help=True)

STAGE_COMMANDS = {
    "questions": questions.main,  # `ragtune questions` is a group: the stage and `export` (flows/commands/questions.py)
    "ingest": ingest.main,
    "model": model.main,
    "index": index.main,
    "retrieval-eval": retrieval_eval.main,
    "finetune": finetune.main,
    "evaluate": evaluate.main,
    "select": select.main,
    "register": register.main,
}
for _name, _main in STAGE_COMMANDS.items():  # a transient failure exits 75: the flow retries it (flows/common.py)
    if _name != "questions":
        app.command(_name)(classified(_main))
for _group in (run.app, analysis.app, ops.app):
    app.registered_commands += _group.registered_commands
app.add_typer(data.data_app, name="data")
app.add_typer(questions_commands.app, name="questions")


@app.callback()
def main(verbose: bool = typer.Option(False, "--verbose", "-v", help="debug logging")) -> None:
    set_offline_defaults()
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    redact_logging()  # no log line prints a URL's user:password (components/redact.py)
    if not verbose:  # one INFO line per HTTP request to the Prefect/MLflow API drowns the stage logs
        logging.getLogger("httpx").setLevel(logging.WARNING)


if __name__ == "__main__":
    app()
