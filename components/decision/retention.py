"""What fine-tuning costs elsewhere: each adapter's retention of what the base model answers outside the corpus.

The usual argument for retrieval is that a model fine-tuned on one domain answers worse outside it.
The base model and every adapter answered the out-of-domain probes (:mod:`components.evaluation.probes`);
the probes the base model answers (main metric at least ``answered_threshold``) are kept, and an
adapter's *retention* is its mean score on them over the base model's: 100% keeps everything the base
model knew there, 80% lost a fifth of it.
"""

from __future__ import annotations

import pandas as pd

SPLIT = "probe"  # the split of the probe rows in predictions.parquet


def retention(rows: pd.DataFrame, metric: str, threshold: float) -> pd.DataFrame:
    """Each model's retention of what the base model answers on the probes.

    Args:
        rows: the probe rows (``model``, ``qa_id``, ``metric``), the base model's among them.

    Returns:
        One row per model (index: model; the base model first): ``kept`` (probes the base model answers),
        ``score`` (its mean on them), ``retention`` (score over the base model's score). Empty without probes
        or when the base model answers none.
    """
    if rows.empty or "base" not in set(rows["model"]):
        return pd.DataFrame(columns=["kept", "score", "retention"])
    matrix = rows.pivot_table(index="qa_id", columns="model", values=metric, aggfunc="first")
    kept = matrix[matrix["base"] >= threshold]
    if kept.empty:
        return pd.DataFrame(columns=["kept", "score", "retention"])
    base = float(kept["base"].mean())
    order = ["base", *sorted(c for c in kept.columns if c != "base")]
    means = kept[order].mean()
    return pd.DataFrame(
        {"kept": len(kept), "score": means, "retention": means / base}, index=pd.Index(order, name="model")
    )


def retention_lines(table: pd.DataFrame, probes: int, metric: str) -> list[str]:
    """The report's section on the probes."""
    if probes == 0:
        return []
    head = ["## What fine-tuning costs elsewhere (out-of-domain probes)", ""]
    if table.empty:
        return [*head, f"The base model answers none of the {probes} probe questions: no retention to measure.", ""]
    kept = int(table["kept"].iloc[0])
    lines = [
        *head,
        f"The base model answered {probes} questions outside the corpus (closed-book); the {kept} it answers (its "
        f"{metric} at least the answered threshold) are kept, and each adapter answered those. Retention: a "
        "model's mean on them over the base model's.",
        "",
        f"| model | {metric} on the kept probes | retention |",
        "| --- | --- | --- |",
    ]
    lines += [f"| {m} | {r['score']:.3f} | {r['retention']:.0%} |" for m, r in table.iterrows()]
    return [*lines, ""]


def retention_note(table: pd.DataFrame, model: str) -> str:
    """The recommendation's sentence on what its adapter keeps outside the corpus ('' for the base model)."""
    if model == "base" or table.empty or model not in table.index:
        return ""
    r = table.loc[model]
    return (
        f" Outside the corpus, {model} keeps {r['retention']:.0%} of what the base model answers "
        f"({int(r['kept'])} out-of-domain probes)."
    )
