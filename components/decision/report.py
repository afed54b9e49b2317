"""The decision report as text: markdown and a standalone HTML page (the ``select`` stage writes them).

Sections, each a small function: the protocol, the dev table (the split that chose), the
recommendation, the test table (the split that confirms) and its verdict, how answers were scored
(brevity, the answer cap), the fine-tuning budgets and learning curves, break-even volumes,
complementarity.
"""

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
    "verdict",
    "exact_match",
    "f1",
    "answer_contained",
    "answer_tokens",
    "semantic_similarity",
    "rouge_l",
    "answer_support",
    "recall_at_k",
    "hit_cap_share",
    "latency_p50_s",
    "tokens",
    "cost_per_1k_amortised",
]


def leaderboard_view(table: pd.DataFrame) -> pd.DataFrame:
    """The decision table as shown: intervals as 'low-high' text, tokens as prompt+completion."""
    view = table.copy()
    view["ci"] = [f"{lo:.3f}-{hi:.3f}" for lo, hi in zip(view["ci_low"], view["ci_high"], strict=True)]
    view["diff_ci"] = [f"{lo:+.3f} to {hi:+.3f}" for lo, hi in zip(view["diff_low"], view["diff_high"], strict=True)]
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


TESTED = "the cells dev left standing and the best dev cell of each other family"  # test_cells: families


def protocol_lines(h: dict) -> list[str]:
    """How to read the report: which split chose, which confirmed, what the columns mean."""
    pct = round(h["confidence"] * 100)
    c = h["confirmation"]
    verdict = {
        "confirmed": "Dev chose, test confirmed the choice",
        "not confirmed": f"Dev chose, test did not confirm the choice ({c.beaten_by} beat it)",
        "too few test groups": "Dev chose; too few test groups to confirm the choice",
        "not scored": "Dev chose; test did not score the choice",
    }[c.choice]
    estimate = "" if c.estimate in ("reproduced", "not scored") else f"; the estimate was {c.estimate}"
    return [
        "# ragtune decision report",
        "",
        f"**{verdict}{estimate}.** Every cell answered the {h['dev_questions']} dev questions "
        f"({h['dev_groups']} independent groups) and the recommendation was made there; "
        f"{h.get('tested', TESTED)} answered the {h['test_questions']} test questions once, to "
        f"confirm it. Sorted by {h['main_metric']}. MLflow parent run: {h['parent_run_id']}.",
        "",
        f"`mean` is {h['main_metric']}; `ci` its {pct}% bootstrap interval ({h['resamples']} resamples of question "
        f"groups: paraphrases of one fact are drawn together); `diff_ci` the interval of the difference to the best "
        f"cell, simultaneous over the comparisons (Bonferroni); `verdict` against the best with a margin of practical "
        f"equivalence of {h['margin']}: equivalent (the whole interval within it), worse (below zero, beyond it), "
        "inconclusive (neither). `answer_contained`: the gold answer appears in the answer; `answer_tokens`: its "
        f"length in words; `hit_cap_share`: answers cut at the {h['max_new_tokens']}-token cap. Cost in $ per 1,000 "
        f"queries with fixed costs spread over {h['query_volume']:,} queries; latency from answering queries one at "
        "a time, retrieval included.",
        "",
    ]


def scoring_lines(table: pd.DataFrame, brevity_gap: float, max_new_tokens: int) -> list[str]:
    """Warnings about how answers were scored: F1 that punishes wording, and answers cut at the cap."""
    lines = []
    table = table.assign(on=[f" ({s})" for s in table["split"]] if "split" in table else "")
    if "answer_contained" in table:
        wordy = table[(table["answer_contained"] - table["f1"]) >= brevity_gap]
        for _, r in wordy.iterrows():
            lines.append(
                f"- **{r['cell']}**{r['on']}: F1 {r['f1']:.3f} but the gold answer is contained in "
                f"{r['answer_contained']:.0%} of its answers ({r['answer_tokens']:.1f} words on average): the answers "
                "are right but wordy, and F1 measures the wording more than the knowledge."
            )
    capped = table[table.get("hit_cap_share", pd.Series(0.0, index=table.index)) > 0]
    for _, r in capped.iterrows():
        share = f"{r['hit_cap_share']:.0%} of its answers hit the {max_new_tokens}-token cap"
        lines.append(f"- {r['cell']}{r['on']}: {share}.")
    if not lines:
        return []
    return ["## How the answers were scored", "", *lines, ""]


def complementarity_lines(complementarity: pd.DataFrame) -> list[str]:
    if complementarity.empty:
        return []
    a = complementarity.attrs
    counts = complementarity["category"].value_counts()
    lines = [
        "## Complementarity (dev)",
        "",
        f"RAG = {a['rag_cell']}, fine-tuning = {a['finetune_cell']}, combined = {a['combined_cell']}; "
        "per-question table in complementarity.csv.",
        "",
        "| category | questions |",
        "| --- | --- |",
        *(f"| {c} | {int(counts.get(c, 0))} |" for c in CATEGORIES),
    ]
    if complementarity["combined"].notna().any():
        lines += ["", f"The combined cell answers {int(complementarity['combined'].fillna(False).sum())} questions."]
    return [*lines, ""]


def markdown_report(
    dev: pd.DataFrame,
    test: pd.DataFrame | None,
    recommendation: dict,
    confirmation: str,
    extras: dict,
    header: dict,
    charts: list[str],
) -> str:
    """The report's text.

    Args:
        dev, test: the decision tables of the dev split (every cell) and the test split (the cells dev left standing).
        extras: ``break_even`` (a table), ``complementarity`` (a table), ``choices`` and ``finetuning`` (their
            sections' lines).
        header: ``main_metric``, ``dev_questions``, ``dev_groups``, ``test_questions``, ``parent_run_id``,
            ``confidence``, ``resamples``, ``margin``, ``query_volume``, ``max_new_tokens``, ``brevity_gap``.
    """
    h = header
    lines = protocol_lines(h)
    lines += extras.get("question_set", [])  # generated questions: who wrote them, their filters, their bias
    lines += ["## Dev: every cell (the split that chose)", "", markdown_table(leaderboard_view(dev))]
    lines += ["## Recommendation", "", recommendation["text"], ""]
    lines += extras["choices"]
    lines += [f"## Test: {h.get('tested', TESTED)} (the split that confirms)", ""]
    if test is not None:
        lines += [markdown_table(leaderboard_view(test))]
    lines += [confirmation, ""]
    scored = pd.concat([dev.assign(split="dev"), test.assign(split="test")]) if test is not None else dev
    lines += scoring_lines(scored, h["brevity_gap"], h["max_new_tokens"])
    lines += extras["finetuning"]
    lines += extras["retention"]
    pairs = extras["break_even"]
    if not pairs.empty:
        lines += ["## Break-even query volumes (dev costs)", ""]
        lines += [
            f"- {r.higher_fixed} (higher fixed cost) vs {r.lower_fixed}: {r.break_even}" for r in pairs.itertuples()
        ]
        lines.append("")
    lines += complementarity_lines(extras["complementarity"])
    if charts:
        lines += ["## Charts", ""] + [f"![{c}]({c})" for c in charts] + [""]
    return "\n".join(lines)


def html_report(markdown: str, table: pd.DataFrame, recommendation: dict, charts: list[str]) -> str:
    """A standalone HTML page: the dev leaderboard as an HTML table, the recommendation and the charts."""
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
