"""Cost: measured compute time and tokens turned into money, per cell of the grid.

A cell has a fixed cost, paid once per change of knowledge (training its adapter: wall time x
workers; building its retriever's index), and a per-query cost (generation and retrieval time,
prompt and completion tokens). Prices come from ``params/evaluation.yaml:cost``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass

from components.config import CostConfig

logger = logging.getLogger(__name__)

NEVER = math.inf


@dataclass(frozen=True)
class CellCost:
    """Money for one cell: fixed (once), per query, and per 1,000 queries."""

    fixed: float
    per_query: float
    per_1k_queries: float  # variable cost of 1,000 queries
    per_1k_amortised: float  # ... plus the fixed cost spread over ``query_volume`` queries

    def as_dict(self) -> dict[str, float]:
        return {f"cost_{k}": v for k, v in asdict(self).items()}


def fixed_seconds(train: dict | None, index_time_s: float | None) -> float:
    """CPU-machine seconds paid once: the compute that trained the adapter, plus the full index build time.

    Args:
        train: the adapter's entry of ``finetune.json`` (``compute_s``: the workers' time on the run
            that produced it, over restarts and resumes; ``workers``), None for the base model.
        index_time_s: the full build time of the retriever's table, None for closed-book cells.
    """
    seconds = 0.0
    if train is not None:
        seconds += float(train["compute_s"]) * int(train["workers"])
    if index_time_s is not None:
        seconds += float(index_time_s)
    return seconds


def cell_cost(metrics: dict, fixed_s: float, cfg: CostConfig) -> CellCost:
    """Cost of a cell from its summary metrics (``latency_mean_s`` or ``latency_p50_s``, tokens).

    Per query: generation latency plus retrieval latency (p50) at ``cpu_hour``, plus tokens at
    ``per_1k_tokens``.
    """
    latency = metrics.get("latency_mean_s", metrics["latency_p50_s"])
    retrieval = metrics.get("retrieval_latency_p50_s", 0.0)
    if retrieval is None or math.isnan(retrieval):
        retrieval = 0.0
    tokens = metrics["prompt_tokens_mean"] + metrics["completion_tokens_mean"]
    per_query = (latency + retrieval) / 3600 * cfg.cpu_hour + tokens / 1000 * cfg.per_1k_tokens
    fixed = fixed_s / 3600 * cfg.cpu_hour
    per_1k = 1000 * per_query
    return CellCost(fixed, per_query, per_1k, per_1k + 1000 * fixed / cfg.query_volume)


def break_even(a: CellCost, b: CellCost) -> float:
    """Query volume above which the mix with the higher fixed cost is the cheaper one.

    Returns:
        The volume, or ``NEVER`` (inf) when the mix with the higher fixed cost does not save
        anything per query (it never catches up), and when both fixed costs are equal (then the
        cheaper per query is cheaper at every volume and nothing is ever overtaken).
    """
    high, low = (a, b) if a.fixed >= b.fixed else (b, a)
    saving = low.per_query - high.per_query
    if high.fixed == low.fixed or saving <= 0:
        return NEVER
    return (high.fixed - low.fixed) / saving


def format_volume(volume: float) -> str:
    """A break-even volume for people: 'never', or a rounded number of queries."""
    return "never" if math.isinf(volume) else f"{volume:,.0f} queries"
