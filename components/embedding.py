"""Sentence embeddings for chunks and queries (sentence-transformers, CPU or GPU)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from components.config import EmbedderConfig
from components.models import package_dir

logger = logging.getLogger(__name__)


def embedder_path(cfg: EmbedderConfig) -> str:
    """Where the weights are: inside the named package (``<pkg>/model``) or ``cfg.path``."""
    if cfg.package is not None:
        root = package_dir(cfg.package)
        return str(root / "model" if (root / "model").is_dir() else root)
    return str(cfg.path)


class Embedder:
    """A loaded sentence-transformers model with the id and dimension it reports."""

    def __init__(self, cfg: EmbedderConfig, device: str = "cpu"):
        from sentence_transformers import SentenceTransformer

        self.cfg = cfg
        self.model = SentenceTransformer(embedder_path(cfg), device=device)
        self.dim = int(self.model.get_embedding_dimension())

    @property
    def name(self) -> str:
        return self.cfg.name

    def encode(self, texts: list[str], progress: bool = False) -> np.ndarray:
        """Unit-normalised float32 vectors, encoded in length-sorted batches."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        start = time.perf_counter()
        vectors = self.model.encode(
            texts,
            batch_size=self.cfg.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=progress,
        ).astype(np.float32)
        elapsed = time.perf_counter() - start
        if progress:
            logger.info("embedded %d texts in %.1f s (%.1f/s)", len(texts), elapsed, len(texts) / max(elapsed, 1e-9))
        return vectors


