"""The champion's index: carried in the version, or referenced in object storage with a content hash.

A version must answer as the grid cell did, on any machine, for as long as it is the champion. A
table version number alone does not say that: a table rebuilt from nothing (a new checkout, a
deleted ``data/index``) starts its versions again, and the same number then names other rows.
So every bundle with a retriever records the **content hash** of the table version it was scored
on (:func:`table_digest`: its rows, texts, vectors and embedder), and

- a table in a local folder is **copied into the version** (the pinned table version only, with
  a fresh full-text index): the champion then needs no path of the machine that registered it;
- a table in object storage (``s3://``, ``gs://``, ``az://``) is referenced (URI, table, version):
  the shared, updatable knowledge stays in one place.

Either way the table is checked against the hash when the version is loaded
(:func:`open_verified`); a mismatch is refused, never opened silently.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from lancedb.index import FTS

from components.retrieval.index import EMBEDDER_KEY, KEY, METADATA_COLUMNS, TEXT, VECTOR, open_table_at

INDEX_ARTIFACT = "index"  # the pyfunc artifact that holds the copied table
REMOTE_SCHEMES = ("s3://", "gs://", "az://", "abfs://", "gcs://")


class IndexIntegrityError(RuntimeError):
    """A champion's table is missing or does not hold the rows it was scored on."""


def is_remote(uri: str) -> bool:
    """Whether ``uri`` is object storage (referenced) rather than a local folder (copied into the version)."""
    return uri.startswith(REMOTE_SCHEMES)


def _strings(column: pa.ChunkedArray) -> bytes:
    return "\x1f".join("\x00" if v is None else str(v) for v in column.to_pylist()).encode()


def table_digest(table) -> str:
    """SHA-256 of a table version's content: every row's key, metadata, text and vector, in chunk order,
    and the embedder it was built with (the order rows are stored in does not matter)."""
    data = table.to_arrow().sort_by([("chunk_id", "ascending"), (KEY, "ascending")])
    digest = hashlib.sha256((table.schema.metadata or {}).get(EMBEDDER_KEY, b"?"))
    for column in (KEY, *METADATA_COLUMNS, TEXT):
        digest.update(column.encode() + b"=" + _strings(data.column(column)))
    vectors = pc.list_flatten(data.column(VECTOR)).to_numpy(zero_copy_only=False)
    digest.update(np.ascontiguousarray(vectors, dtype=np.float32).tobytes())
    return digest.hexdigest()


def pinned_table(uri: str, name: str, version: int):
    """Table ``name`` of the LanceDB at ``uri`` as it was at ``version``."""
    import lancedb

    return open_table_at(lancedb.connect(uri), name, version)


def export_table(table, expected: str, out_dir: Path) -> Path:
    """Copy ``table`` (a pinned version) into a new LanceDB folder ``out_dir``, with a full-text index.

    Raises:
        IndexIntegrityError: the table no longer holds what ``expected`` (its content hash) says.
    """
    import lancedb

    found = table_digest(table)
    if found != expected:
        raise IndexIntegrityError(f"table {table.name!r} changed since it was hashed ({found[:12]} != {expected[:12]})")
    data = table.to_arrow()
    copy = lancedb.connect(str(out_dir)).create_table(table.name, data=data, schema=data.schema)
    if copy.count_rows():
        copy.create_index(TEXT, config=FTS())  # full-text and hybrid retrievers need it; cheap next to embedding
    return out_dir


def open_verified(uri: str | None, name: str, version: int | None, expected: str | None, copy: Path | None):
    """The champion's table: its copy (``copy``) or the referenced version, checked against ``expected``.

    Raises:
        IndexIntegrityError: no content hash to check against, or the table's content differs from it.
        components.retrieval.index.TableVersionError: the referenced version does not exist.
    """
    import lancedb

    if expected is None:
        raise IndexIntegrityError(
            f"the bundle pins table {name!r} by version number only (registered before content hashes): "
            "register the cell again, or move the alias to a version that carries its index"
        )
    if copy is not None:
        table = lancedb.connect(str(copy)).open_table(name)
        where = "the copy inside the version"
    else:
        if uri is None or version is None:
            raise IndexIntegrityError(f"the bundle names table {name!r} but no index URI or version")
        table = pinned_table(uri, name, version)
        where = f"{uri} version {version}"
    found = table_digest(table)
    if found != expected:
        raise IndexIntegrityError(
            f"table {name!r} at {where} does not hold the rows the cell was scored on "
            f"(content hash {found[:12]}, expected {expected[:12]}): refusing to answer from it"
        )
    return table
