"""Sentence embeddings for chunks and queries (sentence-transformers, CPU or GPU).

Texts are encoded in length-sorted batches (similar lengths pad little), either in this process or,
for a large corpus or when a Ray cluster is configured, with Ray Data: ``map_batches`` over an
actor pool in which each actor loads the model once (on its own GPU with
``ray_embedding.gpus_per_actor``). With an object store the actors fetch the embedder from it
(uploaded once per content hash), so no node needs the driver's disk. Both strategies return
unit-normalised float32 vectors in the order of the input texts, and both report their throughput.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from components.config import EmbedderConfig, RayEmbeddingConfig
from components.llm.models import package_dir
from components.progress import Progress
from components.storage import ObjectStore, on_this_node, publish_dir

logger = logging.getLogger(__name__)


def embedder_path(cfg: EmbedderConfig) -> str:
    """Where the weights are: inside the named package (``<pkg>/model``) or ``cfg.path``."""
    if cfg.package is not None:
        root = package_dir(cfg.package)
        return str(root / "model" if (root / "model").is_dir() else root)
    return str(cfg.path)


def length_sorted_batches(texts: list[str], batch_size: int) -> list[np.ndarray]:
    """Indices of ``texts`` cut into batches, longest texts first, so each batch pads little."""
    order = np.argsort([-len(t) for t in texts], kind="stable")
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def _encode_local(embedder: Embedder, texts: list[str], progress: bool) -> np.ndarray:
    """Encode in this process, one length-sorted batch at a time, with chunks/s progress (a bar on a
    terminal, a rate line every few seconds in logs)."""
    out = np.zeros((len(texts), embedder.dim), dtype=np.float32)
    with Progress(len(texts), f"embed {embedder.name}", "chunks", enabled=progress) as bar:
        for batch in length_sorted_batches(texts, embedder.cfg.batch_size):
            out[batch] = embedder.model.encode(
                [texts[i] for i in batch],
                batch_size=len(batch),
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
            bar.update(len(batch))
    return out


def _encode_ray(embedder: Embedder, texts: list[str], progress: bool) -> np.ndarray:
    """Encode with Ray Data: ``map_batches`` over an actor pool, each actor loading the model once.

    The actors load the embedder from where every node reaches it (:func:`components.storage.publish_dir`:
    the store, or the driver's path without one), on a GPU of their own when ``gpus_per_actor`` asks.
    """
    import ray

    from components.ray_runtime import start_ray

    ray_cfg = embedder.ray
    assert ray_cfg is not None
    name = "embedder-" + re.sub(r"[^A-Za-z0-9._-]+", "-", embedder.name)  # an object-store key, one level
    folder = publish_dir(Path(embedder_path(embedder.cfg)), embedder.store, name)
    batch_size, gpu = embedder.cfg.batch_size, bool(ray_cfg.gpus_per_actor)

    class _EmbedActor:
        def __init__(self) -> None:
            import torch
            from sentence_transformers import SentenceTransformer

            device = "cuda" if gpu and torch.cuda.is_available() else "cpu"  # Ray set CUDA_VISIBLE_DEVICES to its own
            self.model = SentenceTransformer(str(on_this_node(folder)), device=device)

        def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            order = np.argsort([-len(t) for t in batch["text"]], kind="stable")
            vectors = np.zeros((len(order), self.model.get_embedding_dimension()), dtype=np.float32)
            vectors[order] = self.model.encode(
                [str(batch["text"][i]) for i in order],
                batch_size=batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
            return {"i": batch["i"], "vector": vectors}

    start_ray(ray_cfg.num_actors, embedder.cluster_address)  # this run's own local instance, or the cluster
    # Sorting by length before Ray cuts the batches keeps each batch's texts of similar length.
    order = np.argsort([-len(t) for t in texts], kind="stable")
    items = [{"i": int(i), "text": texts[i]} for i in order]
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = progress
    dataset = ray.data.from_items(items, override_num_blocks=max(1, ray_cfg.num_actors * 2)).map_batches(
        _EmbedActor,
        batch_size=ray_cfg.batch_size,
        batch_format="numpy",
        concurrency=ray_cfg.num_actors,
        num_cpus=1,
        num_gpus=ray_cfg.gpus_per_actor,
    )
    out = np.zeros((len(texts), embedder.dim), dtype=np.float32)
    for batch in dataset.iter_batches(batch_format="numpy", batch_size=None):
        out[batch["i"]] = batch["vector"]
    return out


EncodeStrategy = Callable[["Embedder", list[str], bool], np.ndarray]


class Embedder:
    """A loaded sentence-transformers model with the id and dimension it reports.

    Args:
        cfg: the embedder's params.
        device: torch device for in-process encoding.
        ray: when set, corpora of at least ``ray.min_chunks`` texts are embedded with Ray Data.
        cluster_address: a Ray cluster is configured (``RAY_ADDRESS``): use Ray Data whatever the size.
        store: the object store the Ray Data actors fetch the embedder from (None: the driver's path).
    """

    def __init__(
        self,
        cfg: EmbedderConfig,
        device: str = "cpu",
        ray: RayEmbeddingConfig | None = None,
        cluster_address: str | None = None,
        store: ObjectStore | None = None,
    ):
        from sentence_transformers import SentenceTransformer

        self.cfg = cfg
        self.ray = ray
        self.cluster_address = cluster_address
        self.store = store
        self.model = SentenceTransformer(embedder_path(cfg), device=device)
        self.dim = int(self.model.get_embedding_dimension())

    @property
    def name(self) -> str:
        return self.cfg.name

    def strategy(self, n_texts: int) -> EncodeStrategy:
        """Ray Data for a large corpus or a configured cluster, this process otherwise."""
        if self.ray is not None and (self.cluster_address or n_texts >= self.ray.min_chunks):
            return _encode_ray
        return _encode_local

    def encode(self, texts: list[str], progress: bool = False) -> np.ndarray:
        """Unit-normalised float32 vectors, one row per text, in input order."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        strategy = self.strategy(len(texts))
        start = time.perf_counter()
        vectors = strategy(self, texts, progress)
        elapsed = time.perf_counter() - start
        if progress:
            logger.info(
                "embedded %d texts in %.1f s (%.1f/s, %s)",
                len(texts),
                elapsed,
                len(texts) / max(elapsed, 1e-9),
                "ray data" if strategy is _encode_ray else "in process",
            )
        return vectors
