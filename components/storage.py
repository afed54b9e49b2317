"""Storage every Ray node reaches: where training runs, checkpoints and the base model travel.

On one machine everything stays on local paths (the catalog's folders), as before. With an object
store (:class:`ObjectStore`, built from ``RAGTUNE_STORAGE_URI=s3://bucket/prefix`` and the standard
AWS variables by the CLI layer), no node needs the driver's disk:

- Ray Train keeps its results and checkpoints under ``<prefix>/ray`` (``storage_path`` plus a
  pyarrow ``S3FileSystem``); the driver reads the result checkpoint back from there.
- The driver uploads the base model once per content hash to ``<prefix>/models/<name>-<hash>``;
  every worker downloads it into a node-local cache (:meth:`StoredDir.local`) before loading it.
  The content hash of a folder is computed once per content on a machine (:func:`folder_digest`).
- A training run's learning-curve snapshots go to ``<run>/snapshots/step-<n>`` once each
  (:func:`put_dir`), not into every checkpoint.

The filesystem object carries the endpoint and the credentials the driver was given, so the
workers need no configuration of their own (Ray pickles it to them, as it does ``storage_filesystem``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

logger = logging.getLogger(__name__)

STORAGE_ENV = "RAGTUNE_STORAGE_URI"
ENDPOINT_ENVS = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")  # the names botocore, s3fs and DVC read too
COMPLETE = "_COMPLETE"  # written last: a folder without it is an interrupted upload


@dataclass(frozen=True)
class ObjectStore:
    """An S3-compatible bucket and prefix, its endpoint (MinIO, SeaweedFS) and credentials."""

    bucket: str
    prefix: str
    endpoint: str | None  # http(s)://host:port; None: AWS itself
    region: str | None
    access_key: str | None = field(default=None, repr=False)
    secret_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ObjectStore | None:
        """The store ``RAGTUNE_STORAGE_URI`` names, or None (local paths) when it is unset.

        Raises:
            ValueError: the URI is not ``s3://bucket[/prefix]``.
        """
        uri = env.get(STORAGE_ENV, "").strip()
        if not uri:
            return None
        parsed = urlparse(uri)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise ValueError(f"{STORAGE_ENV}={uri!r}: expected s3://bucket[/prefix] (unset it for local storage)")
        endpoint = next((env[k] for k in ENDPOINT_ENVS if env.get(k)), None)
        return cls(
            bucket=parsed.netloc,
            prefix=parsed.path.strip("/"),
            endpoint=endpoint,
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION"),
            access_key=env.get("AWS_ACCESS_KEY_ID"),
            secret_key=env.get("AWS_SECRET_ACCESS_KEY"),
            session_token=env.get("AWS_SESSION_TOKEN"),
        )

    @property
    def uri(self) -> str:
        return f"s3://{self.key()}"

    def key(self, *parts: str) -> str:
        """``bucket/prefix/parts...``: a path in :meth:`filesystem` (no scheme)."""
        return "/".join(p.strip("/") for p in (self.bucket, self.prefix, *parts) if p.strip("/"))

    def filesystem(self):
        """A pyarrow ``S3FileSystem`` for this store (the filesystem Ray Train writes through)."""
        from pyarrow import fs

        options: dict[str, Any] = {"allow_bucket_creation": True, "region": self.region or "us-east-1"}
        if self.endpoint:
            parsed = urlparse(self.endpoint)
            options.update(endpoint_override=parsed.netloc or parsed.path, scheme=parsed.scheme or "https")
        if self.access_key:
            options.update(
                access_key=self.access_key, secret_key=self.secret_key, session_token=self.session_token or None
            )
        return fs.S3FileSystem(**options)


@dataclass(frozen=True)
class StoredDir:
    """A folder a worker can reach: a local path (``filesystem`` None) or a path in an object store."""

    path: str
    digest: str  # content hash: the node-local cache key ("" for a local path)
    filesystem: Any = None  # pyarrow FileSystem; None: ``path`` is local

    def local(self, cache_root: Path | None = None) -> Path:
        """A local copy of the folder: the path itself, or a download into a node-local cache.

        Several workers of one node may ask at once: each downloads into its own temporary
        folder and renames it into place; the first rename wins, the others are discarded.
        """
        if self.filesystem is None:
            return Path(self.path)
        from pyarrow import fs

        target = (cache_root or Path(tempfile.gettempdir()) / "ragtune-cache") / self.digest
        if (target / COMPLETE).is_file():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.parent / f".{self.digest}.{uuid.uuid4().hex}"
        tmp.mkdir()
        fs.copy_files(
            self.path, str(tmp), source_filesystem=self.filesystem, destination_filesystem=fs.LocalFileSystem()
        )
        try:
            os.rename(tmp, target)
        except OSError:  # another worker of this node got there first
            shutil.rmtree(tmp, ignore_errors=True)
        logger.info("fetched %s into %s", self.path, target)
        return target


def on_this_node(folder: StoredDir) -> Path:
    """The folder on this node (fetched if it lives in the store).

    Raises:
        FileNotFoundError: a driver's path this node cannot see, naming it and what to set.
    """
    local = folder.local()
    if not local.is_dir():
        raise FileNotFoundError(
            f"{local}: not on this node; on a cluster without a shared disk set {STORAGE_ENV} so the models "
            "travel through object storage (docs/scale-out.md)"
        )
    return local


def _signature(folder: Path) -> list:
    """Each file's name, size, modification and change times and inode: what a rewrite changes (the change
    time cannot be set back, so a file rewritten with its old size and mtime still changes it)."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return [
        [f.relative_to(folder).as_posix(), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]
        for f, st in ((f, f.stat()) for f in files)
    ]


def folder_digest(folder: Path, memo_dir: Path | None = None) -> str:
    """:func:`components.io.dir_hash` of ``folder``, computed once per content on this machine.

    The hash of a 15-140 GB base model takes minutes, and every stage that publishes it asks
    again: the digest is kept in ``memo_dir`` (default ``$TMPDIR/ragtune-cache/digests``) with the
    folder's :func:`_signature`, and reused only while the signature is unchanged.
    """
    from components.io import dir_hash

    folder = folder.resolve()
    memo_dir = memo_dir or Path(tempfile.gettempdir()) / "ragtune-cache" / "digests"
    memo = memo_dir / f"{hashlib.sha256(str(folder).encode()).hexdigest()[:32]}.json"
    signature = _signature(folder)
    if memo.is_file():
        saved = json.loads(memo.read_text(encoding="utf-8"))
        if saved.get("signature") == signature:
            return saved["digest"]
    digest = dir_hash(folder)
    memo_dir.mkdir(parents=True, exist_ok=True)
    tmp = memo.with_name(f".{memo.name}.{uuid.uuid4().hex}")
    tmp.write_text(json.dumps({"folder": str(folder), "signature": signature, "digest": digest}), encoding="utf-8")
    os.replace(tmp, memo)
    return digest


def put_dir(local: Path, target: StoredDir) -> None:
    """Copy the folder ``local`` to ``target`` (a local path, or a path in a store's filesystem)."""
    from pyarrow import fs

    dest = target.filesystem or fs.LocalFileSystem()
    if target.filesystem is None:
        Path(target.path).mkdir(parents=True, exist_ok=True)
    fs.copy_files(
        str(local.resolve()), target.path, source_filesystem=fs.LocalFileSystem(), destination_filesystem=dest
    )


def get_dir(source: StoredDir, local: Path) -> None:
    """Copy the folder ``source`` (local, or in a store) to ``local``."""
    from pyarrow import fs

    local.mkdir(parents=True, exist_ok=True)
    fs.copy_files(
        source.path,
        str(local.resolve()),
        source_filesystem=source.filesystem or fs.LocalFileSystem(),
        destination_filesystem=fs.LocalFileSystem(),
    )


def run_dir(storage_dir: Path, store: ObjectStore | None, run_name: str) -> StoredDir:
    """A Ray Train run's folder, where :func:`ray_storage` puts it: ``storage_dir/<run>`` or ``<prefix>/ray/<run>``."""
    path, filesystem = ray_storage(storage_dir, store)
    return StoredDir(f"{path}/{run_name}", "", filesystem)


def publish_dir(local: Path, store: ObjectStore | None, name: str) -> StoredDir:
    """Make ``local`` reachable from every node: itself without a store, else an upload under
    ``models/<name>-<hash>`` done once per content hash (skipped when that folder is complete)."""
    from pyarrow import fs

    if store is None:
        return StoredDir(str(local.resolve()), digest="")  # read in place: no hash needed
    digest = folder_digest(local)
    filesystem = store.filesystem()
    dest = store.key("models", f"{name}-{digest[:16]}")
    if filesystem.get_file_info(f"{dest}/{COMPLETE}").type == fs.FileType.NotFound:
        logger.info("uploading %s to s3://%s", local, dest)
        fs.copy_files(
            str(local.resolve()), dest, source_filesystem=fs.LocalFileSystem(), destination_filesystem=filesystem
        )
        with filesystem.open_output_stream(f"{dest}/{COMPLETE}") as out:
            out.write(digest.encode())
    return StoredDir(dest, digest, filesystem)


def ray_storage(local: Path, store: ObjectStore | None, under: str = "ray") -> tuple[str, Any]:
    """Ray Train's (or Tune's) ``storage_path`` and ``storage_filesystem``: ``local`` alone, or ``<prefix>/<under>``
    in the store."""
    if store is None:
        return str(local.resolve()), None
    return store.key(under), store.filesystem()
