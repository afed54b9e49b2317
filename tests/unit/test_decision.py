import pandas as pd

from components.config import CostConfig
from components.decision.complementarity import complementarity
from components.decision.table import break_even_table, decision_table, recommend
from tests.conftest import PARAMS, like

STATS = like(PARAMS.evaluation.statistics, resamples=300, seed=0, margin=0.05, min_groups=10)
COST = CostConfig(cpu_hour=3.6, per_1k_tokens=0.0, query_volume=1000)
TRAIN = {"lora": {"compute_s": 500.0, "workers": 2}}


def _grid(f1: dict[str, list[float]], latency: dict[str, float]):
    cells, rows = [], []
    for name, scores in f1.items():
        model, retriever = name.split("+")
        cells.append(
            {
                "cell": name,
                "model": model,
                "retriever": retriever,
                "shots": 0,
                "f1": sum(scores) / len(scores),
                "latency_p50_s": latency[name],
                "prompt_tokens_mean": 10.0,
                "completion_tokens_mean": 5.0,
            }
        )
        rows += [{"qa_id": f"q{i}", "question": f"question {i}", "cell": name, "f1": s} for i, s in enumerate(scores)]
    return cells, pd.DataFrame(rows)


def _decide(cells, rows, groups=None):
    table = decision_table(cells, rows, "f1", STATS, COST, TRAIN, {"vec": 100.0}, groups)
    return table, recommend(table, "f1", STATS, COST, groups=rows["qa_id"].nunique())


def test_clear_winner_is_recommended_with_its_interval_and_cost():
    cells, rows = _grid({"base+none": [0.0] * 20, "base+vec": [1.0] * 20}, {"base+none": 1.0, "base+vec": 2.0})
    table, rec = _decide(cells, rows)
    assert table["cell"].tolist() == ["base+vec", "base+none"]
    # base+vec: 2 s/query at $3.6/h = $0.002, index 100 s = $0.1 fixed over 1000 queries
    assert table.loc[0, "cost_per_1k_amortised"] == 2.0 + 0.1
    assert rec["cell"] == "base+vec" and rec["tied"] == ["base+vec"]
    assert "Recommended: **base+vec**, f1 1.000 (95% CI 1.000-1.000)" in rec["text"]
    assert "It has the best f1." in rec["text"] and "Clearly worse: base+none." in rec["text"]


def test_an_equivalent_cheaper_mix_wins_with_break_even():
    same = [0.0, 1.0] * 10
    cells, rows = _grid({"base+vec": same, "lora+none": same}, {"base+vec": 2.0, "lora+none": 1.0})
    table, rec = _decide(cells, rows)
    # lora+none: 1 $/1k variable + 1000 s training = $1 fixed -> +1 per 1k; base+vec: 2 + 0.1
    costs = dict(zip(table["cell"], table["cost_per_1k_amortised"], strict=True))
    assert costs["lora+none"] < costs["base+vec"]
    assert rec["cell"] == "lora+none" and set(rec["tied"]) == {"base+vec", "lora+none"}
    assert "is not better by more than the margin 0.05" in rec["text"]
    pairs = break_even_table(table)
    # lora+none pays $1 fixed vs $0.1 and saves $0.001 per query: 900 queries
    assert pairs.iloc[0].to_dict() == {
        "higher_fixed": "lora+none",
        "lower_fixed": "base+vec",
        "break_even": "900 queries",
    }


def test_complementarity_categories():
    cells, rows = _grid(
        {"base+none": [0, 0, 0, 0], "base+vec": [1, 1, 0, 0], "lora+none": [1, 0, 1, 0], "lora+vec": [1, 1, 1, 0]},
        {"base+none": 1, "base+vec": 1, "lora+none": 1, "lora+vec": 1},
    )
    comp = complementarity(rows, cells, "f1", threshold=0.5)
    assert comp["category"].tolist() == ["both", "rag_only", "finetune_only", "neither"]
    assert comp["combined"].tolist() == [True, True, True, False]
    assert comp.attrs == {"rag_cell": "base+vec", "finetune_cell": "lora+none", "combined_cell": "lora+vec"}


def test_complementarity_is_empty_without_both_arms():
    cells, rows = _grid({"base+none": [0, 1], "base+vec": [1, 1]}, {"base+none": 1, "base+vec": 1})
    assert complementarity(rows, cells, "f1", 0.5).empty


def test_few_question_groups_add_a_caution_but_keep_the_rule():
    same = [0.0, 1.0] * 5  # 10 questions
    cells, rows = _grid({"base+vec": same, "lora+none": same}, {"base+vec": 2.0, "lora+none": 1.0})
    table = decision_table(cells, rows, "f1", STATS, COST, TRAIN, {"vec": 100.0})
    few = recommend(table, "f1", STATS.model_copy(update={"min_groups": 30}), COST, groups=10)
    assert few["few_groups"] and few["cell"] == "lora+none"
    assert "Caution: only 10 independent question groups" in few["text"] and "min_groups = 30" in few["text"]
    enough = recommend(table, "f1", STATS, COST, groups=10)
    assert not enough["few_groups"] and "Caution" not in enough["text"]
    assert enough["cell"] == few["cell"]


def test_pareto_front_keeps_the_cells_no_other_beats_on_both_axes():
    from components.decision.table import pareto_front

    table = pd.DataFrame(
        {
            "cell": ["cheap-bad", "dear-good", "dominated", "tie-cost", "best-of-both"],
            "mean": [0.1, 0.9, 0.5, 0.1, 0.9],
            "cost": [1.0, 5.0, 6.0, 1.0, 5.0],
        }
    )
    front = pareto_front(table, "mean", "cost")
    # dominated is worse and dearer than dear-good; equal points do not dominate each other
    assert table["cell"][front].tolist() == ["cheap-bad", "dear-good", "tie-cost", "best-of-both"]
    assert not pareto_front(pd.DataFrame({"mean": [0.2, 0.3], "cost": [2.0, 1.0]}), "mean", "cost")[0]


def test_scoring_warnings_name_the_split_of_each_row():
    """A cell answers dev and test: its two warnings say which split each comes from."""
    from components.decision.report import scoring_lines

    row = {"cell": "base+none", "f1": 0.1, "answer_contained": 0.6, "answer_tokens": 9.0, "hit_cap_share": 0.5}
    table = pd.DataFrame([{**row, "split": "dev"}, {**row, "split": "test", "hit_cap_share": 1.0}])
    lines = scoring_lines(table, brevity_gap=0.2, max_new_tokens=16)
    assert "- **base+none** (dev): F1 0.100" in lines[2] and "- **base+none** (test): F1 0.100" in lines[3]
    assert "- base+none (dev): 50% of its answers hit the 16-token cap." in lines
    assert "- base+none (test): 100% of its answers hit the 16-token cap." in lines
    assert "(dev)" not in "".join(scoring_lines(table.drop(columns="split"), 0.2, 16))  # one split: no label
