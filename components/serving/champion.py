"""The gate's inputs: the new recommended cell and the current champion, scored on the same questions.

The champion is found by alias in the registry (only MLflow's "not found" means there is none) and
loaded through its pyfunc, exactly as it is served; it answers the gate's questions (``gate.split``:
test) and each answer is scored with the same local evaluate module as the grid. The new cell's
scores come from the evaluation's predictions when they cover the gate's split; otherwise the new
cell answers here through the same serving code (:func:`components.serving.model.answer`), from its
bundle. Scores are paired by ``qa_id``, questions grouped by ``leakage_group`` (as ``select`` does),
and :func:`components.decision.gate.non_inferiority` gives the verdict.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pandas as pd

from components import tracking
from components.config import GateConfig, RegistryConfig, StatisticsConfig
from components.decision.gate import (
    CHAMPION,
    NEW,
    Verdict,
    anchored,
    first_champion,
    gate_groups_guard,
    non_inferiority,
    same_bundle,
)
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
        qa: ``qa.parquet`` (``qa_id``, ``question``, ``answers``, ``leakage_group``, ``split``).
        predictions: ``predictions.parquet`` (``cell``, ``split``, ``qa_id``, the metrics).

    Returns:
        The questions of ``split`` (sorted by id, the first ``max_questions``; those the evaluation
        scored the cell on, when it did) and the cell's ``metric`` by ``qa_id``, or None when the
        evaluation did not score the cell on ``split`` (it must answer them here).

    Raises:
        ValueError: the split holds no questions, or qa.parquet has no ``leakage_group``.
    """
    if "leakage_group" not in qa.columns:
        raise ValueError("qa.parquet has no leakage_group column: run `ragtune ingest` again")
    rows = predictions[(predictions["cell"] == cell) & (predictions["split"] == split)]
    if metric not in rows.columns:
        rows = rows.iloc[0:0]  # the grid did not score this metric: the cell answers the gate's questions here
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


def question_groups(questions: pd.DataFrame) -> pd.Series:
    """Each question's leakage group by qa_id (what the bootstrap resamples as one); a blank one is its own."""
    group = questions["leakage_group"].fillna("").astype(str)
    return group.where(group != "", questions["qa_id"]).set_axis(questions["qa_id"].to_numpy())


def score_answers(
    answers: list[str], references: list[list[str]], metric: str, similarity_model: str | None = None
) -> list[float]:
    """Each answer's ``metric`` against its references, with the grid's own local evaluate module.

    Args:
        similarity_model: the embedder folder ``semantic_similarity`` is scored with (the grid's first embedder).

    Raises:
        ValueError: ``metric`` is no per-answer metric of the grid, or semantic similarity without a model.
    """
    from components.evaluation.answer import SCORED
    from components.evaluation.metrics import load_metric

    module = next((name for name, columns in SCORED.items() if metric in columns), None)
    if module is None:
        known = sorted(c for columns in SCORED.values() for c in columns)
        raise ValueError(f"the gate cannot score {metric!r}: the per-answer metrics are {known}")
    options = {}
    if module == "semantic_similarity":
        if similarity_model is None:
            raise ValueError("the gate scores semantic_similarity with the grid's embedder, and none was given")
        options["model"] = similarity_model
    found = load_metric(module).compute(predictions=answers, references=references, **options)
    return [float(v) for v in found[SCORED[module][metric]]]


def _scores(answers: pd.DataFrame, questions: pd.DataFrame, metric: str, similarity_model: str | None) -> pd.Series:
    if len(answers) != len(questions):
        raise ValueError(f"{len(answers)} answers for {len(questions)} questions")
    references = [list(a) for a in questions["answers"]]
    scores = score_answers(answers["answer"].tolist(), references, metric, similarity_model)
    return pd.Series(scores, index=questions["qa_id"].to_numpy())


def score_plan(
    plan: CellPlan, base_dir: Path, questions: pd.DataFrame, metric: str, similarity_model: str | None = None
) -> pd.Series:
    """The planned (not yet registered) cell answering ``questions`` through the serving code; scores by qa_id."""
    from components.serving.model import answer, load_parts

    model, tokenizer, retriever = load_parts(plan.bundle, base_dir, plan.adapter_dir)
    out = answer(model, tokenizer, retriever, plan.bundle, questions["question"].tolist())
    return _scores(out, questions, metric, similarity_model)


def score_version(
    name: str, version: str, questions: pd.DataFrame, metric: str, similarity_model: str | None = None
) -> pd.Series:
    """Registered version ``name/version`` loaded through its pyfunc, answering ``questions``; scores by qa_id.

    Raises:
        ChampionUnavailableError: it cannot be loaded or does not answer.
    """
    try:
        model = tracking.load_pyfunc(f"models:/{name}/{version}")
        out = model.predict(questions[["question"]].reset_index(drop=True))
    except Exception as exc:  # anything: a champion the gate cannot score must not be replaced silently
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ChampionUnavailableError(f"{name} version {version} could not answer: {first[:400]}") from exc
    return _scores(out, questions, metric, similarity_model)


def judge(
    plan: CellPlan,
    base_dir: Path,
    evaluation: Callable[[], tuple[pd.DataFrame, pd.DataFrame]],
    metric: str,
    gate: GateConfig,
    statistics: StatisticsConfig,
    registry: RegistryConfig,
    similarity_model: str | None = None,
) -> Verdict:
    """The gate's verdict on replacing ``registry.name@registry.alias`` by the planned cell.

    No champion (MLflow says so): pass (the first one). The champion is this very bundle: pass,
    nothing to compare. Otherwise both answer the same questions of ``gate.split`` and the paired
    interval decides, unless those questions form fewer than ``statistics.min_groups`` groups.

    Args:
        evaluation: returns ``qa.parquet`` and ``predictions.parquet`` (see :func:`gate_questions`);
            called only when there is a champion to compare with.

    Raises:
        components.tracking.RegistryError: the registry gave no definite answer.
        ChampionUnavailableError: the champion could not be loaded or could not answer.
    """
    cell = plan.choice.cell
    current = tracking.alias_version(registry.name, registry.alias)
    if current is None:
        first = first_champion(cell, metric, gate.split, gate.margin)
        if gate.anchor != "best-ever":
            return first
        anchor = tracking.alias_version(registry.name, registry.anchor_alias)  # moved from where it is
        return replace(first, anchor_version=None if anchor is None else str(anchor.version))
    version, label = str(current.version), _label(registry.name, current)
    if current.tags.get(HASH_TAG) == plan.digest:
        return same_bundle(cell, label, metric, gate.split, gate.margin, version)
    qa, predictions = evaluation()
    questions, new = gate_questions(qa, predictions, cell, metric, gate.split, gate.max_questions)
    groups = question_groups(questions)
    few = gate_groups_guard(
        cell, label, version, metric, gate.split, gate.margin, len(questions), groups.nunique(),
        statistics.min_groups, gate.allow_few_groups,
    )  # fmt: skip
    if few is not None:
        return few
    if new is None:
        logger.info("the evaluation did not score %s on %s: it answers the gate's questions now", cell, gate.split)
        new = score_plan(plan, base_dir, questions, metric, similarity_model)
    logger.info("scoring the champion %s on %d %s questions", label, len(questions), gate.split)
    champion = score_version(registry.name, version, questions, metric, similarity_model)
    options = dict(new=cell, metric=metric, split=gate.split, groups=groups)
    verdict = non_inferiority(
        _paired(new, champion, questions), gate.margin, statistics, champion=label, version=version, **options
    )
    if gate.anchor != "best-ever" or not verdict.passed:
        return verdict
    anchor = tracking.alias_version(registry.name, registry.anchor_alias)
    anchor_version = None if anchor is None else str(anchor.version)
    if anchor is None or anchor_version == version:  # the champion is the best so far
        return anchored(verdict, verdict, anchor_version)
    logger.info(
        "scoring the anchor %s (%s) on the same questions", _label(registry.name, anchor), registry.anchor_alias
    )
    best = score_version(registry.name, anchor_version, questions, metric, similarity_model)
    against = non_inferiority(
        _paired(new, best, questions), gate.margin, statistics, champion=_label(registry.name, anchor), **options
    )
    return anchored(verdict, against, anchor_version)


def _label(name: str, version) -> str:
    return f"{name} version {version.version} ({version.tags.get('ragtune.cell', '?')})"


def _paired(new: pd.Series, champion: pd.Series, questions: pd.DataFrame) -> pd.DataFrame:
    """The two cells' scores side by side, one row per question, paired by qa_id."""
    ids = questions["qa_id"].to_numpy()
    return pd.DataFrame({NEW: new.reindex(ids).to_numpy(), CHAMPION: champion.reindex(ids).to_numpy()}, index=ids)
