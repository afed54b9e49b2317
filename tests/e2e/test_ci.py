"""`ragtune ci`, the command the new-data workflow runs, end to end against a real MLflow server and DVC remote.

A team's repository (a tiny project whose data/raw is DVC-tracked in a local remote) and a CI
checkout cloned from it. The data: towns and their mayors, a fact the 135M base model does not
know but reads off a retrieved passage ("The mayor of Alder is Mira Holt": token F1 0.5), so RAG
beats closed-book. The server already holds a weak champion. First new data is pushed and
`ragtune ci` pulls it, runs the pipeline, and its recommended cell beats the champion: the alias
moves. Then damaged data is pushed (each document names another town's mayor): the new cell
answers worse than the champion, which still retrieves from the index version it was evaluated
on; the gate refuses, the command exits 1 and the alias stays. The second run also starts while
another run holds the checkout's lock. ``ragtune ci`` runs the team's committed params (a -S profile
would only judge): the tiny profile below is committed in the team's repository, with
``statistics.min_groups`` lowered to what its few questions can give.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from pathlib import Path

import mlflow
import pytest
import yaml

from components.config import PromptConfig
from components.io import dir_hash
from components.serving.bundle import make_bundle
from components.serving.register import register_bundle
from flows.runguard import pipeline_lock
from tests.conftest import PARAMS, like, write_jsonl
from tests.e2e.servers import mlflow_server
from tests.tiny_project import (
    build_tiny_project,
    edit_yaml,
    git,
    project_env,
    push_raw,
    ragtune_cmd,
    sh,
    track_raw_with_dvc,
)

NAME, ALIAS = "ragtune-qa", "champion"
TOWNS = ["Alder", "Birch", "Cedar", "Dunmore", "Elmstead", "Fairholt", "Glenbrook", "Harrowgate", "Ivybridge"]
TOWNS += ["Juniper", "Kestrel", "Larkspur", "Marlow", "Northfield", "Oakhurst", "Pinecrest"]
MAYORS = ["Mira Holt", "Tomas Reed", "Lena Park", "Oskar Vale", "Ines Moro", "Pavel Kirr", "Rosa Lind", "Ugo Salt"]
MAYORS += ["Vera Quist", "Wim Dahl", "Yara Bell", "Zeno Fitch", "Anouk Prim", "Boris Tall", "Cleo Marsh", "Dario Finn"]


def team_params(root: Path) -> None:
    """The team's committed params: few questions, one training worker; room for a name in the answer, the one
    passage that holds it; groups and the test confirmation sized for this tiny data set (it registers)."""

    def evaluation(data):
        data.update(max_questions=8)
        data["generation"]["max_new_tokens"] = 16
        data["statistics"]["min_groups"] = 3
        data["gate"].update(judge_only=False, allow_few_groups=False, allow_unconfirmed=True)

    edit_yaml(root / "params" / "evaluation.yaml", evaluation)
    edit_yaml(root / "params" / "finetune.yaml", lambda d: d["ray"].update(num_workers=1))
    edit_yaml(root / "params" / "retrieval.yaml", lambda d: d["retriever_defaults"].update(top_k=1))


@pytest.fixture(scope="module")
def team(tmp_path_factory, base_model_dir):
    """The team's repository, a CI checkout of it, an MLflow server whose champion is a weak closed-book model."""
    tmp = tmp_path_factory.mktemp("ci")
    origin = build_tiny_project(tmp / "origin", base_model_dir, adapters=1, steps=1)
    edit_yaml(origin / "params" / "data.yaml", lambda d: d["split"].update(dev=0.3, test=0.4))
    team_params(origin)
    write_towns(origin / "data" / "raw", n=12)
    git(origin, "add", "-A")
    git(origin, "commit", "-q", "-m", "the towns, more dev questions for the gate")
    track_raw_with_dvc(origin, tmp / "dvc-remote")
    checkout = tmp / "checkout"
    sh("git", "clone", "-q", str(origin), str(checkout), cwd=tmp)
    with mlflow_server(tmp, project_env(origin)) as url:
        mlflow.set_tracking_uri(url)
        try:
            mlflow.set_experiment("weak-champion")
            useless = PromptConfig(
                system="Reply with the word no.", closed_book="{question}", with_context="{context}{question}"
            )
            bundle = make_bundle(
                "base",
                None,
                {},
                None,
                None,
                useless,
                like(PARAMS.evaluation.generation, max_new_tokens=1, min_new_tokens=1),
                dir_hash(base_model_dir),
            )
            weak = register_bundle(NAME, bundle, base_model_dir, None, alias=ALIAS)
        finally:
            mlflow.set_tracking_uri(None)
        yield {"origin": origin, "checkout": checkout, "url": url, "tmp": tmp, "weak": weak}


def write_towns(raw: Path, n: int, shift: int = 0) -> None:
    """``n`` towns as documents and two questions each (a paraphrase group); ``shift`` names the wrong mayors."""
    docs, qa = [], []
    for i, town in enumerate(TOWNS[:n]):
        mayor, told = MAYORS[i], MAYORS[(i + shift) % n]
        slug = f"town/{town.lower()}"
        text = (
            f"# {town}\n\n{town} is a town of the valley. The mayor of {town} is {told}. It holds a market on Fridays."
        )
        docs.append({"id": slug, "text": text})
        for k, question in enumerate((f"Who is the mayor of {town}?", f"Name the mayor of {town}.")):
            qa.append({"id": f"{slug}-{k}", "question": question, "answers": [mayor], "doc_ids": [slug], "group": slug})
    shutil.rmtree(raw, ignore_errors=True)
    write_jsonl(raw / "docs" / "towns.jsonl", docs)
    write_jsonl(raw / "qa.jsonl", qa)


def _champion(url: str):
    return mlflow.MlflowClient(tracking_uri=url).get_model_version_by_alias(NAME, ALIAS)


def _ci(team: dict, summary: Path, log: Path) -> tuple[int, str]:
    """``ragtune ci`` in the CI checkout, its output going to ``log``; (exit code, output)."""
    env = project_env(team["checkout"], MLFLOW_TRACKING_URI=team["url"], GITHUB_EVENT_NAME="push")
    cmd = ragtune_cmd("ci", "--summary", str(summary))
    with log.open("w") as out:
        code = subprocess.run(cmd, cwd=team["checkout"], env=env, stdout=out, stderr=subprocess.STDOUT, timeout=2400)
    return code.returncode, log.read_text()


def test_better_data_moves_the_alias(team):
    origin = team["origin"]
    write_towns(origin / "data" / "raw", n=16)  # four more towns and their questions
    md5 = push_raw(origin, "new data")
    summary = team["tmp"] / "summary-1.md"
    code, output = _ci(team, summary, team["tmp"] / "ci-1.log")
    assert code == 0, output[-12000:]
    checkout = team["checkout"]
    assert git(checkout, "rev-parse", "HEAD") == git(origin, "rev-parse", "HEAD")  # pulled the new commit
    lock = yaml.safe_load((checkout / "dvc.lock").read_text())
    assert next(d["md5"] for d in lock["stages"]["ingest"]["deps"] if d["path"] == "data/raw") == md5  # and its data
    champion = _champion(team["url"])
    assert champion.version != team["weak"]["version"]  # the alias moved
    best = json.loads((checkout / "data/metrics/best.json").read_text())
    assert champion.tags["ragtune.cell"] == best["recommended"]["cell"]
    gate = json.loads((checkout / "data/metrics/gate.json").read_text())
    assert gate["passed"] and gate["reason"] == "non-inferior" and gate["split"] == "test"
    assert champion.tags["ragtune.judged_against"] == team["weak"]["version"]  # moved by compare-and-set
    text = summary.read_text()
    assert "ragtune CI: passed" in text and "gate PASS" in text and f"version {champion.version} @{ALIAS}" in text
    assert "judge only" not in text and "<summary>Leaderboard</summary>" in text


def test_damaged_data_is_refused_and_the_alias_stays(team):
    before = _champion(team["url"])
    origin = team["origin"]
    write_towns(origin / "data" / "raw", n=16, shift=1)  # every document now names another town's mayor
    push_raw(origin, "damaged data")
    summary, log = team["tmp"] / "summary-2.md", team["tmp"] / "ci-2.log"
    held = threading.Event()

    def another_run() -> None:  # a scheduled run holds this checkout's lock until CI says it waits for it
        with pipeline_lock(team["checkout"], None, print, name="scheduled"):
            held.set()
            deadline = time.monotonic() + 600
            while "another pipeline run holds" not in (log.read_text() if log.is_file() else ""):
                assert time.monotonic() < deadline
                time.sleep(1)

    holder = threading.Thread(target=another_run, daemon=True)
    holder.start()
    held.wait(10)
    code, output = _ci(team, summary, log)
    holder.join(5)
    assert code == 1, output[-12000:]
    assert "another pipeline run holds" in output and "run scheduled" in output  # it said it was waiting
    assert "gate FAIL" in output and f"{NAME}@{ALIAS} stays" in output
    after = _champion(team["url"])
    assert (after.version, after.run_id) == (before.version, before.run_id)  # the alias did not move
    gate = json.loads((team["checkout"] / "data/metrics/gate.json").read_text())
    assert not gate["passed"] and gate["diff_low"] <= -gate["margin"] and gate["new_mean"] < gate["champion_mean"]
    text = summary.read_text()
    assert "ragtune CI: failed (exit code 1)" in text and "gate FAIL" in text
