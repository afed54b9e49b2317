"""Retrieval: search a LanceDB table for the chunks that best match each question."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from components.config import RetrieverConfig
from components.embedding import Embedder
from components.index import check_embedder

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Hit:
    chunk_id: str
    doc_id: str
    text: str
    score: float


class Retriever:
    """A retriever configuration bound to its table and embedder."""

    def __init__(self, cfg: RetrieverConfig, table, embedder: Embedder):
        check_embedder(table, embedder)
        self.cfg = cfg
        self.table = table
        self.embedder = embedder

    @property
    def table_version(self) -> int:
        return self.table.version

    def search(self, questions: list[str]) -> tuple[list[list[Hit]], list[float]]:
        """Top-k hits for each question, and the latency of each query in seconds."""
        vectors = self.embedder.encode(questions)
        results, latencies = [], []
        for vector in vectors:
            start = time.perf_counter()
            rows = (
                self.table.search(vector)
                .distance_type("cosine")
                .limit(self.cfg.top_k)
                .select(["chunk_id", "doc_id", "text", "_distance"])
                .to_list()
            )
            latencies.append(time.perf_counter() - start)
            results.append([Hit(r["chunk_id"], r["doc_id"], r["text"], 1.0 - float(r["_distance"])) for r in rows])
        return results, latencies


def recall_at_k(hits: list[Hit], gold_doc_ids: list[str]) -> float:
    """1.0 when any retrieved chunk comes from a gold document, else 0.0."""
    gold = set(gold_doc_ids)
    return float(any(h.doc_id in gold for h in hits))
