"""Retrieval benchmark: LanceDB ANN vs exact vs numpy brute force, incremental updates, embedding cost.

Run from the repository root:

    HF_HUB_OFFLINE=1 python bench/retrieval.py                  # 10,000 and 100,000 chunks
    HF_HUB_OFFLINE=1 python bench/retrieval.py --sizes 2000 --embed-sample 200 --queries 50   # smoke run

For each corpus size it measures, side by side in one run:

- index build time: creating the table through ``sync_table`` (insert + BTree + full-text index),
  then the ANN index (``params/retrieval.yaml:index.ann_index_type``);
- query latency p50/p95 for LanceDB ANN, LanceDB exact (``bypass_vector_index``) and numpy brute force;
- recall@10 of ANN against exact search;
- an incremental update with 5% new documents against a full rebuild of the same corpus.

Embedding 100k chunks takes about 40 minutes on a 2-core machine, so the index benchmarks use
clustered random unit vectors (a stand-in encoder with the embedder's name and dimension); the
embedding cost is measured separately on a smaller sample of real text: the index stage's
``sync_table`` against a bare sentence-transformers ``encode`` of the same chunks.

Prints a table and writes JSON to ``bench/results/retrieval.json`` (git-ignored).
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import platform
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import lancedb
import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from components.config import IndexSettings, load_params  # noqa: E402
from components.io import write_json  # noqa: E402
from components.retrieval.embedding import Embedder, embedder_path  # noqa: E402
from components.retrieval.index import sync_table, update_indexes  # noqa: E402

logger = logging.getLogger("bench.retrieval")
DIM = 384
TOP = 10
WORDS = [
    "river",
    "mountain",
    "currency",
    "capital",
    "border",
    "coast",
    "island",
    "desert",
    "forest",
    "harbour",
    "railway",
    "province",
    "republic",
    "kingdom",
    "language",
    "census",
    "export",
    "import",
    "climate",
    "festival",
    "museum",
    "bridge",
    "valley",
]


class ClusteredRandomEncoder:
    """Stands in for the embedder in the index benchmarks: a text's vector is fixed by its hash.

    Vectors are unit-normalised points around ``n_clusters`` random centres (real embeddings
    cluster by topic; uniform random vectors would be an unrealistically hard case for ANN).
    """

    def __init__(self, name: str, dim: int = DIM, n_clusters: int = 256, spread: float = 0.6):
        self.name, self.dim, self.spread = name, dim, spread
        self.centres = np.random.default_rng(0).standard_normal((n_clusters, dim)).astype(np.float32)

    def encode(self, texts: list[str], progress: bool = False) -> np.ndarray:
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            seed = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")
            rng = np.random.default_rng(seed)
            out[i] = self.centres[seed % len(self.centres)] + self.spread * rng.standard_normal(self.dim)
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def synthetic_chunks(n: int, start: int = 0, seed: int = 0) -> pd.DataFrame:
    """``n`` chunks of about 250-450 characters (like para-400), one per synthetic document ``doc-<i>``."""
    rng = np.random.default_rng(seed + start)
    rows = []
    for i in range(start, start + n):
        words = rng.choice(WORDS, size=int(rng.integers(30, 55)))
        text = f"Document {i} describes region R{i % 997} and code C{i}. " + " ".join(words) + "."
        rows.append(
            {
                "chunk_id": f"doc-{i}#0",
                "doc_id": f"doc-{i}",
                "position": 0,
                "heading": "",
                "text": text,
                "content_hash": hashlib.blake2b(f"doc-{i}\n{text}".encode(), digest_size=8).hexdigest(),
            }
        )
    return pd.DataFrame(rows)


def _percentiles(latencies_s: list[float]) -> dict[str, float]:
    return {
        "p50_ms": float(np.percentile(latencies_s, 50) * 1e3),
        "p95_ms": float(np.percentile(latencies_s, 95) * 1e3),
    }


def _timed_queries(search, queries: np.ndarray) -> tuple[list[list[str]], dict[str, float]]:
    search(queries[0])  # warm caches
    results, latencies = [], []
    for q in queries:
        start = time.perf_counter()
        results.append(search(q))
        latencies.append(time.perf_counter() - start)
    return results, _percentiles(latencies)


def bench_size(n: int, n_queries: int, settings: IndexSettings, encoder: ClusteredRandomEncoder, work: Path) -> dict:
    """Every index measurement for one corpus size."""
    logger.info("--- %d chunks ---", n)
    chunks = synthetic_chunks(n)
    no_ann = settings.model_copy(update={"ann_min_rows": 10**12})
    with_ann = settings.model_copy(update={"ann_min_rows": 1})
    db = lancedb.connect(str(work / f"db-{n}"))

    start = time.perf_counter()
    sync_table(db, "t", chunks, encoder, no_ann, fts=True)
    table_s = time.perf_counter() - start
    table = db.open_table("t")
    start = time.perf_counter()

    update_indexes(table, with_ann, fts=False, changed=False)
    ann_s = time.perf_counter() - start
    logger.info("table + FTS %.1f s, ANN index %.1f s", table_s, ann_s)

    rng = np.random.default_rng(1)
    vectors = encoder.encode(chunks["text"].tolist())
    queries = vectors[rng.choice(n, n_queries, replace=False)] + 0.3 * rng.standard_normal((n_queries, DIM)).astype(
        np.float32
    ) / np.sqrt(DIM)
    queries = (queries / np.linalg.norm(queries, axis=1, keepdims=True)).astype(np.float32)
    ids = chunks["chunk_id"].to_numpy()

    def ann(q):
        rows = table.search(q).distance_type("cosine").limit(TOP).select(["chunk_id", "_distance"]).to_list()
        return [r["chunk_id"] for r in rows]

    def exact(q):
        query = table.search(q).distance_type("cosine").bypass_vector_index().limit(TOP)
        return [r["chunk_id"] for r in query.select(["chunk_id", "_distance"]).to_list()]

    def brute(q):
        scores = vectors @ q
        top = np.argpartition(-scores, TOP)[:TOP]
        return ids[top[np.argsort(-scores[top])]].tolist()

    ann_res, ann_lat = _timed_queries(ann, queries)
    exact_res, exact_lat = _timed_queries(exact, queries)
    brute_res, brute_lat = _timed_queries(brute, queries)
    recall = float(np.mean([len(set(a) & set(e)) / TOP for a, e in zip(ann_res, exact_res, strict=True)]))
    agree = float(np.mean([len(set(b) & set(e)) / TOP for b, e in zip(brute_res, exact_res, strict=True)]))

    # incremental: 5% new documents into the indexed table, against a full rebuild of the same corpus
    grown = pd.concat([chunks, synthetic_chunks(n // 20, start=n)], ignore_index=True)
    start = time.perf_counter()
    inc = sync_table(db, "t", grown, encoder, with_ann, fts=True)
    incremental_s = time.perf_counter() - start
    start = time.perf_counter()
    full = sync_table(lancedb.connect(str(work / f"rebuild-{n}")), "t", grown, encoder, with_ann, fts=True)
    rebuild_s = time.perf_counter() - start
    assert inc.rows == full.rows == len(grown) and inc.added == n // 20
    shutil.rmtree(work / f"db-{n}", ignore_errors=True)
    shutil.rmtree(work / f"rebuild-{n}", ignore_errors=True)
    return {
        "chunks": n,
        "build_table_and_fts_s": table_s,
        "build_ann_index_s": ann_s,
        "ann_index_type": settings.ann_index_type,
        "latency_ann": ann_lat,
        "latency_exact": exact_lat,
        "latency_numpy": brute_lat,
        "recall_at_10_ann_vs_exact": recall,
        "numpy_vs_exact_overlap_at_10": agree,
        "incremental_5pct_s": incremental_s,
        "incremental_added": inc.added,
        "full_rebuild_s": rebuild_s,
        "queries": n_queries,
    }


def bench_embedding(n: int, params, work: Path) -> dict:
    """Embedding throughput inside the index stage against a bare sentence-transformers encode."""
    from sentence_transformers import SentenceTransformer

    cfg = params.retrieval.embedders["minilm"]
    chunks = synthetic_chunks(n, seed=7)
    texts = chunks["text"].tolist()
    model = SentenceTransformer(embedder_path(cfg), device="cpu")
    model.encode(texts[:16], batch_size=cfg.batch_size)  # warm-up
    start = time.perf_counter()
    model.encode(texts, batch_size=cfg.batch_size, normalize_embeddings=True, show_progress_bar=False)
    bare_s = time.perf_counter() - start
    embedder = Embedder(cfg)  # in process: the sample is below ray_embedding.min_chunks
    start = time.perf_counter()
    report = sync_table(lancedb.connect(str(work / "embed")), "t", chunks, embedder, params.retrieval.index, fts=True)
    stage_s = time.perf_counter() - start
    return {
        "chunks": n,
        "mean_chars": float(np.mean([len(t) for t in texts])),
        "bare_encode_s": bare_s,
        "bare_chunks_per_s": n / bare_s,
        "index_stage_s": stage_s,
        "index_stage_embed_s": report.embed_s,
        "index_stage_chunks_per_s": n / stage_s,
        "index_stage_embed_chunks_per_s": n / report.embed_s,
    }


def _table(results: dict) -> str:
    lines = [
        "| chunks | build table+FTS s | build ANN s | ANN p50/p95 ms | exact p50/p95 ms | numpy p50/p95 ms "
        "| recall@10 ANN vs exact | +5% incremental s | full rebuild s |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results["index"]:
        lines.append(
            f"| {r['chunks']:,} | {r['build_table_and_fts_s']:.1f} | {r['build_ann_index_s']:.1f} "
            f"| {r['latency_ann']['p50_ms']:.1f} / {r['latency_ann']['p95_ms']:.1f} "
            f"| {r['latency_exact']['p50_ms']:.1f} / {r['latency_exact']['p95_ms']:.1f} "
            f"| {r['latency_numpy']['p50_ms']:.2f} / {r['latency_numpy']['p95_ms']:.2f} "
            f"| {r['recall_at_10_ann_vs_exact']:.3f} | {r['incremental_5pct_s']:.1f} | {r['full_rebuild_s']:.1f} |"
        )
    e = results.get("embedding")
    if e:
        lines += [
            "",
            "| embedding sample | bare encode chunks/s | index stage chunks/s (embed only) "
            "| index stage chunks/s (whole) |",
            "|---:|---:|---:|---:|",
            f"| {e['chunks']:,} ({e['mean_chars']:.0f} chars) | {e['bare_chunks_per_s']:.1f} "
            f"| {e['index_stage_embed_chunks_per_s']:.1f} | {e['index_stage_chunks_per_s']:.1f} |",
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--embed-sample", type=int, default=1000, help="chunks for the embedding comparison (0: skip)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "retrieval.json")
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S"
    )
    params = load_params(REPO / "params")
    encoder = ClusteredRandomEncoder(params.retrieval.embedders["minilm"].name)
    results: dict = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python", *sys.argv]),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "lancedb": lancedb.__version__,
        "index_settings": params.retrieval.index.model_dump(),
        "index": [],
    }
    with tempfile.TemporaryDirectory(prefix="ragtune-bench-") as tmp:
        work = Path(tmp)
        for n in args.sizes:
            results["index"].append(bench_size(n, args.queries, params.retrieval.index, encoder, work))
        if args.embed_sample:
            results["embedding"] = bench_embedding(args.embed_sample, params, work)
    write_json(results, args.out)
    print(_table(results))
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
