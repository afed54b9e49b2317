"""Where the grid's answers are generated: in this process, or on a pool of Ray actors.

The driver renders prompts, reads and writes the prediction cache, scores and logs; only the
generation travels, split by (model variant, batch of questions) over the workers
(:mod:`components.evaluation.sharding`). ``evaluation.parallel.workers`` picks the pool: 1 runs
here; more start that many Ray actors (``cpus_per_worker`` CPUs and ``gpus_per_worker`` GPUs each,
spread over the nodes; on ``RAY_ADDRESS``'s cluster when it is set). An actor that asks for a GPU
sees only its own (Ray sets its ``CUDA_VISIBLE_DEVICES``); one that asks for none sees none, so
actors never pile onto ``cuda:0``. The pool is opened once by the caller (:func:`open_pool`) and
serves every call (dev, then test, then the learning curves): an actor keeps the variant it
loaded, and loads each variant of its share once. Each finished batch is counted on the driver's
progress through a Ray queue.

A variant names its base model and adapter as :class:`~components.storage.StoredDir`: local
paths on one machine, or (with an object store configured) folders the driver uploaded once per
content hash, which each node fetches into its own cache, so no node needs the driver's disk.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from components.config import GenerationConfig, ParallelConfig
from components.evaluation.sharding import Piece
from components.progress import Progress
from components.storage import ObjectStore, StoredDir, on_this_node, publish_dir

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelVariant:
    """What a worker loads: the base model and, for an adapter variant, its adapter."""

    model: str
    base: StoredDir
    adapter: StoredDir | None

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.model, self.base.path, self.adapter.path if self.adapter else "")


@dataclass(frozen=True)
class Task:
    """One piece of work for one worker: a piece of a cell, answered by its variant."""

    variant: ModelVariant
    piece: Piece
    generation: GenerationConfig
    max_lora_rank: int  # vLLM's max_lora_rank over every adapter of the grid


@dataclass(frozen=True)
class PieceOutput:
    cell: str
    start: int  # the piece's first prompt among the cell's prompts to generate
    generations: list  # components.llm.generation.Generation, one per prompt of the piece
    latencies_s: list[float]  # generation time of each timed prompt, one at a time
    worker: int
    node: str  # where it ran: "local", or the Ray node id
    precision: str = ""  # the dtype it generated in (generation.dtype as resolved where it ran)


@dataclass
class WorkerStats:
    """What one worker did in a pool's life: where it ran, which GPUs it saw, its answers and model loads."""

    worker: int
    node: str = "local"
    devices: str | None = None  # CUDA_VISIBLE_DEVICES as the worker saw it (None: unset)
    answers: int = 0  # prompts generated, timed ones included
    loads: int = 0  # model variants loaded
    code: str = ""  # where its ``components`` came from: on a cluster, the job's runtime environment


class Runner:
    """Answers tasks where it lives (this process, or a Ray actor), keeping the last variant it loaded."""

    def __init__(self, worker: int, node: str = "local") -> None:
        import components

        self.stats = WorkerStats(worker, node, os.environ.get("CUDA_VISIBLE_DEVICES"), code=components.__file__)
        self.loaded: tuple[ModelVariant, object] | None = None
        self.tokenizers: dict[str, object] = {}

    def _variant(self, task: Task):
        from components.llm.engines import Variant
        from components.llm.models import load_tokenizer

        if self.loaded is not None and self.loaded[0].key == task.variant.key:
            return self.loaded[1]
        self.loaded = None  # the previous variant's memory goes before the next one loads
        base = on_this_node(task.variant.base)
        tokenizer = self.tokenizers.setdefault(str(base), load_tokenizer(base))
        adapter = on_this_node(task.variant.adapter) if task.variant.adapter else None
        self.loaded = (task.variant, Variant(base, adapter, tokenizer, task.generation, task.max_lora_rank))
        self.stats.loads += 1
        return self.loaded[1]

    def run(self, task: Task, on_batch: Callable[[int], None]) -> PieceOutput:
        """The piece's prompts in the one-process run's batches, then its timed prompts one at a time."""
        import time

        variant = self._variant(task)
        piece, cfg = task.piece, task.generation
        generations = variant.generate(piece.prompts, cfg, on_batch) if piece.prompts else []
        single = cfg.model_copy(update={"batch_size": 1})
        latencies = []
        for prompt in piece.timed:
            start = time.perf_counter()
            variant.generate([prompt], single, on_batch)
            latencies.append(time.perf_counter() - start)
        self.stats.answers += len(piece.prompts) + len(piece.timed)
        return PieceOutput(
            piece.cell, piece.start, generations, latencies, self.stats.worker, self.stats.node, variant.choice.dtype
        )


class LocalPool:
    """One worker: this process, all its threads."""

    size = 1

    def __init__(self) -> None:
        self.runner = Runner(0)

    @property
    def stats(self) -> list[WorkerStats]:
        """A snapshot, as :class:`RayPool`'s: a later run on the pool does not change what was read."""
        return [dataclasses.replace(self.runner.stats)]

    def run(self, plan: list[list[Task]], progress: Progress) -> Iterator[PieceOutput]:
        for tasks in plan:
            for task in tasks:
                yield self.runner.run(task, progress.update)


class RayPool:
    """``workers`` Ray actors, started on first use and ended by :meth:`close`; each runs its share in order."""

    def __init__(self, parallel: ParallelConfig, cluster_address: str | None, store: ObjectStore | None) -> None:
        self.parallel, self.cluster_address, self.store = parallel, cluster_address, store
        self.size = parallel.workers
        self.actors: list = []
        self.held: list[tuple | None] = []  # the variant each actor holds once its queued tasks are done
        self.queue = None
        self.published: dict[tuple[str, str], StoredDir] = {}

    def _start(self) -> None:
        import ray
        from ray.util.queue import Queue

        from components.ray_runtime import require_gpus, start_ray

        p = self.parallel
        start_ray(p.workers * p.cpus_per_worker, self.cluster_address)
        require_gpus(p.workers * p.gpus_per_worker, local=not self.cluster_address)
        self.queue = Queue(actor_options={"num_cpus": 0})
        options = {"num_cpus": p.cpus_per_worker, "num_gpus": p.gpus_per_worker, "scheduling_strategy": "SPREAD"}
        if not p.gpus_per_worker:  # no GPU asked for: see none (Ray leaves CUDA_VISIBLE_DEVICES alone otherwise)
            options["runtime_env"] = {"env_vars": {"CUDA_VISIBLE_DEVICES": ""}}
        actor = ray.remote(GridActor).options(**options)
        self.actors = [actor.remote(i, p.cpus_per_worker, self.queue) for i in range(p.workers)]
        self.held = [None] * p.workers
        logger.info("grid pool: %d Ray actors, %d CPU and %g GPU each", p.workers, p.cpus_per_worker, p.gpus_per_worker)

    def publish(self, folder: StoredDir | None, name: str) -> StoredDir | None:
        """``folder`` where every node reaches it: the store (uploaded once per content hash), or in place."""
        if folder is None or self.store is None:
            return folder
        key = (folder.path, name)
        if key not in self.published:
            self.published[key] = publish_dir(Path(folder.path), self.store, name)
        return self.published[key]

    @property
    def stats(self) -> list[WorkerStats]:
        import ray

        return ray.get([a.stats.remote() for a in self.actors]) if self.actors else []

    def run(self, plan: list[list[Task]], progress: Progress) -> Iterator[PieceOutput]:
        """Each worker's tasks on its actor (queued there, run in order); outputs as they finish."""
        import ray

        if not plan:
            return
        if not self.actors:
            self._start()
        order = match(plan, self.held)
        pending = {}
        for i, (actor, tasks) in enumerate(zip(self.actors, order, strict=True)):
            if tasks:
                self.held[i] = tasks[-1].variant.key
            for task in tasks:
                task = dataclasses.replace(
                    task,
                    variant=ModelVariant(
                        task.variant.model,
                        self.publish(task.variant.base, "base"),
                        self.publish(task.variant.adapter, f"adapter-{task.variant.model}"),
                    ),
                )
                pending[actor.run.remote(task)] = None
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
            self._drain(progress)
            for ref in done:
                pending.pop(ref)
                yield ray.get(ref)
        self._drain(progress)

    def _drain(self, progress: Progress) -> None:
        for n in self.queue.get_nowait_batch(self.queue.qsize()):
            progress.update(n)

    def close(self) -> None:
        import ray

        for actor in self.actors:
            ray.kill(actor)
        if self.queue is not None:
            self.queue.shutdown()
        self.actors, self.queue = [], None


def match(plan: list[list[Task]], held: list[tuple | None]) -> list[list[Task]]:
    """The plan's shares in actor order (one list per actor, empty for an idle one): an actor that already
    holds the variant a share starts with gets that share (it skips a load); the others go in plan order."""
    out: list[list[Task] | None] = [None] * len(held)
    left = list(range(len(plan)))
    for actor, key in enumerate(held):
        share = next((k for k in left if key is not None and plan[k][0].variant.key == key), None)
        if share is not None:
            out[actor] = plan[share]
            left.remove(share)
    for actor in range(len(held)):
        if out[actor] is None and left:
            out[actor] = plan[left.pop(0)]
    return [tasks or [] for tasks in out]


class GridActor:
    """The Ray actor of :class:`RayPool`: a :class:`Runner` on a node, reporting each batch to the driver."""

    def __init__(self, worker: int, threads: int, queue) -> None:
        import ray
        import torch

        torch.set_num_threads(threads)
        self.runner = Runner(worker, ray.get_runtime_context().get_node_id())
        self.queue = queue

    def run(self, task: Task) -> PieceOutput:
        return self.runner.run(task, self.queue.put_nowait)

    def stats(self) -> WorkerStats:
        return self.runner.stats


@contextlib.contextmanager
def open_pool(parallel: ParallelConfig, store: ObjectStore | None, cluster_address: str | None) -> Iterator:
    """The grid's workers for the ``with`` block: this process (``workers: 1``), or a pool of Ray actors."""
    if parallel.workers == 1:
        yield LocalPool()
        return
    pool = RayPool(parallel, cluster_address, store)
    try:
        yield pool
    finally:
        pool.close()


def local_dir(path: Path | None) -> StoredDir | None:
    """A folder read in place (one machine, or a disk every node shares)."""
    return None if path is None else StoredDir(str(path.resolve()), digest="")
