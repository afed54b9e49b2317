"""Out-of-domain probe questions: the base model and every adapter answer them, closed-book.

``paths.probes`` (by default general-knowledge questions shipped in data/probes) holds questions
outside the team's corpus; ``ragtune evaluate`` has every model variant answer them with the grid's
prompts and metric (rows of split ``probe``), and ``select`` reports each adapter's retention
(:mod:`components.decision.retention`).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd

from components.config import ProbesConfig
from components.data.errors import DataValidationError, InputError
from components.decision.retention import SPLIT

__all__ = ["SPLIT", "answer_probes", "load_probes"]

logger = logging.getLogger(__name__)


def load_probes(path: Path, max_questions: int | None) -> pd.DataFrame:
    """The probe questions of a JSONL file (``id``, ``question``, ``answers``), in file order, cut to ``max_questions``.

    Raises:
        FileNotFoundError: the file is absent.
        DataValidationError: a line is not a JSON object, or lacks a field (file, line and field named).
    """
    errors, rows = [], []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                errors.append(InputError(str(path), number, None, f"not JSON: {exc.msg}"))
                continue
            if not isinstance(record, dict):
                errors.append(InputError(str(path), number, None, "not a JSON object"))
                continue
            question, answers = record.get("question"), record.get("answers")
            if not isinstance(question, str) or not question.strip():
                errors.append(InputError(str(path), number, "question", "missing or empty"))
            if not isinstance(answers, list) or not answers or not all(isinstance(a, str) and a for a in answers):
                errors.append(InputError(str(path), number, "answers", "must be a non-empty list of strings"))
            rows.append({"qa_id": f"probe-{record.get('id', number)}", "question": question, "answers": answers})
    if errors:
        raise DataValidationError(errors, f"the probe set {path}")
    probes = pd.DataFrame(rows, columns=["qa_id", "question", "answers"])
    if probes["qa_id"].duplicated().any():
        dupes = sorted(set(probes.loc[probes["qa_id"].duplicated(), "qa_id"]))[:5]
        raise DataValidationError(
            [InputError(str(path), None, "id", f"duplicate ids: {dupes}")], f"the probe set {path}"
        )
    return probes.head(max_questions) if max_questions else probes


def answer_probes(grid, probes: pd.DataFrame, cfg: ProbesConfig, threshold: float, pool=None) -> pd.DataFrame:
    """The base model answers ``probes`` closed-book; every adapter then answers those the base model got right.

    Through the grid's executors and prediction cache, with the probes' own answer cap. A probe is got right
    when its ``cfg.metric`` is at least ``threshold``; the adapters need answer no other (their retention is
    measured on those).

    Args:
        grid: the evaluate stage's :class:`components.evaluation.prepare.Grid`.
        pool: the evaluate stage's workers (:func:`components.evaluation.executors.open_pool`); None: its own.

    Returns:
        One row per (model, probe answered): ``model``, ``cell``, ``split`` (``probe``), the answer, its scores.
    """
    from dataclasses import replace

    from components.evaluation.grid import NO_RETRIEVAL, Cell
    from components.evaluation.run import evaluate_cells

    if probes.empty:
        return pd.DataFrame()
    generation = grid.setup.generation.model_copy(update={"max_new_tokens": cfg.max_new_tokens})
    setup = replace(grid.setup, latency_questions=1, generation=generation)  # not a latency measurement

    def answer(models: list[str], questions: pd.DataFrame) -> list[pd.DataFrame]:
        cells = [Cell(model, NO_RETRIEVAL, 0) for model in models]
        results = evaluate_cells(cells, questions, {}, setup, SPLIT, pool)
        return [r.rows.assign(model=r.cell.model, cell=r.cell.name, split=SPLIT) for r in results]

    (base,) = answer(["base"], probes)
    known = probes[probes["qa_id"].isin(base.loc[base[cfg.metric] >= threshold, "qa_id"])]
    logger.info("probes: the base model answers %d of %d; the adapters answer those", len(known), len(probes))
    adapters = answer(list(grid.setup.adapters), known.reset_index(drop=True)) if len(known) else []
    return pd.concat([base, *adapters], ignore_index=True)
