"""The grid's split over workers: every worker busy, each variant loaded once per worker, the one-process batches."""

from __future__ import annotations

import pytest

from components.evaluation.executors import ModelVariant, Task, match
from components.evaluation.sharding import CellWork, balance, pieces_per_cell, split
from components.storage import StoredDir
from tests.conftest import PARAMS


def _work(cells: dict[str, str], questions: int, timed: int = 2) -> list[CellWork]:
    """One CellWork per cell (name -> model), ``questions`` prompts each (p<cell>-<i>), ``timed`` timed prompts."""
    return [
        CellWork(c, m, [f"p{c}-{i}" for i in range(questions)], [f"t{c}-{i}" for i in range(timed)])
        for c, m in cells.items()
    ]


DEMO = {"base+none": "base", "base+k3": "base", "base+none+3": "base", "base+k3+3": "base",
        "lora+none": "lora", "lora+k3": "lora", "raft+none": "raft", "raft+k3": "raft"}  # fmt: skip


@pytest.mark.parametrize("workers", [1, 2, 3, 4, 8])
def test_every_prompt_is_answered_once_in_the_one_process_batches(workers):
    work = _work(DEMO, questions=37)
    plan = split(work, workers, batch_size=16, timed_cost=5)
    for w in work:
        pieces = sorted((p for share in plan for p in share if p.cell == w.cell), key=lambda p: p.start)
        assert [q for p in pieces for q in p.prompts] == w.prompts  # each prompt once, in order
        assert [t for p in pieces for t in p.timed] == w.timed  # the latency pass once, on one worker
        assert all(p.start % 16 == 0 for p in pieces)  # cut only between the one-process run's batches
        assert sum(1 for p in pieces if p.timed) == 1
    assert pieces_per_cell(plan) == {w.cell: sum(p.cell == w.cell for s in plan for p in s) for w in work}


def test_more_workers_than_variants_are_all_busy_and_balanced():
    """The demo grid's 8 cells in 3 variants (4/2/2 cells): one job per variant kept 3 workers busy, the base
    model's with half the work; split by batches, 4 workers share it evenly."""
    plan = split(_work(DEMO, questions=72, timed=8), 4, batch_size=16, timed_cost=5)
    stats = balance(plan, 4)
    assert stats["busy"] == 4 and stats["max_over_mean"] < 1.15, stats
    for share in plan:  # each worker's variants come in one run each: it loads each once
        models = [p.model for p in share]
        runs = [m for i, m in enumerate(models) if i == 0 or models[i - 1] != m]
        assert len(runs) == len(set(models)), models
    assert stats["variant_loads"] <= 4 + 3 - 1


def test_two_variants_over_four_workers():
    """The Done-when case: 4 workers, 2 model variants, all busy."""
    plan = split(_work({"base+none": "base", "lora+none": "lora"}, questions=4, timed=1), 4, batch_size=1, timed_cost=1)
    stats = balance(plan, 4)
    assert stats["busy"] == 4 and stats["max_over_mean"] <= 1.2, stats


def test_fewer_units_than_workers_leave_the_rest_idle_and_nothing_empty():
    plan = split(_work({"base+none": "base"}, questions=3, timed=1), 8, batch_size=16, timed_cost=5)
    assert len(plan) == 2 and all(plan)  # one batch and one latency pass
    assert balance(plan, 8)["busy"] == 2
    assert split([], 4, batch_size=16, timed_cost=5) == []


def test_one_worker_runs_everything_in_grid_order():
    work = _work(DEMO, questions=5)
    (share,) = split(work, 1, batch_size=16, timed_cost=5)
    assert [p.cell for p in share] == [w.cell for w in work]  # one piece per cell, batches merged


def _task(model: str) -> Task:
    variant = ModelVariant(model, StoredDir("/base", ""), StoredDir(f"/{model}", "") if model != "base" else None)
    return Task(variant, None, PARAMS.evaluation.generation, 0)


def test_a_warm_actor_gets_the_share_that_starts_with_the_variant_it_holds():
    plan = [[_task("base")], [_task("lora")], [_task("raft")]]
    held = [None, _task("raft").variant.key, _task("base").variant.key, None]
    order = match(plan, held)
    assert [[t.variant.model for t in share] for share in order] == [["lora"], ["raft"], ["base"], []]


def test_the_one_process_pools_stats_are_a_snapshot_as_the_ray_pools_are():
    """bench/grid.py reads the stats after the cold run: a later run on the pool must not add to them."""
    from components.evaluation.executors import LocalPool

    pool = LocalPool()
    before = pool.stats
    pool.runner.stats.answers += 64  # what the cached run's timed pass adds
    pool.runner.stats.loads += 3
    assert (before[0].answers, before[0].loads) == (0, 0)
    assert (pool.stats[0].answers, pool.stats[0].loads) == (64, 3)
