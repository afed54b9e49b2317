"""The decision report as text: markdown and a standalone HTML page (the ``select`` stage writes them)."""

from __future__ import annotations

import html
import logging
import math

import pandas as pd

from components.decision.complementarity import CATEGORIES
from components.decision.markdown import to_markdown

logger = logging.getLogger(__name__)

LEADERBOARD_COLUMNS = [
    "rank",
    "cell",
    "mean",
    "ci",
    "diff_ci",
    "tie",
    "exact_match",
    "f1",
    "rouge_l",
    "answer_support",
    "recall_at_k",
    "latency_p50_s",
    "latency_p95_s",
    "tokens",
    "cost_per_1k_amortised",
]


def leaderboard_view(table: pd.DataFrame) -> pd.DataFrame:
    """The decision table as shown: intervals as 'low-high' text, tokens as prompt+completion."""
    view = table.copy()
    view["ci"] = [f"{lo:.3f}-{hi:.3f}" for lo, hi in zip(view["ci_low"], view["ci_high"], strict=True)]
    view["diff_ci"] = [f"{lo:+.3f} to {hi:+.3f}" for lo, hi in zip(view["diff_low"], view["diff_high"], strict=True)]
    view["tie"] = [
        "best" if r == 1 else ("tie" if t else "worse") for r, t in zip(view["rank"], view["tie"], strict=True)
    ]
    view["tokens"] = [
        f"{p:.0f}+{c:.0f}" for p, c in zip(view["prompt_tokens_mean"], view["completion_tokens_mean"], strict=True)
    ]
    return view[[c for c in LEADERBOARD_COLUMNS if c in view]]


def _fmt(value) -> str:
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.3f}" if abs(value) >= 1e-3 or value == 0 else f"{value:.2e}"
    return str(value)


def markdown_table(view: pd.DataFrame) -> str:
    """Every column of ``view`` as a markdown table: 3 decimals, tiny numbers in e-notation, '-' if missing."""
    return to_markdown(view, list(view.columns), fmt=_fmt)


def markdown_report(
    table: pd.DataFrame,
    recommendation: dict,
    break_even: pd.DataFrame,
    complementarity: pd.DataFrame,
    header: dict,
    charts: list[str],
) -> str:
    """The report's text: leaderboard with intervals and costs, recommendation, break-even, complementarity.

    Args:
        header: ``main_metric``, ``split``, ``questions``, ``parent_run_id``, ``confidence``, ``resamples``,
            ``query_volume``.
        charts: file names of the PNG charts beside the report.
    """
    h = header
    best = table.iloc[0]
    lines = [
        "# ragtune decision report",
        "",
        f"Sorted by {h['main_metric']} on the {h['split']} split ({h['questions']} questions). "
        f"MLflow parent run: {h['parent_run_id']}",
        f"`mean` is {h['main_metric']}; `ci` its {round(h['confidence'] * 100)}% paired bootstrap interval "
        f"({h['resamples']} resamples over questions); `diff_ci` the interval of the difference to the best cell; "
        f"cost in $ per 1,000 queries with fixed costs spread over {h['query_volume']:,} queries.",
        "",
        markdown_table(leaderboard_view(table)),
        f"Best: **{best['cell']}** ({h['main_metric']} {best['mean']:.3f})",
        "",
        "## Recommendation",
        "",
        recommendation["text"],
        "",
    ]
    if not break_even.empty:
        lines += ["## Break-even query volumes", ""]
        lines += [
            f"- {r.higher_fixed} (higher fixed cost) vs {r.lower_fixed}: {r.break_even}"
            for r in break_even.itertuples()
        ]
        lines.append("")
    if not complementarity.empty:
        a = complementarity.attrs
        counts = complementarity["category"].value_counts()
        lines += [
            "## Complementarity",
            "",
            f"RAG = {a['rag_cell']}, fine-tuning = {a['finetune_cell']}, combined = {a['combined_cell']}; "
            "per-question table in complementarity.csv.",
            "",
            "| category | questions |",
            "| --- | --- |",
        ]
        lines += [f"| {c} | {int(counts.get(c, 0))} |" for c in CATEGORIES]
        if complementarity["combined"].notna().any():
            lines += [
                "",
                f"The combined cell answers {int(complementarity['combined'].fillna(False).sum())} questions.",
            ]
        lines.append("")
    if charts:
        lines += ["## Charts", ""] + [f"![{c}]({c})" for c in charts] + [""]
    return "\n".join(lines)


def html_report(markdown: str, table: pd.DataFrame, recommendation: dict, charts: list[str]) -> str:
    """A standalone HTML page: the leaderboard as an HTML table, the recommendation and the charts."""
    view = leaderboard_view(table)
    body = view.to_html(index=False, float_format=lambda v: f"{v:.3f}", na_rep="-", border=0, classes="leaderboard")
    title = markdown.splitlines()[0].lstrip("# ")
    images = "\n".join(f'<img src="{html.escape(c)}" alt="{html.escape(c)}" width="640">' for c in charts)
    return (
        "<!doctype html>\n<html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;margin:2em} table{border-collapse:collapse}"
        " td,th{padding:4px 8px;border-bottom:1px solid #ddd;text-align:right}</style></head><body>\n"
        f"<h1>{html.escape(title)}</h1>\n{body}\n"
        f"<h2>Recommendation</h2>\n<p>{html.escape(recommendation['text']).replace('**', '')}</p>\n"
        f"<h2>Full text</h2>\n<pre>{html.escape(markdown)}</pre>\n{images}\n</body></html>\n"
    )
