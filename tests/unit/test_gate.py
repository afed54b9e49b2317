"""The gate in front of @champion: the non-inferiority verdict, its questions, and what the register stage serves."""

from __future__ import annotations

import json
import math
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml

from components import tracking
from components.catalog import artifacts
from components.catalog.artifacts import BestFile
from components.decision.gate import (
    CHAMPION,
    NEW,
    anchor_moves,
    anchored,
    first_champion,
    gate_groups_guard,
    non_inferiority,
    same_bundle,
)
from components.serving.champion import gate_questions, question_groups
from tests.conftest import PARAMS, copy_store, like
from tests.gate_project import ALIAS, NAME, edit_params, gate, gate_project, recommend, register_here

STATS = like(PARAMS.evaluation.statistics, resamples=1000, seed=0)


def _scores(new: list[float], champion: list[float]) -> pd.DataFrame:
    return pd.DataFrame({NEW: new, CHAMPION: champion}, index=[f"q{i}" for i in range(len(new))])


def _verdict(scores: pd.DataFrame, margin: float):
    return non_inferiority(scores, margin, STATS, new="a+none", champion="ragtune-qa v1", metric="f1", split="dev")


def test_the_gate_passes_a_better_or_equal_cell_and_refuses_a_clearly_worse_one():
    rng = np.random.default_rng(0)
    champion = rng.uniform(0.3, 0.7, 60)
    better = _verdict(_scores(list(champion + 0.1), list(champion)), margin=0.02)
    assert better.passed and better.diff == pytest.approx(0.1) and better.diff_low > 0
    same = _verdict(_scores(list(champion), list(champion)), margin=0.02)
    assert same.passed and same.diff_low == pytest.approx(0.0)
    worse = _verdict(_scores(list(champion - 0.2), list(champion)), margin=0.05)
    assert not worse.passed and worse.reason == "inferior" and worse.diff_high == pytest.approx(-0.2)
    assert worse.questions == 60 and worse.new_mean < worse.champion_mean


def test_the_verdict_is_the_lower_end_of_the_paired_interval_against_minus_the_margin():
    # a mean drop of 0.02 with noise: the interval's lower end is below -0.02 but above -0.2
    rng = np.random.default_rng(1)
    champion = rng.uniform(0.2, 0.8, 80)
    new = champion - 0.02 + rng.normal(0, 0.05, 80)
    tight, loose = _verdict(_scores(list(new), list(champion)), 0.02), _verdict(_scores(list(new), list(champion)), 0.2)
    assert tight.diff_low == loose.diff_low and -0.2 < tight.diff_low < -0.02
    assert not tight.passed and loose.passed
    # paired: the difference's interval is far narrower than the spread of either cell's scores
    assert tight.diff_high - tight.diff_low < 0.1


def test_one_question_flipped_among_few_cannot_be_told_from_noise():
    """One question lost among 24 is a drop of 0.042, inside a 0.05 margin by the point estimate; the
    interval reaches below -0.05, so the gate refuses: so few questions cannot show non-inferiority."""
    champion = [1.0] * 12 + [0.0] * 12
    new = [1.0] * 11 + [0.0] * 13
    verdict = _verdict(_scores(new, champion), margin=0.05)
    assert verdict.diff == pytest.approx(-1 / 24)
    assert verdict.diff_low <= -1 / 24 and not verdict.passed  # the interval reaches below -0.05


def test_paraphrases_of_one_fact_count_once_in_the_interval():
    """Each fact asked twice (a paraphrase pair scores alike): resampled by group, the interval is
    that of 20 facts, wider than the one 40 independent questions would give."""
    rng = np.random.default_rng(2)
    champion = np.repeat(rng.uniform(0.2, 0.8, 20), 2)
    new = champion - 0.03 + np.repeat(rng.normal(0, 0.1, 20), 2)
    scores = _scores(list(new), list(champion))
    groups = pd.Series([f"g{i // 2}" for i in range(40)], index=scores.index)
    alone = _verdict(scores, 0.05)
    grouped = non_inferiority(scores, 0.05, STATS, new="a+none", champion="v1", metric="f1", split="dev", groups=groups)
    assert grouped.groups == 20 and alone.groups == 40
    assert grouped.diff == pytest.approx(alone.diff)
    assert grouped.diff_high - grouped.diff_low > 1.2 * (alone.diff_high - alone.diff_low)


@pytest.mark.parametrize(
    ("scores", "margin", "message"),
    [
        (_scores([0.5], [0.5]), 0.0, "margin"),
        (_scores([math.nan], [0.5]), 0.05, "non-finite"),
        (_scores([], []), 0.05, "no questions"),
    ],
)
def test_the_gate_refuses_bad_inputs(scores, margin, message):
    with pytest.raises(ValueError, match=message):
        _verdict(scores, margin)


def test_the_anchor_bounds_a_pass_by_the_best_champion_so_far():
    """Each pass may lose up to the margin against the champion: against the anchor (the best so far) it may not."""
    rng = np.random.default_rng(3)
    best = rng.uniform(0.4, 0.8, 60)
    champion = best - 0.04  # an earlier pass that lost 0.04
    new = champion - 0.04  # another one: within the margin of the champion, 0.08 below the best
    over_champion = _verdict(_scores(list(new), list(champion)), margin=0.05)
    over_anchor = _verdict(_scores(list(new), list(best)), margin=0.05)
    assert over_champion.passed and not over_anchor.passed
    bounded = anchored(over_champion, over_anchor, "2")
    assert not bounded.passed and bounded.reason == "below-anchor" and bounded.anchor_version == "2"
    assert "best champion so far" in bounded.summary() and not anchor_moves(bounded)
    fine = anchored(over_champion, over_champion, None)  # the anchor is the champion: the pass stands
    assert fine.passed and fine.anchor_mean == over_champion.champion_mean and not anchor_moves(fine)
    better = _verdict(_scores(list(best + 0.05), list(best)), margin=0.05)
    assert anchor_moves(anchored(better, better, "2"))  # a new best: the anchor follows it
    assert anchor_moves(first_champion("a+none", "f1", "test", 0.05))


def test_few_groups_of_the_gates_own_questions_refuse_before_any_comparison():
    """One group (40 paraphrases of one fact with a 0.04 drop, or a lone question scored 0 by both) makes a
    narrow interval out of one piece of evidence: the gate refuses below statistics.min_groups."""
    lone = _verdict(_scores([0.0], [0.0]), margin=0.05)
    assert lone.passed and lone.diff_low == lone.diff_high == 0.0  # what the guard exists for: a zero-width pass
    args = ("a+none", "ragtune-qa version 1", "1", "f1", "test", 0.05)
    refused = gate_groups_guard(*args, questions=40, groups=1, min_groups=30, allow=False)
    assert not refused.passed and refused.reason == "few-gate-groups" and refused.champion_version == "1"
    assert "only 1 independent groups" in refused.summary() and "alias stays" in refused.summary()
    assert gate_groups_guard(*args, questions=40, groups=30, min_groups=30, allow=False) is None
    assert gate_groups_guard(*args, questions=40, groups=1, min_groups=30, allow=True) is None  # judge-only runs


def test_summaries_say_why_with_the_figures():
    assert "no champion yet" in first_champion("a+none", "f1", "dev", 0.05).summary()
    assert "nothing to compare" in same_bundle("a+none", "ragtune-qa version 2", "f1", "dev", 0.05).summary()
    fail = _verdict(_scores([0.0] * 30, [1.0] * 30), 0.05).summary()
    assert fail.startswith("gate FAIL") and "1.0000" in fail and "-margin -0.0500" in fail and "alias stays" in fail


QA = pd.DataFrame(
    {
        "qa_id": ["d2", "d1", "t1", "d3", "r1"],
        "question": ["q d2", "q d1", "q t1", "q d3", "q r1"],
        "answers": [["a"]] * 5,
        "group": ["", "", "", "g", ""],
        "leakage_group": ["q:q d2", "q:q d1", "q:q t1", "g:g", "q:q r1"],
        "split": ["dev", "dev", "test", "dev", "train"],
    }
)


def test_the_gate_reads_the_cells_scores_of_its_split_when_the_evaluation_has_them():
    predictions = pd.DataFrame(
        {
            "qa_id": ["d1", "d2", "t1", "d1"],
            "cell": ["a+none", "a+none", "a+none", "b+none"],
            "split": ["dev", "dev", "test", "dev"],
            "f1": [0.5, 1.0, 0.0, 0.25],
        }
    )
    questions, scores = gate_questions(QA, predictions, "a+none", "f1", "dev", None)
    assert questions["qa_id"].tolist() == ["d1", "d2"]  # only the questions the cell was scored on
    assert scores.tolist() == [0.5, 1.0]
    questions, scores = gate_questions(QA, predictions, "a+none", "f1", "test", None)
    assert questions["qa_id"].tolist() == ["t1"] and scores.tolist() == [0.0]


def test_the_gate_asks_for_answers_when_the_evaluation_did_not_score_the_split_or_the_metric():
    predictions = pd.DataFrame({"qa_id": ["t1"], "cell": ["a+none"], "split": ["test"], "f1": [1.0]})
    questions, scores = gate_questions(QA, predictions, "a+none", "f1", "dev", 2)
    assert scores is None  # the cell must answer the dev questions itself
    assert questions["qa_id"].tolist() == ["d1", "d2"] and set(questions["split"]) == {"dev"}
    questions, scores = gate_questions(QA, predictions, "a+none", "semantic_similarity", "test", None)
    assert scores is None and questions["qa_id"].tolist() == ["t1"]  # not scored by the grid: answered here
    with pytest.raises(ValueError, match="leakage_group"):
        gate_questions(QA.drop(columns=["leakage_group"]), predictions, "a+none", "f1", "test", None)


def test_the_gate_resamples_by_leakage_group_not_by_the_raw_group_field():
    """Two wordings of one question with no ``group`` share a leakage group (as select resamples them)."""
    questions = pd.DataFrame(
        {"qa_id": ["a", "b", "c"], "group": ["", "", "x"], "leakage_group": ["q:same", "q:same", "g:x"]}
    )
    assert question_groups(questions).to_dict() == {"a": "q:same", "b": "q:same", "c": "g:x"}


def _champion():
    return tracking.alias_version(NAME, ALIAS)


@pytest.fixture
def project(tmp_path, monkeypatch, mlflow_db):
    """A project ready for ``ragtune register`` (tests/gate_project.py) on its own sqlite MLflow store."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    copy_store(mlflow_db, tmp_path)
    yield gate_project(tmp_path, monkeypatch)
    mlflow.set_tracking_uri(None)


def test_a_tie_serves_the_cheaper_recommended_cell_not_the_best_mean(project):
    code, _ = register_here()  # no champion yet: the first run passes and says so
    assert code == 0 and gate(project)["passed"] and gate(project)["reason"] == "first"
    champion = _champion()
    assert champion.tags["ragtune.cell"] == "base+none"  # the recommended cell, not the best-by-mean adapter
    assert champion.tags["ragtune.judged_against"] == "none"  # moved by compare-and-set from "no champion"
    assert json.loads((project / "data/metrics/registry.json").read_text())["cell"] == "base+none"
    stored = Path(mlflow.artifacts.download_artifacts(f"models:/{NAME}/1"))  # a model from code, no pickle
    flavor = yaml.safe_load((stored / "MLmodel").read_text())["flavors"]["python_function"]
    assert Path(flavor["model_code_path"]).name == "pyfunc_code.py" and not list(stored.rglob("*.pkl"))

    code, _ = register_here()  # the same bundle again: nothing to compare, the alias stays on the same version
    again = gate(project)
    assert code == 0 and again["passed"] and again["reason"] == "same" and again["champion_version"] == "1"
    assert _champion().version == champion.version


def test_an_unloadable_champion_is_never_replaced(project, capsys):
    register_here(capsys)
    edit_params(project, statistics__min_groups=2)
    recommend(project, "lora-r8-qv+none")  # another bundle: the gate must score the champion, which cannot load
    code, out = register_here(capsys)
    assert code == 1 and "Traceback" not in out, out
    lines = [line for line in out.splitlines() if line.startswith("gate")]
    assert len(lines) == 1 and lines[0].startswith("gate: cannot judge lora-r8-qv+none: "), out
    assert "ragtune-qa version 1 could not answer" in lines[0] and f"{NAME}@{ALIAS} stays where it was" in lines[0]
    assert str(_champion().version) == "1"


def test_the_gate_counts_its_own_question_groups_by_leakage_group(project, capsys):
    """40 test questions, 20 leakage groups (each asked in two wordings, no ``group`` given): below
    statistics.min_groups (30) the gate refuses before loading the champion; the raw field would count 40."""
    register_here()
    recommend(project, "lora-r8-qv+none")
    code, out = register_here(capsys)
    verdict = gate(project)
    assert code == 1 and not verdict["passed"] and verdict["reason"] == "few-gate-groups", out
    assert (verdict["questions"], verdict["groups"], verdict["min_groups"]) == (40, 20, 30)
    assert "only 20 independent groups" in out and str(_champion().version) == "1"


def test_a_recommendation_test_did_not_confirm_is_refused_unless_allowed(project, capsys):
    best = artifacts.read(BestFile, project / "data/metrics/best.json")
    beaten = best.confirmation.model_copy(update={"choice": "not confirmed", "beaten_by": "raft-r8-qv+none"})
    artifacts.write(best.model_copy(update={"confirmation": beaten}), project / "data/metrics/best.json")
    code, out = register_here(capsys)
    verdict = gate(project)
    assert code == 1 and verdict["reason"] == "unconfirmed" and verdict["confirmation"] == "not confirmed"
    assert verdict["beaten_by"] == "raft-r8-qv+none" and "raft-r8-qv+none beat it on test" in out
    assert f"gate refused base+none: {NAME}@{ALIAS} stays" in out and _champion() is None
    edit_params(project, gate__allow_unconfirmed=True)  # told to go on: judged (the first one: registered)
    assert register_here()[0] == 0 and gate(project)["reason"] == "first" and _champion() is not None


def test_a_recommendation_on_too_few_question_groups_is_refused_and_never_registered(project, capsys):
    few = artifacts.read(BestFile, project / "data/metrics/best.json").model_copy(
        update={"few_groups": True, "groups": 3}
    )
    artifacts.write(few, project / "data/metrics/best.json")
    code, out = register_here(capsys)
    assert code == 1 and gate(project)["reason"] == "few-groups" and gate(project)["groups"] == 3
    assert "only 3 independent dev question groups" in out and _champion() is None

    edit_params(project, gate__allow_few_groups=True)  # a registering run may not use the escape hatch
    code, out = register_here(capsys)
    assert code == 2 and "gate.allow_few_groups" in out and "judge_only" in out and _champion() is None
    edit_params(project, gate__judge_only=True)  # judge-only (a CI profile): judged, nothing registered
    code, out = register_here(capsys)
    assert code == 0 and gate(project)["reason"] == "first" and "nothing registered" in out
    assert _champion() is None
    assert json.loads((project / "data/metrics/registry.json").read_text())["registered"] is False


def test_the_alias_moves_only_from_the_version_the_gate_judged_against(project):
    """Compare-and-set: another run moved the alias between this run's judgement and its move."""
    register_here()  # version 1 is champion
    edit_params(project, statistics__min_groups=2)
    recommend(project, "lora-r8-qv+none")
    from components.serving.register import register_bundle

    best = artifacts.read(BestFile, project / "data/metrics/best.json")
    bundle = json.loads(mlflow.artifacts.load_text(f"models:/{NAME}/1/artifacts/bundle.json"))
    from components.serving.bundle import Bundle

    other = Bundle.model_validate({**bundle, "examples": [["q", "a"]]})  # another bundle: version 2
    second = register_bundle(NAME, other, project / "data/models/base", None)
    assert second["version"] == "2" and best.recommended.cell == "lora-r8-qv+none"
    with pytest.raises(tracking.AliasMovedError, match="judged against no champion"):
        tracking.move_alias(NAME, ALIAS, "2", expected=None)  # judged when there was none: refused
    assert str(_champion().version) == "1"
    tracking.move_alias(NAME, ALIAS, "2", expected="1")  # judged against version 1, still there: moves
    moved = _champion()
    assert str(moved.version) == "2" and moved.tags["ragtune.judged_against"] == "1"
    with pytest.raises(tracking.AliasMovedError, match="now points at version 2"):
        tracking.move_alias(NAME, ALIAS, "1", expected="1")  # a run that judged against version 1, too late
    assert str(_champion().version) == "2"


def test_only_mlflows_not_found_means_no_champion(project):
    assert tracking.alias_version(NAME, ALIAS) is None  # no such model: MLflow says so
    register_here()
    assert tracking.alias_version(NAME, "no-such-alias") is None  # the model's record holds no such alias
    assert str(tracking.alias_version(NAME, ALIAS).version) == "1"
