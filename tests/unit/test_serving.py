import pandas as pd
import pytest

from components.io import dir_hash
from components.serving.bundle import Bundle, bundle_files, bundle_hash, make_bundle
from components.serving.model import _questions


def _bundle(params, retriever=True) -> Bundle:
    r = params.retrieval.retrievers[0] if retriever else None
    return make_bundle(
        "lora-r8-qv",
        r,
        params.retrieval.embedders,
        "/idx" if retriever else None,
        4 if retriever else None,
        params.evaluation.prompts,
        params.evaluation.generation,
        "abc",
    )


def test_bundle_references_the_index_table_version_and_embedder(params):
    bundle = _bundle(params)
    assert bundle.cell == "lora-r8-qv+vector-minilm-k3"
    assert (bundle.index_table, bundle.index_version) == ("chunks__para_400__minilm", 4)
    assert bundle.embedder.name == "sentence-transformers/all-MiniLM-L6-v2"
    closed = _bundle(params, retriever=False)
    assert closed.cell == "lora-r8-qv+none" and closed.embedder is None and closed.index_uri is None
    with pytest.raises(ValueError, match="table version"):
        make_bundle(
            "base",
            params.retrieval.retrievers[0],
            params.retrieval.embedders,
            "/idx",
            None,
            params.evaluation.prompts,
            params.evaluation.generation,
            "abc",
        )


def test_bundle_hash_follows_content_not_storage_location(params, tmp_path):
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    bundle = _bundle(params)
    digest = bundle_hash(bundle, adapter)
    assert bundle_hash(bundle.model_copy(update={"base_model_uri": "runs:/x/base_model"}), adapter) == digest
    assert bundle_hash(bundle.model_copy(update={"index_version": 5}), adapter) != digest
    assert bundle_hash(bundle, None) != digest
    before = dir_hash(adapter)
    (adapter / "adapter_model.safetensors").write_bytes(b"weights")
    assert dir_hash(adapter) != before and bundle_hash(bundle, adapter) != digest


def test_bundle_files_round_trip_and_refuse_an_empty_adapter(params, tmp_path):
    bundle = _bundle(params, retriever=False)
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
