import pandas as pd

from components.decision.markdown import retrieval_table, to_markdown


def test_markdown_has_a_row_per_line_the_asked_columns_and_dashes_for_missing():
    table = pd.DataFrame({"cell": ["a+b", "base+none"], "f1": [0.5, 0.25], "recall_at_k": [1.0, float("nan")]})
    lines = to_markdown(table, ["cell", "f1", "recall_at_k", "not_there"]).strip().splitlines()
    assert lines[0] == "| cell | f1 | recall_at_k |"
    assert len(lines) == 4 and lines[2] == "| a+b | 0.500 | 1.000 |"
    assert lines[3] == "| base+none | 0.250 | - |"


def test_markdown_takes_a_formatter():
    table = pd.DataFrame({"x": [0.000012]})
    assert to_markdown(table, ["x"], fmt=lambda v: f"{v:.1e}").splitlines()[2] == "| 1.2e-05 |"


def test_retrieval_table_ranks_by_ndcg_on_the_split_and_skips_retrievers_without_it():
    scores = {
        "vec": {"dev": {"ndcg_at_k": 0.5, "retrieval_latency_p50_s": 0.01}},
        "fts": {"dev": {"ndcg_at_k": 0.9, "retrieval_latency_p50_s": 0.02}},
        "new": {"test": {"ndcg_at_k": 1.0, "retrieval_latency_p50_s": 0.01}},
    }
    assert retrieval_table(scores, "dev")["retriever"].tolist() == ["fts", "vec"]
    assert retrieval_table(scores, "train").empty
