from pathlib import Path

import pytest
import yaml

from components.config import PARAM_FILES, ConfigError, load_params

REPO = Path(__file__).resolve().parents[2]


def test_every_params_file_is_loaded_and_valid():
    files = sorted(p.stem for p in (REPO / "params").rglob("*.yaml"))
    assert files == sorted(PARAM_FILES), "a params file exists that load_params does not validate"
    params = load_params(REPO / "params")
    assert params.retrieval.retrievers and params.finetune.adapters


def _copy_params(tmp_path: Path, edit) -> Path:
    for name in PARAM_FILES:
        data = yaml.safe_load((REPO / "params" / f"{name}.yaml").read_text())
        edit(name, data)
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(data))
    return tmp_path


def test_bad_value_names_file_and_key(tmp_path):
    def edit(name, data):
        if name == "data":
            data["split"]["test"] = 1.5

    with pytest.raises(ConfigError) as err:
        load_params(_copy_params(tmp_path, edit))
    assert "data.yaml" in str(err.value) and "split.test" in str(err.value)


def test_unknown_key_is_refused(tmp_path):
    def edit(name, data):
        if name == "finetune":
            data["adapters"][0]["rank"] = 8  # typo for r

    with pytest.raises(ConfigError, match=r"finetune.yaml: adapters.0.rank"):
        load_params(_copy_params(tmp_path, edit))


def test_retriever_must_name_known_chunker(tmp_path):
    def edit(name, data):
        if name == "retrieval":
            data["retrievers"][0]["chunker"] = "nope"

    with pytest.raises(ConfigError, match="unknown chunker 'nope'"):
        load_params(_copy_params(tmp_path, edit))


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="data.yaml: params file not found"):
        load_params(tmp_path)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("mode", "semantic", r"retrieval.yaml: retrievers.0.mode: Input should be 'vector', 'fulltext' or 'hybrid'"),
        ("reranker", "ms-marco-minilm", r"retrievers.0.reranker: .*not available offline"),
        ("top_k", 0, r"retrievers.0.top_k"),
        ("rrf_k", 0, r"retrievers.0.rrf_k"),
    ],
)
def test_bad_retriever_values_are_refused(tmp_path, field, value, message):
    def edit(name, data):
        if name == "retrieval":
            data["retrievers"][0][field] = value

    with pytest.raises(ConfigError, match=message):
        load_params(_copy_params(tmp_path, edit))


def test_hybrid_needs_at_least_top_k_candidates(tmp_path):
    def edit(name, data):
        if name == "retrieval":
            data["retrievers"][0].update(mode="hybrid", top_k=5, candidates=3)

    with pytest.raises(ConfigError, match=r"candidates \(3\) must be >= top_k \(5\)"):
        load_params(_copy_params(tmp_path, edit))


def test_default_retrievers_cover_every_mode():
    retrievers = load_params(REPO / "params").retrieval.retrievers
    assert {r.mode for r in retrievers} >= {"vector", "fulltext", "hybrid"}
    assert all((r.top_k, r.chunker, r.embedder, r.reranker) == (3, "para-400", "minilm", "none") for r in retrievers)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("retriever", "nope", "unknown retriever 'nope'"),
        ("adapter", "nope", "unknown adapter 'nope'"),
        ("share", 1.0, "drill.share"),
    ],
)
def test_drill_settings_are_checked(tmp_path, key, value, message):
    def edit(name, data):
        if name == "evaluation":
            data["drill"][key] = value

    with pytest.raises(ConfigError, match=message):
        load_params(_copy_params(tmp_path, edit))


def test_registry_name_must_not_be_empty(tmp_path):
    def edit(name, data):
        if name == "evaluation":
            data["registry"]["name"] = ""

    with pytest.raises(ConfigError, match=r"evaluation.yaml: registry.name"):
        load_params(_copy_params(tmp_path, edit))
