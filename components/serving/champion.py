"""The gate's inputs: the new recommended cell and the current champion, scored on the same questions.

The champion is found by alias in the registry and loaded through its pyfunc, exactly as it is
served; it answers the gate's questions (``gate.split``, dev) and each answer is scored with the
same local evaluate module as the grid. The new cell's scores come from the evaluation's
predictions when they cover the gate's split; otherwise the new cell answers here through the same
serving code (:func:`components.serving.model.answer`), from its bundle. Scores are paired by
``qa_id`` and :func:`components.decision.gate.non_inferiority` gives the verdict.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from components import tracking
from components.config import GateConfig, RegistryConfig, StatisticsConfig
from components.decision.gate import CHAMPION, NEW, Verdict, first_champion, non_inferiority, same_bundle
from components.serving.register import CellPlan
from components.tracking.registry import HASH_TAG

logger = logging.getLogger(__name__)


class ChampionUnavailableError(RuntimeError):
    """The current champion could not be loaded or could not answer: the gate cannot judge."""


def gate_questions(
    qa: pd.DataFrame,
    predictions: pd.DataFrame,
    cell: str,
    metric: str,
    split: str,
    max_questions: int | None,
) -> tuple[pd.DataFrame, pd.Series | None]:
    """The questions the gate compares on, and the new cell's scores on them when the evaluation has them.

    Args:
        qa: ``qa.parquet`` (``qa_id``, ``question``, ``answers``, ``group``, ``split``).
        predictions: ``predictions.parquet`` (``cell``, ``split``, ``qa_id``, the metrics).

    Returns:
        The questions of ``split`` (sorted by id, the first ``max_questions``; those the evaluation
        scored the cell on, when it did) and the cell's ``metric`` by ``qa_id``, or None when the
        evaluation did not score the cell on ``split`` (it must answer them here).

    Raises:
        ValueError: the split holds no questions.
    """
    rows = predictions[(predictions["cell"] == cell) & (predictions["split"] == split)]
    pool = qa[qa["split"] == split]
    if not rows.empty:
        pool = pool[pool["qa_id"].isin(rows["qa_id"])]
    questions = pool.sort_values("qa_id").reset_index(drop=True)
    if questions.empty:
        raise ValueError(f"the gate's {split!r} split holds no questions: check params/data.yaml:split")
    questions = questions.head(max_questions) if max_questions else questions
    if rows.empty:
        return questions, None
    scores = rows.drop_duplicates("qa_id").set_index("qa_id")[metric]
    return questions, scores.reindex(questions["qa_id"])


def score_answers(answers: list[str], references: list[list[str]], metric: str) -> list[float]:
    """Each answer's ``metric`` against its references, with the grid's local evaluate module."""
    from components.evaluation.metrics import load_metric

    if metric == "rouge_l":
        return list(load_metric("rouge_l").compute(predictions=answers, references=references)["rouge_l_per_example"])
    found = load_metric("qa_match").compute(predictions=answers, references=references)
    return list(found[f"{metric}_per_example"])


def _scores(answers: pd.DataFrame, questions: pd.DataFrame, metric: str) -> pd.Series:
    if len(answers) != len(questions):
        raise ValueError(f"{len(answers)} answers for {len(questions)} questions")
    references = [list(a) for a in questions["answers"]]
    return pd.Series(score_answers(answers["answer"].tolist(), references, metric), index=questions["qa_id"].to_numpy())


def score_plan(plan: CellPlan, base_dir: Path, questions: pd.DataFrame, metric: str) -> pd.Series:
    """The planned (not yet registered) cell answering ``questions`` through the serving code; scores by qa_id."""
    from components.serving.model import answer, load_parts

    model, tokenizer, retriever = load_parts(plan.bundle, base_dir, plan.adapter_dir)
    out = answer(model, tokenizer, retriever, plan.bundle, questions["question"].tolist())
    return _scores(out, questions, metric)


def score_version(name: str, version: str, questions: pd.DataFrame, metric: str) -> pd.Series:
    """Registered version ``name/version`` loaded through its pyfunc, answering ``questions``; scores by qa_id.

    Raises:
        ChampionUnavailableError: it cannot be loaded or does not answer.
    """
    try:
        model = tracking.load_pyfunc(f"models:/{name}/{version}")
        out = model.predict(questions[["question"]].reset_index(drop=True))
    except Exception as exc:  # anything: a champion the gate cannot score must not be replaced silently
        raise ChampionUnavailableError(f"the champion {name} version {version} could not answer: {exc}") from exc
    return _scores(out, questions, metric)


def judge(
    plan: CellPlan,
    base_dir: Path,
    evaluation: Callable[[], tuple[pd.DataFrame, pd.DataFrame]],
    metric: str,
    gate: GateConfig,
    statistics: StatisticsConfig,
    registry: RegistryConfig,
) -> Verdict:
    """The gate's verdict on replacing ``registry.name@registry.alias`` by the planned cell.

    No champion: pass (the first one). The champion is this very bundle: pass, nothing to compare.
    Otherwise both answer the same questions of ``gate.split`` and the paired interval decides.

    Args:
        evaluation: returns ``qa.parquet`` and ``predictions.parquet`` (see :func:`gate_questions`);
            called only when there is a champion to compare with.
    """
    cell = plan.choice.cell
    current = tracking.alias_version(registry.name, registry.alias)
    if current is None:
        return first_champion(cell, metric, gate.split, gate.margin)
    label = f"{registry.name} version {current.version} ({current.tags.get('ragtune.cell', '?')})"
    if current.tags.get(HASH_TAG) == plan.digest:
        return same_bundle(cell, label, metric, gate.split, gate.margin)
    qa, predictions = evaluation()
    questions, new = gate_questions(qa, predictions, cell, metric, gate.split, gate.max_questions)
    if new is None:
        logger.info("the evaluation did not score %s on %s: it answers the gate's questions now", cell, gate.split)
        new = score_plan(plan, base_dir, questions, metric)
    logger.info("scoring the champion %s on %d %s questions", label, len(questions), gate.split)
    champion = score_version(registry.name, str(current.version), questions, metric)
    ids = questions["qa_id"].to_numpy()
    scores = pd.DataFrame({NEW: new.reindex(ids).to_numpy(), CHAMPION: champion.reindex(ids).to_numpy()}, index=ids)
    group = questions["group"].fillna("").astype(str)
    groups = group.where(group != "", questions["qa_id"]).set_axis(ids)  # a question without group is its own
    return non_inferiority(
        scores, gate.margin, statistics, new=cell, champion=label, metric=metric, split=gate.split, groups=groups
    )
