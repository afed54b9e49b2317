"""The register stage's decisions: which verdict the recommendation gets, and what a pass registers.

The refusals come first, before any model is loaded: a recommendation test did not confirm
(``gate.allow_unconfirmed``), one made on too few dev question groups (``gate.allow_few_groups``,
judge-only runs only). Then the gate (:func:`components.serving.champion.judge`). A pass registers
the adapters and the cell, and moves the alias last, by compare-and-set from the version the gate
judged against; with ``gate.anchor: best-ever`` the anchor alias follows a champion that beat it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from components import tracking
from components.catalog.artifacts import BestFile
from components.config import EmbedderConfig
from components.decision.gate import Verdict, anchor_moves, confirmation_guard, size_guard
from components.serving.champion import judge
from components.serving.register import CellPlan, register_adapters, register_cell

logger = logging.getLogger(__name__)


class AnchorNotMovedError(RuntimeError):
    """The champion moved, but the anchor alias could not follow it."""


def similarity_model(metric: str, embedders: dict[str, EmbedderConfig]) -> str | None:
    """The embedder folder semantic similarity is scored with (the grid's first embedder), when it is the metric."""
    if metric != "semantic_similarity":
        return None
    from components.retrieval.embedding import embedder_path

    return embedder_path(next(iter(embedders.values())))


def verdict_for(
    best: BestFile,
    plan: CellPlan,
    base_dir: Path,
    evaluation: Callable[[], tuple[pd.DataFrame, pd.DataFrame]],
    cfg,
    embedders: dict[str, EmbedderConfig],
) -> Verdict:
    """The gate's verdict on ``best.recommended`` (``cfg``: the evaluation params the register stage reads).

    Raises:
        components.tracking.RegistryError: the registry gave no definite answer.
        components.serving.champion.ChampionUnavailableError: the champion could not answer.
    """
    chosen, gate, metric = best.recommended, cfg.gate, cfg.main_metric
    confirmation = best.confirmation
    refused = confirmation_guard(
        chosen.cell,
        metric,
        gate.split,
        gate.margin,
        confirmation.choice,
        confirmation.beaten_by,
        gate.allow_unconfirmed,
    ) or size_guard(chosen.cell, metric, best.split, gate.margin, best.groups, best.few_groups, gate.allow_few_groups)
    if refused is not None:
        return refused
    model = similarity_model(metric, embedders)
    return judge(plan, base_dir, evaluation, metric, gate, cfg.statistics, cfg.registry, model)


def promote(
    plan: CellPlan, verdict: Verdict, base_dir: Path, adapters_dir: Path, adapters: list[str], cfg, generation, tags
) -> tuple[list[dict], dict]:
    """Register the adapters and the cell that passed; the alias moves last, from ``verdict.champion_version``.

    Returns:
        The adapters' registry results and the cell's.

    Raises:
        components.tracking.AliasMovedError: another run moved the alias since the gate read it.
        AnchorNotMovedError: the champion moved, the anchor alias could not follow.
    """
    registry = cfg.registry
    results = register_adapters(
        adapters, adapters_dir, base_dir, registry.adapter_prefix, cfg.prompts, generation, tags
    )
    result = register_cell(plan, base_dir, registry, tags, verdict.champion_version)
    if cfg.gate.anchor == "best-ever" and anchor_moves(verdict):
        try:
            tracking.move_alias(registry.name, registry.anchor_alias, result["version"], verdict.anchor_version)
        except tracking.RegistryError as exc:
            raise AnchorNotMovedError(
                f"@{registry.alias} is now version {result['version']}, but @{registry.anchor_alias} could not "
                f"follow it: {exc}"
            ) from exc
        result = {**result, "anchor": registry.anchor_alias}
    return results, result
