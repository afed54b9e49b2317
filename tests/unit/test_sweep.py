"""The hyperparameter sweep: config checks, held-out loss, and a real Ray Tune + ASHA run on tiny data."""

import math
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from components.config import PARAM_FILES, AdapterConfig, ConfigError, QASource, RayConfig, SweepConfig, load_params
from components.finetune import TrainingInputs, build_examples, held_out_examples
from components.models import load_tokenizer
from components.sweep import best_adapter, run_sweep, search_space, trial_adapter, trials_markdown
from components.train_step import IGNORE_INDEX, collate, held_out_loss

REPO = Path(__file__).resolve().parents[2]


def _params_with(tmp_path: Path, sweep) -> Path:
    for name in PARAM_FILES:
        data = yaml.safe_load((REPO / "params" / f"{name}.yaml").read_text())
        if name == "finetune":
            data.pop("sweep", None)
            if sweep is not None:
                data["sweep"] = sweep
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(data))
    return tmp_path


def test_the_shipped_sweep_names_an_adapter_and_samples_its_space(params):
    sweep = params.finetune.sweep
    assert sweep.adapter in [a.name for a in params.finetune.adapters]
    space = search_space(sweep)
    assert set(space) == set(sweep.space)
    assert all(isinstance(v, int) for v in space["r"].categories)  # ranks stay integers


@pytest.mark.parametrize(
    ("sweep", "message"),
    [
        ({"adapter": "nope", "space": {"r": {"choice": [4]}}}, "sweep.adapter 'nope' is not one of the adapters"),
        (
            {"adapter": "lora-r8-qv", "space": {"r": {"choice": [4.5]}}},
            "space.r must be a choice or grid of positive integers",
        ),
        (
            {"adapter": "lora-r8-qv", "space": {"learning_rate": {}}},
            "give exactly one of choice, grid, loguniform, uniform",
        ),
        (
            {"adapter": "lora-r8-qv", "space": {"learning_rate": {"loguniform": [0.0, 0.1]}}},
            "loguniform needs 0 < low < high",
        ),
        ({"adapter": "lora-r8-qv", "space": {"batch_size": {"choice": [2]}}}, "sweep.space.batch_size"),
        (
            {"adapter": "lora-r8-qv", "grace_period": 30, "max_steps": 20, "space": {"r": {"choice": [4]}}},
            "grace_period 30 exceeds max_steps 20",
        ),
    ],
)
def test_a_bad_sweep_section_is_refused_with_the_key_named(tmp_path, sweep, message):
    with pytest.raises(ConfigError) as err:
        load_params(_params_with(tmp_path, sweep))
    assert "finetune.yaml" in str(err.value) and message in str(err.value)


def test_sweep_without_a_sweep_section_exits_2_and_says_what_to_add(tmp_path, monkeypatch):
    from flows.cli import app

    (tmp_path / "params").mkdir()
    _params_with(tmp_path / "params", None)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["sweep"])
    assert result.exit_code == 2
    assert "no `sweep:` section" in result.output and "docs/finetuning.md" in result.output


def test_trial_adapter_applies_hyperparameters_and_validates_them():
    base = AdapterConfig(name="a", r=8, learning_rate=1e-3, max_steps=50, checkpoint_every=10)
    trial = trial_adapter(base, {"r": 4, "learning_rate": 0.01}, max_steps=6)
    assert (trial.r, trial.learning_rate, trial.max_steps, trial.checkpoint_every) == (4, 0.01, 6, None)
    with pytest.raises(ValueError, match="dropout"):
        trial_adapter(base, {"dropout": 1.5}, max_steps=6)


def test_best_adapter_is_the_completed_trial_with_the_lowest_dev_loss():
    base = AdapterConfig(name="a", r=8, learning_rate=1e-3, max_steps=50)
    trials = pd.DataFrame(
        [  # the stopped trial has the lowest loss, but at an earlier step: it does not count
            {
                "trial": "t0",
                "r": 4,
                "learning_rate": 0.01,
                "steps": 2,
                "planned_steps": 6,
                "dev_loss": 0.5,
                "error": None,
            },
            {
                "trial": "t1",
                "r": 16,
                "learning_rate": 0.002,
                "steps": 6,
                "planned_steps": 6,
                "dev_loss": 1.2,
                "error": None,
            },
            {
                "trial": "t2",
                "r": 8,
                "learning_rate": 0.001,
                "steps": 6,
                "planned_steps": 6,
                "dev_loss": 1.5,
                "error": None,
            },
        ]
    )
    best = best_adapter(trials, base, ["r", "learning_rate"])
    assert (best.name, best.r, best.learning_rate, best.max_steps) == ("a-tuned", 16, 0.002, 50)
    assert type(best.r) is int
    assert best_adapter(trials.assign(steps=2), base, ["r"]) is None


def test_held_out_loss_is_the_models_own_loss_summed_over_supervised_tokens():
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    model = LlamaForCausalLM(
        LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2)
    )
    examples = [
        {"input_ids": [1, 5, 9, 12, 3], "labels": [IGNORE_INDEX, IGNORE_INDEX, 9, 12, 3]},
        {"input_ids": [1, 7, 2], "labels": [IGNORE_INDEX, 7, 2]},
    ]
    model.train()
    total, count = held_out_loss(model, examples, "cpu", batch_size=1)
    assert count == 5 and model.training  # 3 + 2 supervised next tokens; training mode restored
    expected = 0.0
    model.eval()
    with torch.no_grad():
        for e in examples:
            ids, labels, mask = collate([e])
            n = int((labels[:, 1:] != IGNORE_INDEX).sum())
            expected += float(model(input_ids=ids, attention_mask=mask, labels=labels).loss) * n
    assert math.isclose(total, expected, rel_tol=1e-5)
    batched, _ = held_out_loss(model, examples, "cpu", batch_size=2)  # padding changes nothing
    assert math.isclose(batched, expected, rel_tol=1e-5)


@pytest.fixture(scope="module")
def tiny(base_model_dir, params):
    tokenizer = load_tokenizer(base_model_dir)
    split = ["train"] * 8 + ["dev"] * 4 + ["test"] * 4
    qa = pd.DataFrame(
        {"question": [f"Code {i}?" for i in range(16)], "answers": [[f"C{i}"] for i in range(16)], "split": split}
    )
    inputs = TrainingInputs(documents=pd.DataFrame({"text": ["Country 0 has the code C0."]}), qa=qa)
    base = AdapterConfig(name="tiny", batch_size=2, max_length=64, data=[QASource(source="qa")])
    prompts = params.evaluation.prompts
    return inputs, tokenizer, base, prompts


def test_held_out_examples_are_dev_questions_in_the_adapters_answer_only_format(tiny):
    inputs, tokenizer, base, prompts = tiny
    held = held_out_examples(inputs, tokenizer, base.model_copy(update={"data": []}), prompts, n_questions=3)
    assert len(held) == 3  # a corpus-only adapter is measured on closed-book QA
    text = [tokenizer.decode(e["input_ids"]) for e in held]
    assert all(f"Code {i}?" in t for i, t in zip(range(8, 11), text, strict=True))  # the first dev questions
    assert all(IGNORE_INDEX in e["labels"] for e in held)  # the prompt is not scored
    with pytest.raises(ValueError, match="no 'dev' questions"):
        held_out_examples(
            TrainingInputs(inputs.documents, inputs.qa[inputs.qa["split"] == "train"]), tokenizer, base, prompts, 3
        )


def test_a_sweep_runs_real_trials_and_asha_stops_a_diverging_one(tiny, base_model_dir, tmp_path):
    import ray

    inputs, tokenizer, base, prompts = tiny
    examples = build_examples(inputs, tokenizer, base, prompts)
    held = held_out_examples(inputs, tokenizer, base, prompts, n_questions=4)
    # a grid runs in order: a sane learning rate sets the bar at step 2, then 5.0 blows the adapter up
    cfg = SweepConfig(
        adapter="tiny",
        num_samples=1,
        max_steps=4,
        grace_period=2,
        eval_every=2,
        space={"learning_rate": {"grid": [0.001, 5.0]}, "r": {"choice": [4]}},
    )
    ray.shutdown()  # a fresh local Ray, started by the sweep with the state API it asks for
    try:
        trials, curves = run_sweep(
            examples, held, base_model_dir, base, cfg, RayConfig(num_workers=1, max_failures=0), tmp_path
        )
    finally:
        ray.shutdown()
    assert len(trials) == 2 and trials["error"].isna().all(), trials.to_string()
    assert (trials["planned_steps"] == 4).all() and (trials["steps"] <= 4).all()
    completed, stopped = trials.iloc[0], trials.iloc[1]  # best first
    assert (completed["learning_rate"], completed["steps"], completed["stopped"]) == (0.001, 4, False)
    # ASHA stops the diverging learning rate at the first rung, right after the grace period
    assert (stopped["learning_rate"], stopped["steps"], stopped["stopped"]) == (5.0, 2, True), trials.to_string()
    assert stopped["dev_loss"] > completed["dev_loss"]
    # every trial has a dev-loss curve measured at its eval steps
    for trial in trials["trial"]:
        assert [r["step"] for r in curves[trial] if not math.isnan(r.get("dev_loss", math.nan))][:1] == [2]
    best = best_adapter(trials, base, list(cfg.space))
    assert best.name == "tiny-tuned" and best.learning_rate == trials.iloc[0]["learning_rate"] == 0.001
    report = trials_markdown(trials, best, base)
    assert "Proposed adapter" in report and "name: tiny-tuned" in report and report.count("| trial") == 1
