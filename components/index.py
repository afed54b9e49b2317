"""LanceDB indexes: one table per (chunker, embedder), updated incrementally.

Rows are keyed by the chunk's content hash: a re-run embeds only chunks whose hash is new and
deletes the rows of chunks that disappeared, so adding a few documents costs a few embeddings.
The table's schema metadata records the embedder id and vector dimension it was built with, and
querying it with another embedder is refused (a silent dimension mismatch is a known failure of
RAG toolkits).
"""

from __future__ import annotations

import logging
import re
from dataclasses import asdict, dataclass

import pandas as pd
import pyarrow as pa

from components.embedding import Embedder

logger = logging.getLogger(__name__)

EMBEDDER_KEY = b"ragtune.embedder"
DIM_KEY = b"ragtune.dim"


class IndexMismatchError(ValueError):
    """A table was built with another embedder than the one used to query or update it."""


@dataclass(frozen=True)
class IndexReport:
    table: str
    rows: int
    added: int
    deleted: int
    version: int
    embedder: str
    dim: int

    def as_dict(self) -> dict:
        return asdict(self)


def table_name(chunker: str, embedder: str) -> str:
    """A LanceDB-safe table name for a (chunker, embedder) pair."""
    return re.sub(r"[^A-Za-z0-9_]+", "_", f"chunks__{chunker}__{embedder}")


def _schema(embedder: Embedder) -> pa.Schema:
    return pa.schema(
        [
            pa.field("content_hash", pa.string()),
            pa.field("chunk_id", pa.string()),
            pa.field("doc_id", pa.string()),
            pa.field("position", pa.int32()),
            pa.field("heading", pa.string()),
            pa.field("text", pa.string()),
            pa.field("vector", pa.list_(pa.float32(), embedder.dim)),
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


def _rows(chunks: pd.DataFrame, embedder: Embedder) -> pa.Table:
    vectors = embedder.encode(chunks["text"].tolist(), progress=len(chunks) > 64)
    return pa.table(
        {
            "content_hash": chunks["content_hash"].tolist(),
            "chunk_id": chunks["chunk_id"].tolist(),
            "doc_id": chunks["doc_id"].tolist(),
            "position": chunks["position"].astype("int32").tolist(),
            "heading": chunks["heading"].tolist(),
            "text": chunks["text"].tolist(),
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), embedder.dim),
        },
        schema=_schema(embedder),
    )


def sync_table(db, name: str, chunks: pd.DataFrame, embedder: Embedder) -> IndexReport:
    """Make table ``name`` hold exactly ``chunks``, embedding only the ones it lacks."""
    if name in db.list_tables().tables:
        table = db.open_table(name)
        check_embedder(table, embedder)
        existing = set(table.search().select(["content_hash"]).limit(None).to_arrow()["content_hash"].to_pylist())
    else:
        table = db.create_table(name, schema=_schema(embedder))
        existing = set()
    wanted = set(chunks["content_hash"])
    new = chunks[~chunks["content_hash"].isin(existing)]
    stale = sorted(existing - wanted)
    if len(new):
        logger.info("%s: embedding %d new chunks (%d already indexed)", name, len(new), len(wanted) - len(new))
        table.merge_insert("content_hash").when_not_matched_insert_all().execute(_rows(new, embedder))
    if stale:
        logger.info("%s: deleting %d chunks that left the corpus", name, len(stale))
        for start in range(0, len(stale), 500):
            batch = ", ".join(f"'{h}'" for h in stale[start : start + 500])
            table.delete(f"content_hash IN ({batch})")
    return IndexReport(
        table=name,
        rows=table.count_rows(),
        added=len(new),
        deleted=len(stale),
        version=table.version,
        embedder=embedder.name,
        dim=embedder.dim,
    )
