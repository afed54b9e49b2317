"""LanceDB indexes: one table per (chunker, embedder), updated incrementally.

Rows are keyed by the chunk's content hash: a re-run embeds only chunks whose hash is new, rewrites
(with their stored vectors) chunks that only moved, and deletes the rows of chunks that disappeared,
so adding a few documents costs a few embeddings. After every change the indexes are brought up to
date:

- a BTree scalar index on ``content_hash`` keeps upserts and deletes fast;
- a full-text index on ``text`` (for full-text and hybrid retrievers) is rebuilt, because LanceDB
  does not add later inserts to it;
- an ANN index (IVF_HNSW_SQ or IVF_PQ, cosine) is built once the table holds ``ann_min_rows`` rows
  and updated in place (``optimize``) after later changes; below that, search is exact.

After an upsert the table is checked against the wanted chunks: ``merge_insert`` on a key that
carries a scalar index has silently written nothing in some LanceDB releases, and that must fail
loudly rather than leave a stale index.

The table's schema metadata records the embedder id and vector dimension it was built with, and
querying it with another embedder is refused (a silent dimension mismatch is a known failure of
RAG toolkits). Every write makes a new table version; :func:`open_table_at` reopens any past one.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
from lancedb.index import FTS, BTree, HnswSq, IvfPq

from components.catalog import table_name
from components.config import IndexSettings
from components.retrieval.embedding import Embedder

logger = logging.getLogger(__name__)

EMBEDDER_KEY = b"ragtune.embedder"
DIM_KEY = b"ragtune.dim"
KEY = "content_hash"
TEXT = "text"
VECTOR = "vector"
METADATA_COLUMNS = ["chunk_id", "doc_id", "position", "heading"]
# optimize() would otherwise delete the files of versions older than 7 days, and past MLflow runs
# must stay reproducible against the table version they logged.
KEEP_VERSIONS = timedelta(days=365 * 100)


class IndexMismatchError(ValueError):
    """A table was built with another embedder than the one used to query or update it."""


class IndexSyncError(RuntimeError):
    """After an update the table does not hold exactly the wanted chunks."""


class TableVersionError(LookupError):
    """The requested table version does not exist (never written, or cleaned up)."""


@dataclass(frozen=True)
class IndexReport:
    table: str
    rows: int
    added: int
    updated: int
    deleted: int
    version: int
    embedder: str
    dim: int
    ann_index: str | None
    fts_index: bool
    embed_s: float
    index_s: float
    full_build_s: float  # what building the whole table from nothing costs (measured, or scaled: see full_build)

    def as_dict(self) -> dict:
        return asdict(self)


BUILD_FILE = ".ragtune-builds.json"  # in a local LanceDB folder: each table's last full build (seconds, rows)


def full_build(db, name: str, rows: int, seconds: float | None) -> float:
    """The cost of building table ``name`` from nothing: measured now (``seconds`` of a build from an empty
    table) and recorded beside the tables, or the recorded measurement scaled to ``rows``.

    An incremental update embeds a few new chunks in seconds, but a team that rebuilds, or starts
    over on another machine, pays the whole build: that is the fixed cost of a retriever.
    """
    path = Path(str(db.uri)) / BUILD_FILE
    local = "://" not in str(db.uri) or str(db.uri).startswith("file://")
    builds = json.loads(path.read_text(encoding="utf-8")) if local and path.is_file() else {}
    if seconds is not None:
        builds[name] = {"seconds": seconds, "rows": rows}
        if local:
            tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(builds, indent=2, sort_keys=True), encoding="utf-8")
            os.replace(tmp, path)
        return seconds
    if name not in builds:
        logger.warning("%s: no full build recorded (built before this version, or on object storage)", name)
        return 0.0
    return builds[name]["seconds"] * rows / max(builds[name]["rows"], 1)


def _schema(embedder: Embedder) -> pa.Schema:
    return pa.schema(
        [
            pa.field(KEY, pa.string()),
            pa.field("chunk_id", pa.string()),
            pa.field("doc_id", pa.string()),
            pa.field("position", pa.int32()),
            pa.field("heading", pa.string()),
            pa.field(TEXT, pa.string()),
            pa.field(VECTOR, pa.list_(pa.float32(), embedder.dim)),
        ],
        metadata={EMBEDDER_KEY: embedder.name.encode(), DIM_KEY: str(embedder.dim).encode()},
    )


def check_embedder(table, embedder: Embedder) -> None:
    """Refuse a table built with another embedder or dimension.

    Raises:
        IndexMismatchError: naming both embedders.
    """
    meta = table.schema.metadata or {}
    built_with = meta.get(EMBEDDER_KEY, b"?").decode()
    dim = int(meta.get(DIM_KEY, b"0"))
    if built_with != embedder.name or dim != embedder.dim:
        raise IndexMismatchError(
            f"table {table.name!r} was built with embedder {built_with!r} ({dim} dims), "
            f"not {embedder.name!r} ({embedder.dim} dims): rebuild it with `ragtune index`"
        )


def indices(table) -> dict[str, str]:
    """The indexed columns of a table and their index types (``{"vector": "IVF_HNSW_SQ", ...}``)."""
    return {config.columns[0]: config.index_type for config in table.list_indices()}


def open_table_at(db, name: str, version: int):
    """Open table ``name`` as it was at ``version`` (read-only), to reproduce a past run.

    Raises:
        TableVersionError: the version does not exist.
    """
    table = db.open_table(name)
    versions = sorted(int(v["version"]) for v in table.list_versions())
    if version not in versions:
        raise TableVersionError(
            f"table {name!r} has no version {version} (it holds versions {versions[0]}..{versions[-1]})"
        )
    table.checkout(version)
    return table


def read_columns(table, columns: list[str]) -> pa.Table:
    """Every row of ``table``, only ``columns``."""
    return table.search().select(columns).limit(None).to_arrow()


def _rows(chunks: pd.DataFrame, vectors, dim: int, schema: pa.Schema) -> pa.Table:
    return pa.table(
        {
            KEY: chunks[KEY].tolist(),
            "chunk_id": chunks["chunk_id"].tolist(),
            "doc_id": chunks["doc_id"].tolist(),
            "position": chunks["position"].astype("int32").tolist(),
            "heading": chunks["heading"].tolist(),
            TEXT: chunks[TEXT].tolist(),
            VECTOR: pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1), type=pa.float32()), dim),
        },
        schema=schema,
    )


def _stored_vectors(table, hashes: list[str]) -> np.ndarray:
    """The stored vectors of ``hashes``, in that order (for chunks that only moved)."""
    found: dict[str, object] = {}
    for start in range(0, len(hashes), 500):
        keys = ", ".join(f"'{h}'" for h in hashes[start : start + 500])
        part = table.search().where(f"{KEY} IN ({keys})").select([KEY, VECTOR]).limit(None).to_arrow()
        found.update(zip(part[KEY].to_pylist(), part[VECTOR].to_numpy(zero_copy_only=False), strict=True))
    return np.stack([found[h] for h in hashes]).astype("float32")


def _verify(table, chunks: pd.DataFrame) -> None:
    """Fail when the table does not hold exactly ``chunks`` (a silent no-op upsert, a lost delete)."""
    stored = read_columns(table, [KEY, "chunk_id", "position"]).to_pandas()
    want = chunks[[KEY, "chunk_id", "position"]].astype({"position": "int32"})
    merged = want.merge(stored, on=KEY, how="outer", suffixes=("", "_stored"), indicator=True)
    missing = merged[merged["_merge"] == "left_only"]
    extra = merged[merged["_merge"] == "right_only"]
    stale = merged[(merged["_merge"] == "both") & (merged["chunk_id"] != merged["chunk_id_stored"])]
    if len(missing) or len(extra) or len(stale) or len(stored) != len(want):
        raise IndexSyncError(
            f"table {table.name!r} is out of sync after the update: {len(missing)} chunks missing, "
            f"{len(extra)} stale rows, {len(stale)} rows not updated, {len(stored)} rows for {len(want)} chunks "
            "(merge_insert wrote less than it was given)"
        )


def _ann_config(settings: IndexSettings):
    if settings.ann_index_type == "IVF_PQ":
        return IvfPq(
            distance_type="cosine", num_partitions=settings.num_partitions, num_sub_vectors=settings.num_sub_vectors
        )
    return HnswSq(distance_type="cosine", num_partitions=settings.num_partitions)


def update_indexes(table, settings: IndexSettings, fts: bool, changed: bool) -> dict[str, str]:
    """Bring the scalar, full-text and ANN indexes up to date after a change.

    Returns:
        The table's indexed columns and their index types.
    """
    have = indices(table)
    rows = table.count_rows()
    if rows == 0:
        return have
    if KEY not in have:
        table.create_index(KEY, config=BTree())
    wants_ann = rows >= settings.ann_min_rows
    if wants_ann and VECTOR not in have:
        logger.info(
            "%s: %d rows >= %d: building an %s index", table.name, rows, settings.ann_min_rows, settings.ann_index_type
        )
        table.create_index(VECTOR, config=_ann_config(settings))
    elif not wants_ann and VECTOR in have:
        logger.info(
            "%s: %d rows < %d: dropping the ANN index, search is exact", table.name, rows, settings.ann_min_rows
        )
        table.drop_index(f"{VECTOR}_idx")
    elif changed and len(have) > 0:
        table.optimize(cleanup_older_than=KEEP_VERSIONS)  # adds new rows to the vector and scalar indexes
    if fts and (changed or TEXT not in have):
        # LanceDB does not add inserted rows to a full-text index: rebuild it (cheap next to embedding).
        table.create_index(TEXT, config=FTS(), replace=True)
    return indices(table)


def plan_changes(chunks: pd.DataFrame, existing: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """What an update must do: the chunks to embed, those that only moved (same text, new id, position or
    heading: rewritten with their stored vectors), and the content hashes to delete."""
    known = chunks.merge(existing, on=KEY, how="inner", suffixes=("", "_stored"))
    moved = known[
        (known["chunk_id"] != known["chunk_id_stored"])
        | (known["position"].astype(int) != known["position_stored"].astype(int))
        | (known["heading"].fillna("") != known["heading_stored"].fillna(""))
    ]
    new = chunks[~chunks[KEY].isin(existing[KEY])]
    return new, moved, sorted(set(existing[KEY]) - set(chunks[KEY]))


def _upsert(table, new: pd.DataFrame, vectors, moved: pd.DataFrame, dim: int, schema: pa.Schema) -> int:
    """Insert the new chunks with their vectors, rewrite the moved ones with their stored vectors; rows written."""
    parts = []
    if len(new):
        parts.append(_rows(new, vectors, dim, schema))
    if len(moved):
        logger.info("%s: %d chunks moved (same text, new id or position): rewriting them", table.name, len(moved))
        parts.append(_rows(moved, _stored_vectors(table, moved[KEY].tolist()), dim, schema))
    if parts:
        upsert = pa.concat_tables(parts)
        table.merge_insert(KEY).when_matched_update_all().when_not_matched_insert_all().execute(upsert)
    return len(new) + len(moved)


def _delete(table, hashes: list[str]) -> None:
    for start in range(0, len(hashes), 500):
        batch = ", ".join(f"'{h}'" for h in hashes[start : start + 500])
        table.delete(f"{KEY} IN ({batch})")


def sync_table(
    db,
    name: str,
    chunks: pd.DataFrame,
    embedder: Embedder,
    settings: IndexSettings,
    fts: bool,
) -> IndexReport:
    """Make table ``name`` hold exactly ``chunks``, embedding only the ones it lacks.

    Args:
        db: a LanceDB connection.
        name: the table (see :func:`table_name`).
        chunks: the wanted chunks (columns of ``components.data.chunking.CHUNK_COLUMNS``).
        embedder: anything with ``name``, ``dim`` and ``encode(texts, progress)``.
        settings: when to build which ANN index.
        fts: keep a full-text index on ``text`` (full-text and hybrid retrievers need one).

    Raises:
        IndexMismatchError: the table was built with another embedder.
        IndexSyncError: the update did not leave the table holding exactly ``chunks``.
    """
    duplicates = chunks[KEY].duplicated()
    if duplicates.any():
        logger.warning(
            "%s: %d chunks repeat another chunk's content hash; indexing each once", name, int(duplicates.sum())
        )
        chunks = chunks[~duplicates]
    schema = _schema(embedder)
    if name in db.list_tables().tables:
        table = db.open_table(name)
        check_embedder(table, embedder)
        existing = read_columns(table, [KEY, *METADATA_COLUMNS]).to_pandas()
    else:
        table = db.create_table(name, schema=schema)
        existing = pd.DataFrame(columns=[KEY, *METADATA_COLUMNS])
    from_nothing = existing.empty
    new, moved, stale = plan_changes(chunks, existing)

    embed_start = time.perf_counter()
    if len(new):
        logger.info("%s: embedding %d new chunks (%d already indexed)", name, len(new), len(chunks) - len(new))
    new_vectors = embedder.encode(new[TEXT].tolist(), progress=len(new) > 64)
    embed_s = time.perf_counter() - embed_start

    index_start = time.perf_counter()
    upserted = _upsert(table, new, new_vectors, moved[list(chunks.columns)], embedder.dim, schema)
    if stale:
        logger.info("%s: deleting %d chunks that left the corpus", name, len(stale))
        _delete(table, stale)
    changed = bool(upserted or stale)
    if changed:
        _verify(table, chunks)
    have = update_indexes(table, settings, fts, changed)
    index_s = time.perf_counter() - index_start
    rows = table.count_rows()
    return IndexReport(
        table=name,
        rows=rows,
        added=len(new),
        updated=len(moved),
        deleted=len(stale),
        version=table.version,
        embedder=embedder.name,
        dim=embedder.dim,
        ann_index=have.get(VECTOR),
        fts_index=TEXT in have,
        embed_s=round(embed_s, 3),
        index_s=round(index_s, 3),
        full_build_s=round(full_build(db, name, rows, embed_s + index_s if from_nothing and rows else None), 3),
    )


def has_fulltext_index(table) -> bool:
    """Whether ``table`` carries a full-text index on ``text``."""
    return TEXT in indices(table)


@dataclass(frozen=True)
class TableSpec:
    """One LanceDB table the retrievers need: its chunker, its embedder, and whether it needs full-text search."""

    chunker: str
    embedder: str
    fulltext: bool

    @property
    def name(self) -> str:
        return table_name(self.chunker, self.embedder)


def table_specs(retrievers: list, needs_fulltext: set[str]) -> list[TableSpec]:
    """The tables ``retrievers`` read, one per (chunker, embedder), sorted; full-text when any reader needs it."""
    pairs = sorted({(r.chunker, r.embedder) for r in retrievers})
    return [
        TableSpec(c, e, any(r.mode in needs_fulltext for r in retrievers if (r.chunker, r.embedder) == (c, e)))
        for c, e in pairs
    ]


def describe(report: IndexReport) -> str:
    """One line for the log: rows, what changed, version, indexes."""
    return (
        f"{report.table}: {report.rows} rows ({report.added} embedded, {report.updated} moved, "
        f"{report.deleted} deleted), version {report.version}, ANN index {report.ann_index or 'none (exact)'}, "
        f"full-text index {'yes' if report.fts_index else 'no'}"
    )
