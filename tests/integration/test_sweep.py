"""The hyperparameter sweep: config checks, held-out loss, and a real Ray Tune + ASHA run on tiny data."""

import math

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from components.config import PARAM_FILES, QASource
from components.llm.models import load_tokenizer
from components.training.examples import TrainingInputs, build_examples, held_out_examples
from components.training.sweep import best_adapter, run_sweep, search_space, trials_markdown
from components.training.train_step import IGNORE_INDEX
from tests.conftest import PARAMS, REPO, like


def test_the_shipped_sweep_names_an_adapter_and_samples_its_space(params):
    sweep = params.finetune.sweep
    assert sweep.adapter in [a.name for a in params.finetune.adapters]
    space = search_space(sweep)
    assert set(space) == set(sweep.space)
    assert all(isinstance(v, int) for v in space["r"].categories)  # ranks stay integers


def test_sweep_turned_off_exits_2_and_says_what_to_add(tmp_path, monkeypatch):
    from flows.cli import app

    (tmp_path / "params").mkdir()
    for name in PARAM_FILES:
        data = yaml.safe_load((REPO / "params" / f"{name}.yaml").read_text())
        if name == "finetune":
            data["sweep"] = None
        (tmp_path / "params" / f"{name}.yaml").write_text(yaml.safe_dump(data))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["sweep"])
    assert result.exit_code == 2
    assert "`sweep: null`" in result.output and "docs/finetuning.md" in result.output


@pytest.fixture(scope="module")
def tiny(base_model_dir, params):
    tokenizer = load_tokenizer(base_model_dir)
    split = ["train"] * 8 + ["tune"] * 4 + ["test"] * 4
    qa = pd.DataFrame(
        {"question": [f"Code {i}?" for i in range(16)], "answers": [[f"C{i}"] for i in range(16)], "split": split}
    )
    inputs = TrainingInputs(documents=pd.DataFrame({"text": ["Country 0 has the code C0."]}), qa=qa)
    base = like(
        PARAMS.finetune.adapters[0],
        name="tiny",
        batch_size=2,
        grad_accum=1,
        max_length=64,
        data=[QASource(source="qa", weight=1.0)],
    )
    prompts = params.evaluation.prompts
    return inputs, tokenizer, base, prompts


def test_held_out_examples_are_tune_questions_in_the_adapters_answer_only_format(tiny):
    inputs, tokenizer, base, prompts = tiny
    held = held_out_examples(inputs, tokenizer, base.model_copy(update={"data": []}), prompts, n_questions=3)
    assert len(held) == 3  # a corpus-only adapter is measured on closed-book QA
    text = [tokenizer.decode(e["input_ids"]) for e in held]
    assert all(f"Code {i}?" in t for i, t in zip(range(8, 11), text, strict=True))  # the first tune questions
    assert all(IGNORE_INDEX in e["labels"] for e in held)  # the prompt is not scored
    with pytest.raises(ValueError, match="no 'tune' questions"):
        held_out_examples(
            TrainingInputs(inputs.documents, inputs.qa[inputs.qa["split"] == "train"]), tokenizer, base, prompts, 3
        )


def test_a_sweep_runs_real_trials_and_asha_stops_a_diverging_one(tiny, base_model_dir, tmp_path):
    import ray

    inputs, tokenizer, base, prompts = tiny
    examples = build_examples(inputs, tokenizer, base, prompts)
    held = held_out_examples(inputs, tokenizer, base, prompts, n_questions=4)
    # a grid runs in order: a sane learning rate sets the bar at step 2, then 5.0 blows the adapter up
    cfg = like(
        PARAMS.finetune.sweep,
        adapter="tiny",
        num_samples=1,
        max_steps=4,
        grace_period=2,
        reduction_factor=2,
        eval_every=2,
        max_concurrent=1,
        space={"learning_rate": {"grid": [0.001, 5.0]}, "r": {"choice": [4]}},
    )
    ray.shutdown()  # a fresh local Ray, started by the sweep with the state API it asks for
    try:
        trials, curves = run_sweep(
            examples,
            held,
            base_model_dir,
            base,
            cfg,
            like(PARAMS.finetune.ray, num_workers=1, max_failures=0),
            tmp_path,
        )
    finally:
        ray.shutdown()
    assert len(trials) == 2 and trials["error"].isna().all(), trials.to_string()
    assert (trials["planned_steps"] == 4).all() and (trials["steps"] <= 4).all()
    completed, stopped = trials.iloc[0], trials.iloc[1]  # best first
    assert (completed["learning_rate"], completed["steps"], completed["stopped"]) == (0.001, 4, False)
    # ASHA stops the diverging learning rate at the first rung, right after the grace period
    assert (stopped["learning_rate"], stopped["steps"], stopped["stopped"]) == (5.0, 2, True), trials.to_string()
    assert stopped["tune_loss"] > completed["tune_loss"]
    # every trial has a tune-loss curve measured at its eval steps
    for trial in trials["trial"]:
        assert [r["step"] for r in curves[trial] if not math.isnan(r.get("tune_loss", math.nan))][:1] == [2]
    best = best_adapter(trials, base, list(cfg.space))
    assert best.name == "tiny-tuned" and best.learning_rate == trials.iloc[0]["learning_rate"] == 0.001
    report = trials_markdown(trials, best, base)
    assert "Proposed adapter" in report and "name: tiny-tuned" in report and report.count("| trial") == 1
