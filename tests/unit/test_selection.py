import math

import pytest

from components.selection import leaderboard, to_markdown


def _cell(name, f1, latency, recall=None):
    model, retriever = name.split("+")
    cell = {
        "cell": name,
        "model": model,
        "retriever": retriever,
        "f1": f1,
        "exact_match": f1 / 2,
        "latency_p50_s": latency,
    }
    if recall is not None:
        cell["recall_at_k"] = recall
    return cell


def test_sorted_by_main_metric_then_latency():
    table = leaderboard(
        [_cell("base+none", 0.1, 0.1), _cell("base+vec", 0.5, 0.3, 0.9), _cell("lora+vec", 0.5, 0.2, 0.9)], "f1"
    )
    assert table["cell"].tolist() == ["lora+vec", "base+vec", "base+none"]
    assert table["rank"].tolist() == [1, 2, 3]
    assert math.isnan(table.loc[2, "recall_at_k"])


def test_markdown_has_a_row_per_cell_and_dashes_for_missing():
    md = to_markdown(leaderboard([_cell("base+none", 0.25, 0.1), _cell("a+b", 0.5, 0.1, 1.0)], "f1"))
    lines = md.strip().splitlines()
    assert len(lines) == 4 and lines[2].startswith("| 1 | a+b |")
    assert "| 0.250 | - |" in lines[3]


def test_no_cells_is_an_error():
    with pytest.raises(ValueError, match="no evaluated cells"):
        leaderboard([], "f1")
