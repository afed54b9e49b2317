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


def _config_models():
    import inspect

    import components.config as config
    from components.config.base import Strict

    return [m for _, m in inspect.getmembers(config, inspect.isclass) if issubclass(m, Strict) and m is not Strict]


# Alternatives of one choice: exactly one is given, the others are absent (validated), so None is no stand-in value.
ONE_OF = {
    "EmbedderConfig": {"package", "path"},
    "BaseModelConfig": {"package", "gguf_file", "path"},
    "SearchDim": {"choice", "grid", "loguniform", "uniform"},
}


def test_no_config_field_has_a_default_in_code():
    with_default = [
        f"{model.__name__}.{name}"
        for model in _config_models()
        for name, field in model.model_fields.items()
        if not field.is_required() and name not in ONE_OF.get(model.__name__, set())
    ]
    assert with_default == [], "params/ is the only source of values: give these no default"


def test_each_adapter_is_the_shared_defaults_plus_its_delta(tmp_path):
    params = load_params(REPO / "params")
    defaults = params.finetune.adapter_defaults
    raft, lora = params.finetune.adapter("raft-r8-qv"), params.finetune.adapter("lora-r8-qv")
    assert (raft.max_length, raft.batch_size) == (384, 1)  # its delta
    assert (lora.max_length, lora.batch_size) == (defaults["max_length"], defaults["batch_size"])
    assert raft.r == lora.r == defaults["r"]

    def edit(name, data):
        if name == "finetune":
            data["adapter_defaults"]["r"] = 16
            data["adapters"][1]["r"] = 4

    edited = load_params(_copy_params(tmp_path, edit))
    assert [a.r for a in edited.finetune.adapters] == [16, 4]


def test_each_retriever_is_the_shared_defaults_plus_its_delta():
    params = load_params(REPO / "params")
    by_name = {r.name: r for r in params.retrieval.retrievers}
    assert by_name["fulltext-k3"].mode == "fulltext" and by_name["vector-minilm-k3"].mode == "vector"
    assert by_name["hybrid-rrf-k3"].top_k == params.retrieval.retriever_defaults["top_k"]


def test_a_typo_in_the_shared_defaults_is_refused_for_every_variant(tmp_path):
    def edit(name, data):
        if name == "finetune":
            data["adapter_defaults"]["learning_rat"] = 0.1

    with pytest.raises(ConfigError) as err:
        load_params(_copy_params(tmp_path, edit))
    assert "adapters.0.learning_rat" in str(err.value) and "adapters.1.learning_rat" in str(err.value)


def test_a_missing_value_is_named_not_filled_in(tmp_path):
    def edit(name, data):
        if name == "evaluation":
            del data["statistics"]["confidence"]

    with pytest.raises(ConfigError, match=r"evaluation.yaml: statistics.confidence: Field required"):
        load_params(_copy_params(tmp_path, edit))
