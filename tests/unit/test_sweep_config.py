"""The sweep's config checks, trial configs, the choice of the best trial and the held-out loss (no Ray)."""

import math
from pathlib import Path

import pandas as pd
import pytest
import yaml

from components.config import PARAM_FILES, ConfigError, load_params
from components.training.sweep import best_adapter, trial_adapter
from components.training.train_step import IGNORE_INDEX, collate, held_out_loss
from tests.conftest import PARAMS, REPO, like


def _params_with(tmp_path: Path, sweep) -> Path:
    for name in PARAM_FILES:
        data = yaml.safe_load((REPO / "params" / f"{name}.yaml").read_text())
        if name == "finetune":
            data["sweep"] = None if sweep is None else {**data["sweep"], **sweep}
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(data))
    return tmp_path


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
        ({"seed": None}, "sweep.seed"),
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


def test_trial_adapter_applies_hyperparameters_and_validates_them():
    base = like(PARAMS.finetune.adapters[0], name="a", r=8, learning_rate=1e-3, max_steps=50, checkpoint_every=10)
    trial = trial_adapter(base, {"r": 4, "learning_rate": 0.01}, max_steps=6)
    assert (trial.r, trial.learning_rate, trial.max_steps, trial.checkpoint_every) == (4, 0.01, 6, None)
    with pytest.raises(ValueError, match="dropout"):
        trial_adapter(base, {"dropout": 1.5}, max_steps=6)


def test_best_adapter_is_the_completed_trial_with_the_lowest_tune_loss():
    base = like(PARAMS.finetune.adapters[0], name="a", r=8, learning_rate=1e-3, max_steps=50)
    trials = pd.DataFrame(
        [  # the stopped trial has the lowest loss, but at an earlier step: it does not count
            {
                "trial": "t0",
                "r": 4,
                "learning_rate": 0.01,
                "steps": 2,
                "planned_steps": 6,
                "tune_loss": 0.5,
                "error": None,
            },
            {
                "trial": "t1",
                "r": 16,
                "learning_rate": 0.002,
                "steps": 6,
                "planned_steps": 6,
                "tune_loss": 1.2,
                "error": None,
            },
            {
                "trial": "t2",
                "r": 8,
                "learning_rate": 0.001,
                "steps": 6,
                "planned_steps": 6,
                "tune_loss": 1.5,
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
