"""A project ready for ``ragtune register``: best.json, qa.parquet and predictions.parquet as the earlier
stages write them, the cells' runs in MLflow, and a base model that registers but never loads.

Shared by the gate's unit tests, the registry failure injections and the ``ragtune ci`` command test:
the register stage runs for real (its gate, the registry, the alias), in seconds, without a model.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import yaml

from components import tracking
from components.catalog import artifacts
from components.catalog.artifacts import BestFile
from tests.conftest import PARAMS, best_file, choice, params_project

NAME, ALIAS = PARAMS.evaluation.registry.name, PARAMS.evaluation.registry.alias
QUESTIONS = 40  # test questions, in 20 leakage groups (two wordings of each)


def gate_project(root: Path, monkeypatch) -> Path:
    """``root`` as the working directory of a project whose grid tied an expensive cell with a cheaper one.

    MLflow is whatever ``MLFLOW_TRACKING_URI`` names (the sqlite store in ``root`` when unset). The base
    model is a folder with an empty config.json: registering never loads the weights, and a champion
    registered with it cannot be loaded (the gate's "unloadable champion"). ``QUESTIONS`` test
    questions in half as many leakage groups, each scored 1.0 for both cells.
    """
    import os

    uri = os.environ.get("MLFLOW_TRACKING_URI")
    params_project(root, monkeypatch)
    if uri:  # params_project unsets it: the project's store is the server
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    finetune = yaml.safe_load((root / "params" / "finetune.yaml").read_text())
    finetune["adapters"] = finetune["adapters"][:1]
    (root / "params" / "finetune.yaml").write_text(yaml.safe_dump(finetune, sort_keys=False))
    adapter = finetune["adapters"][0]["name"]
    (root / "data/models/base").mkdir(parents=True)
    (root / "data/models/base/config.json").write_text("{}")  # registering never loads the weights
    (root / f"data/models/adapters/{adapter}").mkdir(parents=True)
    (root / f"data/models/adapters/{adapter}/adapter_config.json").write_text("{}")
    tracking.setup(root, PARAMS.evaluation.experiment)
    parent = tracking.start_parent("pipeline", {}, {})
    cells = {f"{adapter}+none": 0.62, "base+none": 0.60}
    runs = {
        c: tracking.log_cell(parent, c, {"model": c.split("+")[0]}, {"f1": m}, pd.DataFrame({"qa_id": ["t1"]}), {})
        for c, m in cells.items()
    }
    # the best mean costs a training run; the cheaper cell is tied with it: the recommendation
    best = choice(f"{adapter}+none", runs[f"{adapter}+none"], 0.62, cost_per_1k_amortised=0.9)
    cheaper = choice("base+none", runs["base+none"], 0.60, cost_per_1k_amortised=0.1)
    tied = best_file(cheaper, best, parent_run_id=parent, tied=[best.cell, cheaper.cell])
    artifacts.write(tied, root / "data/metrics/best.json")
    ids = [f"t{i:02d}" for i in range(QUESTIONS)]
    qa = pd.DataFrame(
        {
            "qa_id": ids,
            "question": [f"question {i}" for i in range(QUESTIONS)],
            "answers": [["a"]] * QUESTIONS,
            "doc_ids": [[]] * QUESTIONS,
            "group": [""] * QUESTIONS,  # no group given: the pairs share a leakage group by their normalised text
            "leakage_group": [f"q:question {i // 2}" for i in range(QUESTIONS)],
            "split": ["test"] * QUESTIONS,
        }
    )
    (root / "data/processed").mkdir(parents=True)
    qa.to_parquet(root / "data/processed/qa.parquet")
    (root / "data/eval").mkdir(parents=True)
    scores = {"qa_id": ids * 2, "cell": ["base+none"] * QUESTIONS + [best.cell] * QUESTIONS, "split": "test"}
    pd.DataFrame({**scores, "f1": [1.0] * 2 * QUESTIONS}).to_parquet(root / "data/eval/predictions.parquet")
    return root


def recommend(root: Path, cell: str) -> None:
    """Make ``cell`` (one of the ranking's) the recommendation of best.json."""
    best = artifacts.read(BestFile, root / "data/metrics/best.json")
    pick = next(c for c in best.ranking if c.cell == cell)
    artifacts.write(best.model_copy(update={"recommended": pick}), root / "data/metrics/best.json")


def edit_params(root: Path, **changes) -> None:
    """Set ``section__key=value`` in the project's params/evaluation.yaml (``gate__judge_only=True``)."""
    evaluation = root / "params" / "evaluation.yaml"
    values = yaml.safe_load(evaluation.read_text())
    for key, value in changes.items():
        section, _, name = key.partition("__")
        values[section][name] = value
    evaluation.write_text(yaml.safe_dump(values, sort_keys=False))


def register_here(capsys=None) -> tuple[int, str]:
    """``ragtune register`` in this process: its exit code and what it printed (with ``capsys``)."""
    import typer

    from flows.stages import register

    if capsys is not None:
        capsys.readouterr()  # only this run's output
    try:
        register.main()
        code = 0
    except typer.Exit as exc:
        code = exc.exit_code
    out = capsys.readouterr() if capsys is not None else None
    return code, (out.out + out.err) if out is not None else ""


def gate(root: Path) -> dict:
    """The verdict the last register run wrote."""
    import json

    return json.loads((root / "data/metrics/gate.json").read_text())
