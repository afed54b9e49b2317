"""How the grid's generation is split over workers: by (model variant, batch of questions), evenly.

The driver knows, for every cell, the prompts the prediction cache misses (in the length order the
transformers engine batches them in) and the prompts of its timed latency pass. That work is cut
into *units*: one per batch of ``batch_size`` prompts, and one per cell for its latency pass,
weighted by what they cost (a timed answer, alone in its batch, costs ``timed_cost`` batched
answers). Units are ordered by model variant, then cell, and the sequence is cut into ``workers``
contiguous runs of nearly equal weight. So:

- every worker is busy whatever the number of variants (a variant's cells and even one cell's
  batches are split when there are fewer variants than workers);
- each worker holds a contiguous run, so it loads each of its variants once (``workers + variants - 1``
  loads at most, where one job per variant loads each variant once but keeps only ``variants`` busy);
- a batch is the batch the one-process run makes (the same prompts, the same padding), so the
  answers are the one-process run's, whatever the split.

Pure: no model, no Ray (tests/unit/test_sharding.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import accumulate


@dataclass(frozen=True)
class CellWork:
    """One cell's generation work: its prompts to generate (length order) and its timed prompts."""

    cell: str
    model: str  # the model variant: "base" or an adapter name
    prompts: list[str]
    timed: list[str]


@dataclass(frozen=True)
class Piece:
    """A contiguous run of one cell's work on one worker: some of its batches, and maybe its latency pass."""

    cell: str
    model: str
    start: int  # position of its first prompt among the cell's prompts to generate
    prompts: list[str]
    timed: list[str]
    weight: float


@dataclass(frozen=True)
class _Unit:
    cell: int  # index into the work list
    start: int
    end: int  # prompts[start:end]; start == end for the latency pass
    timed: bool
    weight: float


def _units(work: list[CellWork], batch_size: int, timed_cost: float) -> list[_Unit]:
    """Every batch and latency pass, variant by variant (in order of first appearance), cell by cell."""
    variants = list(dict.fromkeys(w.model for w in work))
    units = []
    for variant in variants:
        for i, w in enumerate(work):
            if w.model != variant:
                continue
            for start in range(0, len(w.prompts), batch_size):
                end = min(start + batch_size, len(w.prompts))
                units.append(_Unit(i, start, end, False, float(end - start)))
            if w.timed:
                units.append(_Unit(i, len(w.prompts), len(w.prompts), True, timed_cost * len(w.timed)))
    return units


def _cut(weights: list[float], parts: int) -> list[int]:
    """Boundaries that cut ``weights`` into ``parts`` contiguous non-empty runs of nearly equal sum.

    Boundary k sits where the running sum comes closest to k/parts of the total, kept strictly
    increasing so every run holds at least one unit.
    """
    n = len(weights)
    parts = min(parts, n)
    prefix = [0.0, *accumulate(weights)]
    total = prefix[-1]
    bounds = [0]
    for k in range(1, parts):
        target = total * k / parts
        lo, hi = bounds[-1] + 1, n - (parts - k)  # leave one unit for each run after this one
        best = min(range(lo, hi + 1), key=lambda b: (abs(prefix[b] - target), b))
        bounds.append(best)
    return [*bounds, n]


def split(work: list[CellWork], workers: int, batch_size: int, timed_cost: float) -> list[list[Piece]]:
    """Each worker's pieces, in the order it runs them; fewer lists than ``workers`` when there are fewer units.

    A worker's pieces are grouped by variant (each loaded once) and, within a cell, contiguous.
    """
    units = _units(work, batch_size, timed_cost)
    if not units:
        return []
    bounds = _cut([u.weight for u in units], workers)
    plan = []
    for lo, hi in zip(bounds, bounds[1:], strict=False):
        pieces: list[Piece] = []
        for unit in units[lo:hi]:
            w = work[unit.cell]
            last = pieces[-1] if pieces else None
            if last is not None and last.cell == w.cell and not last.timed:
                merged = Piece(
                    w.cell,
                    w.model,
                    last.start,
                    last.prompts + w.prompts[unit.start : unit.end],
                    w.timed if unit.timed else [],
                    last.weight + unit.weight,
                )
                pieces[-1] = merged
                continue
            prompts = w.prompts[unit.start : unit.end]
            pieces.append(Piece(w.cell, w.model, unit.start, prompts, w.timed if unit.timed else [], unit.weight))
        plan.append(pieces)
    return plan


def pieces_per_cell(plan: list[list[Piece]]) -> dict[str, int]:
    """How many pieces each cell was cut into (the driver waits for all of them)."""
    counts: dict[str, int] = {}
    for pieces in plan:
        for piece in pieces:
            counts[piece.cell] = counts.get(piece.cell, 0) + 1
    return counts


def balance(plan: list[list[Piece]], workers: int) -> dict[str, float]:
    """The split's balance: each worker's weight (in batched answers), max/mean over ``workers``, and loads."""
    weights = [sum(p.weight for p in pieces) for pieces in plan] + [0.0] * (workers - len(plan))
    mean = sum(weights) / max(workers, 1)
    loads = sum(len(dict.fromkeys(p.model for p in pieces)) for pieces in plan)
    return {
        "workers": workers,
        "busy": sum(1 for w in weights if w > 0),
        "max_over_mean": max(weights) / mean if mean else 1.0,
        "weights": weights,
        "variant_loads": loads,
    }
