"""The gate in front of @champion: the non-inferiority verdict, its questions, and what the register stage serves."""

from __future__ import annotations

import json
import math

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml

from components import tracking
from components.catalog import artifacts
from components.catalog.artifacts import BestFile
from components.decision.gate import CHAMPION, NEW, first_champion, non_inferiority, same_bundle
from components.serving.champion import gate_questions
from tests.conftest import PARAMS, best_file, choice, like, params_project

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
        "split": ["dev", "dev", "test", "dev", "train"],
    }
)


def test_the_gate_reads_dev_scores_of_the_cell_when_the_evaluation_has_them():
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


def test_the_gate_never_takes_test_scores_and_asks_for_answers_instead():
    predictions = pd.DataFrame({"qa_id": ["t1"], "cell": ["a+none"], "split": ["test"], "f1": [1.0]})
    questions, scores = gate_questions(QA, predictions, "a+none", "f1", "dev", 2)
    assert scores is None  # the cell must answer the dev questions itself
    assert questions["qa_id"].tolist() == ["d1", "d2"] and set(questions["split"]) == {"dev"}


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project whose grid tied an expensive best cell with a cheaper one; a sqlite MLflow store; no model."""
    params_project(tmp_path, monkeypatch)
    finetune = yaml.safe_load((tmp_path / "params" / "finetune.yaml").read_text())
    finetune["adapters"] = finetune["adapters"][:1]
    (tmp_path / "params" / "finetune.yaml").write_text(yaml.safe_dump(finetune, sort_keys=False))
    adapter = finetune["adapters"][0]["name"]
    (tmp_path / "data/models/base").mkdir(parents=True)
    (tmp_path / "data/models/base/config.json").write_text("{}")  # registering never loads the weights
    (tmp_path / f"data/models/adapters/{adapter}").mkdir(parents=True)
    (tmp_path / f"data/models/adapters/{adapter}/adapter_config.json").write_text("{}")
    tracking.setup(tmp_path, PARAMS.evaluation.experiment)
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
    artifacts.write(tied, tmp_path / "data/metrics/best.json")
    (tmp_path / "data/processed").mkdir(parents=True)
    QA.assign(doc_ids=[[]] * len(QA)).to_parquet(tmp_path / "data/processed/qa.parquet")
    (tmp_path / "data/eval").mkdir(parents=True)
    pd.DataFrame({"qa_id": ["t1"], "cell": ["base+none"], "split": ["test"], "f1": [1.0]}).to_parquet(
        tmp_path / "data/eval/predictions.parquet"
    )
    yield tmp_path
    mlflow.set_tracking_uri(None)


def test_a_tie_serves_the_cheaper_recommended_cell_not_the_best_mean(project):
    from flows.stages import register

    register.main()  # no champion yet: the first run passes and says so
    gate = json.loads((project / "data/metrics/gate.json").read_text())
    assert gate["passed"] and gate["reason"] == "first"
    champion = tracking.alias_version(PARAMS.evaluation.registry.name, PARAMS.evaluation.registry.alias)
    assert champion.tags["ragtune.cell"] == "base+none"  # the recommended cell, not the best-by-mean adapter
    assert json.loads((project / "data/metrics/registry.json").read_text())["cell"] == "base+none"

    register.main()  # the same bundle again: nothing to compare, the alias stays on the same version
    again = json.loads((project / "data/metrics/gate.json").read_text())
    assert again["passed"] and again["reason"] == "same"
    after = tracking.alias_version(PARAMS.evaluation.registry.name, PARAMS.evaluation.registry.alias)
    assert after.version == champion.version


def test_a_recommendation_on_too_few_question_groups_is_refused_unless_allowed(project, capsys):
    import typer

    from flows.stages import register

    few = artifacts.read(BestFile, project / "data/metrics/best.json").model_copy(
        update={"few_groups": True, "groups": 3}
    )
    artifacts.write(few, project / "data/metrics/best.json")
    with pytest.raises(typer.Exit) as refused:
        register.main()
    assert refused.value.exit_code == 1
    gate = json.loads((project / "data/metrics/gate.json").read_text())
    assert not gate["passed"] and gate["reason"] == "few-groups" and gate["groups"] == 3
    assert "only 3 independent dev question groups" in capsys.readouterr().out
    assert tracking.alias_version(PARAMS.evaluation.registry.name, PARAMS.evaluation.registry.alias) is None

    evaluation = project / "params" / "evaluation.yaml"
    values = yaml.safe_load(evaluation.read_text())
    values["gate"]["allow_few_groups"] = True  # told to proceed: judged (and, the first one, registered)
    evaluation.write_text(yaml.safe_dump(values, sort_keys=False))
    register.main()
    assert json.loads((project / "data/metrics/gate.json").read_text())["reason"] == "first"
    assert tracking.alias_version(PARAMS.evaluation.registry.name, PARAMS.evaluation.registry.alias) is not None
