"""Which questions made which choice: the report's answer to "was anything chosen on the data it reports?".

Each choice is made on its own questions (components/data/split.py): the tuning slice chooses the
retrievers, the kept snapshots and early stopping, and scores the learning curves; dev chooses the
cell; test confirms it and is the gate's. No estimate the report quotes for a choice reuses the
questions that made it.
"""

from __future__ import annotations

import pandas as pd


def _count(qa: pd.DataFrame, split: str) -> str:
    part = qa[qa["split"] == split]
    return f"{len(part)} ({part['leakage_group'].nunique()} groups)"


def choices_lines(qa: pd.DataFrame, cfg, curves: dict[str, list[dict]]) -> list[str]:
    """The section's lines.

    Args:
        qa: qa.parquet (``split``, ``leakage_group``).
        cfg: the evaluation params (``grid``, ``max_questions``, ``learning_curve``, ``gate``).
        curves: the learning curves (``questions`` per point: how many tune questions each snapshot answered).
    """
    answered = int(max((p.get("questions", 0) for points in curves.values() for p in points), default=0))
    curve_questions = f"the first {answered}" if answered else "none (no curve was scored)"
    grid = (
        f"pinned in params ({', '.join(cfg.grid.retrievers)})"
        if cfg.grid.retrievers is not None
        else f"tune: retrieval {cfg.grid.metric}, every question {_count(qa, 'tune')}"
    )
    cap = f", the first {cfg.max_questions}" if cfg.max_questions else ""
    return [
        "## Which questions made which choice",
        "",
        "| choice | made on |",
        "| --- | --- |",
        f"| the retrievers in the LLM grid | {grid} |",
        "| each adapter's kept snapshot and early stopping | tune: held-out loss (finetune.yaml tune_questions) |",
        f"| the learning curves and the forecasts | tune: generated answers, {curve_questions} |",
        f"| the recommended cell | dev: {_count(qa, 'dev')}{cap} |",
        f"| the confirmation of the choice and of its estimate | test: {_count(qa, 'test')}{cap} |",
        f"| the gate against the champion | {cfg.gate.split}: the same questions for both |",
        f"| training | train: {_count(qa, 'train')}; never tune, dev or test |",
        "",
    ]
