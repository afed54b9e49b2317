"""Retrieval: search a LanceDB table for the chunks that best match each question.

A retriever's ``mode`` picks one small search strategy:

- ``vector``: nearest chunks by cosine similarity of the embeddings (ANN above the table's
  ``ann_min_rows``, exact below);
- ``fulltext``: BM25 over the chunk text (LanceDB's native full-text index);
- ``hybrid``: both lists (``candidates`` deep each) fused by reciprocal rank fusion.

Then the retriever's ``reranker`` reorders the hits (``none`` keeps them as they are).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from components.config import RetrieverConfig
from components.retrieval.embedding import Embedder
from components.retrieval.index import check_embedder, has_fulltext_index

logger = logging.getLogger(__name__)

COLUMNS = ["chunk_id", "doc_id", "text"]


@dataclass(frozen=True)
class Hit:
    chunk_id: str
    doc_id: str
    text: str
    score: float


class MissingIndexError(LookupError):
    """A full-text or hybrid retriever was pointed at a table without a full-text index."""


def rrf_fuse(rankings: Sequence[Sequence[Hit]], k: int = 60, limit: int | None = None) -> list[Hit]:
    """Reciprocal rank fusion: score(chunk) = sum over lists of 1 / (k + rank), ranks from 1.

    Ties (same fused score) go to the chunk with the better best rank in any list, then to the
    earlier list, then to the smaller chunk id, so the fusion is deterministic. A chunk repeated
    within one list counts once, at its first rank.

    Args:
        rankings: ranked hit lists (best first), e.g. the vector and the full-text results.
        k: the RRF constant; larger flattens the difference between top and lower ranks (60 is the
            value of Cormack et al. 2009).
        limit: keep the best ``limit`` fused hits (all when None).

    Returns:
        Hits ordered by fused score, their ``score`` set to it.
    """
    scores: dict[str, float] = {}
    best: dict[str, tuple[int, int]] = {}
    first: dict[str, Hit] = {}
    for list_index, ranking in enumerate(rankings):
        seen: set[str] = set()
        for rank, hit in enumerate(ranking, start=1):
            if hit.chunk_id in seen:
                continue
            seen.add(hit.chunk_id)
            scores[hit.chunk_id] = scores.get(hit.chunk_id, 0.0) + 1.0 / (k + rank)
            best[hit.chunk_id] = min(best.get(hit.chunk_id, (rank, list_index)), (rank, list_index))
            first.setdefault(hit.chunk_id, hit)
    order = sorted(scores, key=lambda c: (-scores[c], best[c], c))
    fused = [Hit(first[c].chunk_id, first[c].doc_id, first[c].text, scores[c]) for c in order]
    return fused if limit is None else fused[:limit]


# --- search strategies: (table, question, query vector, config, depth) -> ranked hits ----------------


def vector_search(table, question: str, vector: np.ndarray | None, cfg: RetrieverConfig, depth: int) -> list[Hit]:
    """Nearest chunks by cosine similarity; score = 1 - cosine distance."""
    rows = table.search(vector).distance_type("cosine").limit(depth).select([*COLUMNS, "_distance"]).to_list()
    return [Hit(r["chunk_id"], r["doc_id"], r["text"], 1.0 - float(r["_distance"])) for r in rows]


def fulltext_search(table, question: str, vector: np.ndarray | None, cfg: RetrieverConfig, depth: int) -> list[Hit]:
    """BM25 over the chunk text; score = BM25 score."""
    rows = table.search(question, query_type="fts").limit(depth).select([*COLUMNS, "_score"]).to_list()
    return [Hit(r["chunk_id"], r["doc_id"], r["text"], float(r["_score"])) for r in rows]


def hybrid_search(table, question: str, vector: np.ndarray | None, cfg: RetrieverConfig, depth: int) -> list[Hit]:
    """Vector and full-text lists, ``cfg.candidates`` deep each, fused by RRF (``cfg.rrf_k``)."""
    lists = [
        vector_search(table, question, vector, cfg, cfg.candidates),
        fulltext_search(table, question, vector, cfg, cfg.candidates),
    ]
    return rrf_fuse(lists, k=cfg.rrf_k, limit=depth)


SearchFn = Callable[[object, str, "np.ndarray | None", RetrieverConfig, int], list[Hit]]
SEARCH_MODES: dict[str, SearchFn] = {"vector": vector_search, "fulltext": fulltext_search, "hybrid": hybrid_search}
NEEDS_VECTOR = {"vector", "hybrid"}
NEEDS_FULLTEXT = {"fulltext", "hybrid"}


# --- rerankers: (question, hits) -> reordered hits ------------------------------------------------


def no_rerank(question: str, hits: list[Hit]) -> list[Hit]:
    """Keep the search order."""
    return hits


RERANKERS: dict[str, Callable[[str, list[Hit]], list[Hit]]] = {"none": no_rerank}


class Retriever:
    """A retriever configuration bound to its table and embedder."""

    def __init__(self, cfg: RetrieverConfig, table, embedder: Embedder):
        check_embedder(table, embedder)
        if cfg.mode in NEEDS_FULLTEXT and not has_fulltext_index(table):
            raise MissingIndexError(
                f"retriever {cfg.name!r} ({cfg.mode}) needs a full-text index on table {table.name!r}: "
                "run `ragtune index`"
            )
        self.cfg = cfg
        self.table = table
        self.embedder = embedder
        self.search_fn = SEARCH_MODES[cfg.mode]
        self.rerank = RERANKERS[cfg.reranker]

    @property
    def table_version(self) -> int:
        return self.table.version

    def search(self, questions: list[str]) -> tuple[list[list[Hit]], list[float]]:
        """Top-k hits for each question, and the latency of each query in seconds.

        Each query is answered on its own, as a user's would be: its latency covers embedding the
        question (vector and hybrid modes), the search (both searches and the fusion in hybrid
        mode) and the reranking.
        """
        results, latencies = [], []
        for question in questions:
            start = time.perf_counter()
            vector = self.embedder.encode([question])[0] if self.cfg.mode in NEEDS_VECTOR else None
            hits = self.rerank(question, self.search_fn(self.table, question, vector, self.cfg, self.cfg.top_k))
            latencies.append(time.perf_counter() - start)
            results.append(hits[: self.cfg.top_k])
        return results, latencies
