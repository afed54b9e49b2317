"""The decision report's charts, drawn with matplotlib's Agg backend straight to a path."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from components.decision.complementarity import CATEGORIES
from components.decision.table import pareto_front


def plot_pareto(table: pd.DataFrame, x: str, xlabel: str, path: Path) -> None:
    """Quality (mean with its interval) against ``x``; the Pareto front joined by a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    err = [table["mean"] - table["ci_low"], table["ci_high"] - table["mean"]]
    ax.errorbar(table[x], table["mean"], yerr=err, fmt="o", capsize=3)
    for _, row in table.iterrows():
        ax.annotate(row["cell"], (row[x], row["mean"]), fontsize=8, xytext=(4, 4), textcoords="offset points")
    front = table[pareto_front(table, "mean", x)].sort_values(x)
    ax.plot(front[x], front["mean"], "--", color="tab:red", label="Pareto front")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("quality (mean, 95% CI)")
    ax.legend(loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_complementarity(complementarity: pd.DataFrame, path: Path) -> None:
    """Questions per category (both, RAG only, fine-tuning only, neither) as bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = complementarity["category"].value_counts().reindex(list(CATEGORIES), fill_value=0)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.bar(counts.index, counts.to_numpy(), color=["tab:green", "tab:blue", "tab:orange", "tab:gray"])
    a = complementarity.attrs
    ax.set_title(f"RAG {a.get('rag_cell', '')} vs fine-tuning {a.get('finetune_cell', '')}", fontsize=9)
    ax.set_ylabel("questions")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_curves(curves: dict[str, list[dict]], metric: str, path: Path) -> None:
    """Each adapter's main metric on dev against the training tokens its snapshot had seen."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for adapter, points in curves.items():
        if points:
            ax.plot([p.get("tokens", p["step"]) for p in points], [p[metric] for p in points], "o-", label=adapter)
    ax.set_xlabel("training tokens seen")
    ax.set_ylabel(f"{metric} on dev")
    ax.legend(loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
