"""Shared fixtures: real components on tiny data, each test with its own stores."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

for _key, _value in {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "RAY_USAGE_STATS_ENABLED": "0",
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "TOKENIZERS_PARALLELISM": "false",
}.items():
    os.environ.setdefault(_key, _value)


@pytest.fixture(scope="session")
def params():
    from components.config import load_params

    return load_params(REPO / "params")


@pytest.fixture(scope="session")
def base_model_dir(tmp_path_factory, params) -> Path:
    """The packaged SmolLM2, de-quantised once per test session (about 25 s)."""
    from components.models import prepare_base_model

    out = tmp_path_factory.mktemp("base-model")
    prepare_base_model(params.finetune.base_model, out)
    return out


@pytest.fixture(scope="session")
def embedder(params):
    from components.embedding import Embedder

    return Embedder(params.retrieval.embedders["minilm"])


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def demo_slice(raw: Path, n_docs: int, n_questions: int) -> Path:
    """The first documents of the bundled demo set and the questions about them, as a raw folder."""
    demo = REPO / "data" / "demo"
    docs = [json.loads(line) for line in (demo / "docs" / "countries.jsonl").read_text(encoding="utf-8").splitlines()]
    docs = docs[:n_docs]
    ids = {d["id"] for d in docs}
    qa = [json.loads(line) for line in (demo / "qa.jsonl").read_text(encoding="utf-8").splitlines()]
    qa = [q for q in qa if set(q["doc_ids"]) <= ids][:n_questions]
    write_jsonl(raw / "docs" / "countries.jsonl", docs)
    write_jsonl(raw / "qa.jsonl", qa)
    return raw
