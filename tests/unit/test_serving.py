from types import SimpleNamespace

import lancedb
import pandas as pd
import pyarrow as pa
import pytest

from components.io import dir_hash
from components.retrieval.index import KEY, TEXT, VECTOR, _schema
from components.serving.bundle import Bundle, bundle_files, bundle_hash, make_bundle
from components.serving.index_bundle import IndexIntegrityError, open_verified, table_digest
from components.serving.model import _questions

TABLE = "chunks__para_400__minilm"  # the first retriever's table (params/retrieval.yaml)


def _rows(texts: list[str]) -> pa.Table:
    """Chunks as `ragtune index` stores them, in its schema (4-dim vectors: the bundle never embeds)."""
    n = len(texts)
    embedder = SimpleNamespace(name="sentence-transformers/all-MiniLM-L6-v2", dim=4)
    data = {
        KEY: [f"h{i}-{t}" for i, t in enumerate(texts)],
        "chunk_id": [f"d{i}#0" for i in range(n)],
        "doc_id": [f"d{i}" for i in range(n)],
        "position": list(range(n)),
        "heading": [""] * n,
        TEXT: texts,
        VECTOR: [[float(i), 1.0, 0.0, 0.5] for i in range(n)],
    }
    return pa.table(data, schema=_schema(embedder))


def _index(folder, texts: list[str]) -> int:
    """A LanceDB folder holding TABLE with ``texts``; the table's version."""
    return lancedb.connect(str(folder)).create_table(TABLE, data=_rows(texts), mode="overwrite").version


def _bundle(params, index=None, version=None) -> Bundle:
    r = params.retrieval.retrievers[0] if index is not None else None
    return make_bundle(
        "lora-r8-qv",
        r,
        params.retrieval.embedders,
        str(index) if index is not None else None,
        version,
        params.evaluation.prompts,
        params.evaluation.generation,
        "abc",
    )


def test_bundle_references_the_index_table_version_its_content_hash_and_embedder(params, tmp_path):
    version = _index(tmp_path / "idx", ["alpha", "beta"])
    bundle = _bundle(params, tmp_path / "idx", version)
    assert bundle.cell == "lora-r8-qv+vector-minilm-k3"
    assert (bundle.index_table, bundle.index_version) == (TABLE, version)
    assert bundle.index_hash == table_digest(lancedb.connect(str(tmp_path / "idx")).open_table(TABLE))
    assert bundle.embedder.name == "sentence-transformers/all-MiniLM-L6-v2"
    closed = _bundle(params)
    assert closed.cell == "lora-r8-qv+none" and closed.embedder is None and closed.index_hash is None
    with pytest.raises(ValueError, match="table version"):
        make_bundle(
            "base",
            params.retrieval.retrievers[0],
            params.retrieval.embedders,
            str(tmp_path / "idx"),
            None,
            params.evaluation.prompts,
            params.evaluation.generation,
            "abc",
        )


def test_a_table_rebuilt_at_the_same_version_number_is_refused(params, tmp_path):
    """The version number alone is not the table: a rebuilt folder starts its versions again."""
    version = _index(tmp_path / "idx", ["alpha", "beta"])
    bundle = _bundle(params, tmp_path / "idx", version)
    open_verified(str(tmp_path / "idx"), TABLE, version, bundle.index_hash, None)  # the same rows: fine
    import shutil

    shutil.rmtree(tmp_path / "idx")
    assert _index(tmp_path / "idx", ["alpha", "gamma"]) == version  # another table, the same number
    with pytest.raises(IndexIntegrityError, match="does not hold the rows the cell was scored on"):
        open_verified(str(tmp_path / "idx"), TABLE, version, bundle.index_hash, None)
    with pytest.raises(IndexIntegrityError, match="version number only"):
        open_verified(str(tmp_path / "idx"), TABLE, version, None, None)  # nothing to check it against


def test_a_local_index_travels_inside_the_version_and_is_checked_there(params, tmp_path):
    version = _index(tmp_path / "idx", ["alpha", "beta", "gamma"])
    bundle = _bundle(params, tmp_path / "idx", version)
    artifacts = bundle_files(bundle, None, tmp_path / "out")
    assert set(artifacts) == {"bundle", "index"}
    copy = open_verified(None, TABLE, None, bundle.index_hash, tmp_path / "out" / "index")  # no path of ours needed
    assert copy.count_rows() == 3 and any(i.index_type == "FTS" for i in copy.list_indices())
    copy.delete("doc_id = 'd1'")  # the copy tampered with
    with pytest.raises(IndexIntegrityError, match="copy inside the version"):
        open_verified(None, TABLE, None, bundle.index_hash, tmp_path / "out" / "index")
    remote = bundle.model_copy(update={"index_uri": "s3://team-bucket/index"})  # object storage: referenced only
    assert set(bundle_files(remote, None, tmp_path / "out-remote")) == {"bundle"}


def test_bundle_hash_follows_content_not_storage_location(params, tmp_path):
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    version = _index(tmp_path / "idx", ["alpha", "beta"])
    bundle = _bundle(params, tmp_path / "idx", version)
    digest = bundle_hash(bundle, adapter)
    assert bundle_hash(bundle.model_copy(update={"base_model_uri": "runs:/x/base_model"}), adapter) == digest
    moved = _bundle(params, tmp_path / "idx2", _index(tmp_path / "idx2", ["alpha", "beta"]))
    assert moved.index_hash == bundle.index_hash and bundle_hash(moved, adapter) == digest  # same rows elsewhere
    other = _bundle(params, tmp_path / "idx3", _index(tmp_path / "idx3", ["alpha", "delta"]))
    assert bundle_hash(other, adapter) != digest  # other rows: another model, whatever the version number
    assert bundle_hash(bundle, None) != digest
    before = dir_hash(adapter)
    (adapter / "adapter_model.safetensors").write_bytes(b"weights")
    assert dir_hash(adapter) != before and bundle_hash(bundle, adapter) != digest


def test_bundle_files_round_trip_and_refuse_an_empty_adapter(params, tmp_path):
    bundle = _bundle(params)
    artifacts = bundle_files(bundle, None, tmp_path / "out")
    assert Bundle.model_validate_json((tmp_path / "out" / "bundle.json").read_text()) == bundle
    assert set(artifacts) == {"bundle"}
    with pytest.raises(FileNotFoundError, match="no adapter"):
        bundle_files(bundle, tmp_path, tmp_path / "out2")


def test_questions_from_a_frame_a_list_or_a_string():
    assert _questions(pd.DataFrame({"question": ["a", "b"]})) == ["a", "b"]
    assert _questions(["a"]) == ["a"] and _questions("a") == ["a"]
    with pytest.raises(ValueError, match="'question' column"):
        _questions(pd.DataFrame({"q": ["a"]}))
    with pytest.raises(ValueError, match="expected"):
        _questions(3)
