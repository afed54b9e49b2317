"""Object-storage settings from the environment, and the node-local cache of stored folders."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyarrow import fs

from components.storage import COMPLETE, STORAGE_ENV, ObjectStore, StoredDir, publish_dir, ray_storage

ENV = {
    STORAGE_ENV: "s3://team-bucket/ragtune/runs/",
    "AWS_ENDPOINT_URL": "http://minio:9000",
    "AWS_ACCESS_KEY_ID": "key",
    "AWS_SECRET_ACCESS_KEY": "secret-value",
}


def test_unset_means_local_folders(tmp_path):
    assert ObjectStore.from_env({}) is None
    assert ray_storage(tmp_path, None) == (str(tmp_path.resolve()), None)
    assert publish_dir(tmp_path, None, "base") == StoredDir(str(tmp_path.resolve()), "")  # read in place


def test_the_store_comes_from_the_standard_variables():
    store = ObjectStore.from_env(ENV)
    assert (store.bucket, store.prefix, store.endpoint) == ("team-bucket", "ragtune/runs", "http://minio:9000")
    assert store.key("ray") == "team-bucket/ragtune/runs/ray" and store.uri == "s3://team-bucket/ragtune/runs"
    assert "secret-value" not in repr(store)
    s3 = store.filesystem()
    assert isinstance(s3, fs.S3FileSystem) and s3.region == "us-east-1"
    path, filesystem = ray_storage(Path("/unused"), store)
    assert path == "team-bucket/ragtune/runs/ray" and isinstance(filesystem, fs.S3FileSystem)
    assert ObjectStore.from_env({**ENV, "AWS_ENDPOINT_URL_S3": "https://s3.example:9443"}).endpoint == (
        "https://s3.example:9443"
    )


@pytest.mark.parametrize("uri", ["/srv/runs", "gs://bucket/x", "s3://", "file:///tmp/x"])
def test_anything_but_an_s3_uri_is_refused_naming_the_variable(uri):
    with pytest.raises(ValueError, match=STORAGE_ENV):
        ObjectStore.from_env({STORAGE_ENV: uri})


def _stored(tmp_path: Path) -> StoredDir:
    """A folder in a "store" reached through a pyarrow filesystem (the local one, standing in for S3)."""
    src = tmp_path / "bucket" / "models" / "base-abc"
    src.mkdir(parents=True)
    (src / "config.json").write_text("{}")
    (src / COMPLETE).write_text("abc")
    return StoredDir(str(src), "abc", fs.LocalFileSystem())


def test_a_stored_folder_is_fetched_once_per_node(tmp_path):
    stored = _stored(tmp_path)
    cache = tmp_path / "cache"
    local = stored.local(cache)
    assert local == cache / "abc" and (local / "config.json").read_text() == "{}"
    (Path(stored.path) / "config.json").write_text('{"changed": 1}')  # a second call does not fetch again
    assert (stored.local(cache) / "config.json").read_text() == "{}"
    assert [p.name for p in cache.iterdir()] == ["abc"]  # no temporary left


def test_a_worker_that_loses_the_race_keeps_the_winners_copy(tmp_path):
    stored = _stored(tmp_path)
    cache = tmp_path / "cache"
    (cache / "abc").mkdir(parents=True)  # another worker of this node renamed its copy first ...
    (cache / "abc" / "config.json").write_text('{"winner": 1}')  # ... but had not written COMPLETE yet when we looked
    assert (stored.local(cache) / "config.json").read_text() == '{"winner": 1}'
    assert [p.name for p in cache.iterdir()] == ["abc"]


def test_a_folders_digest_is_computed_once_per_content(tmp_path):
    """The base model's hash (minutes for a large model) is memoised by the files' signature, not recomputed."""
    import json
    import os
    import time

    from components.io import dir_hash
    from components.storage import folder_digest

    folder, memo = tmp_path / "model", tmp_path / "memo"
    folder.mkdir()
    (folder / "weights.bin").write_bytes(b"a" * 64)
    first = folder_digest(folder, memo)
    assert first == dir_hash(folder)
    (saved,) = memo.glob("*.json")
    record = json.loads(saved.read_text())
    saved.write_text(json.dumps({**record, "digest": "from-the-memo"}))
    assert folder_digest(folder, memo) == "from-the-memo"  # unchanged files: the memo answers, nothing is read

    time.sleep(0.05)  # past the file system's timestamp granularity
    stat = (folder / "weights.bin").stat()
    (folder / "weights.bin").write_bytes(b"b" * 64)  # same size ...
    os.utime(folder / "weights.bin", ns=(stat.st_atime_ns, stat.st_mtime_ns))  # ... and the old mtime put back
    assert folder_digest(folder, memo) == dir_hash(folder) != first  # the change time moved: hashed again
