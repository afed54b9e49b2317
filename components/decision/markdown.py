"""Markdown tables, and the retrieval-only table of the report."""

from __future__ import annotations

import pandas as pd


def _three_decimals(value) -> str:
    if isinstance(value, float):
        return "-" if pd.isna(value) else f"{value:.3f}"
    return str(value)


def to_markdown(table: pd.DataFrame, columns: list[str], fmt=_three_decimals) -> str:
    """A GitHub-flavoured markdown table of ``columns`` (those ``table`` has), each cell as ``fmt`` renders it.

    The default ``fmt``: numbers to 3 decimals, missing values as '-', anything else as ``str``.
    """
    cols = [c for c in columns if c in table]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join(" --- " for _ in cols) + "|"]
    lines += ["| " + " | ".join(fmt(row[c]) for c in cols) + " |" for _, row in table.iterrows()]
    return "\n".join(lines) + "\n"


RETRIEVAL_COLUMNS = ["retriever", "hit_rate_at_k", "recall_at_k", "mrr_at_k", "ndcg_at_k", "retrieval_latency_p50_s"]


def retrieval_table(retrievers: dict[str, dict], split: str) -> pd.DataFrame:
    """Retrieval-only scores of every retriever on ``split``, best nDCG first.

    Args:
        retrievers: ``retrieval.json``'s ``retrievers`` mapping (name -> {split -> metrics}).
    """
    rows = [{"retriever": name, **scores[split]} for name, scores in retrievers.items() if split in scores]
    if not rows:
        return pd.DataFrame(columns=RETRIEVAL_COLUMNS)
    table = pd.DataFrame(rows).sort_values(["ndcg_at_k", "retrieval_latency_p50_s"], ascending=[False, True])
    return table.reset_index(drop=True)
