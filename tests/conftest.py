"""Shared fixtures: real components on tiny data, each test with its own stores.

Tests come in three tiers, by folder and marker: ``unit`` (pure: no model, no subprocess, no Ray),
``integration`` (real libraries on tiny data), ``e2e`` (``ragtune run`` as a subprocess, real
servers, kills). ``make test`` runs all three, ``make test-unit`` the first.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from flows.env import set_offline_defaults

REPO = Path(__file__).resolve().parents[1]
TIERS = ("unit", "integration", "e2e")  # the folders under tests/, each a marker of the same name

set_offline_defaults()
# Ray clusters of tests live on this machine: keep their nodes on 127.0.0.1 (Ray otherwise swaps a
# loopback --node-ip-address for the host's address). Read when ray is first imported, hence here.
# tests.e2e.servers.ray_cluster, the one multi-node cluster, turns it back on for its own processes.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
# Ray >= 2.52: a local ray.init() with RAY_AUTH_MODE unset switches token auth on by writing
# RAY_AUTH_MODE=token into os.environ; every later server, subprocess and ray.init of this pytest
# process then inherits a mode this driver did not start with (GCS: "Missing authorization header").
# Test instances listen on 127.0.0.1 only; the token cluster of tests.e2e.servers sets its own.
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

from components.config import load_params  # noqa: E402

PARAMS = load_params(REPO / "params")  # the shipped params: what tests build their configs from


def like(example, **changes):
    """A validated copy of ``example`` (a config of the shipped params) with ``changes``.

    Config models have no defaults (params/ holds every value), so a test states only what it changes.
    """
    return type(example).model_validate({**example.model_dump(), **changes})


def pytest_collection_modifyitems(config, items) -> None:
    """Mark each test with its tier, from the folder it is in (``pytest -m unit`` runs the fast tier)."""
    for item in items:
        tier = Path(str(item.fspath)).relative_to(REPO / "tests").parts[0]
        if tier in TIERS:
            item.add_marker(getattr(pytest.mark, tier))


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", "browser: needs Chromium (tests/e2e/browser.py); RAGTUNE_REQUIRE_BROWSER")


def pytest_report_header(config) -> str:
    """The free disk where the tests write (model copies, checkpoints, stores): a full disk shows as errors."""
    import shutil
    import tempfile

    where = tempfile.gettempdir()
    return f"ragtune: {shutil.disk_usage(where).free / 2**30:.1f} GiB free in {where}"


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item) -> None:
    """A test's needs beyond Python, checked before any of its fixtures runs (see :func:`require`): a
    test marked ``browser`` needs Chromium, one that uses ``isolated_ray`` a mount namespace."""
    if item.get_closest_marker("browser"):
        from tests.e2e.browser import find_browser

        missing = None if find_browser() else "no Chromium: apt-get install chromium-headless-shell"
        require(missing, "RAGTUNE_REQUIRE_BROWSER")
    if "isolated_ray" in item.fixturenames:
        require_mount_namespace()


@pytest.fixture(autouse=True, scope="module")
def _mlflow_store_of_the_module():
    """Give every test module the MLflow store it started with.

    ``mlflow.set_tracking_uri`` (hence ``tracking.setup``) also writes ``MLFLOW_TRACKING_URI`` into
    ``os.environ``, which outlives the module that set it: the next module's ``tracking.setup``
    would then register into that earlier store (and a ``mlflow models serve`` started with the
    next module's own URI would find nothing).
    """
    import sys

    before = os.environ.get("MLFLOW_TRACKING_URI")
    yield
    if "mlflow" in sys.modules:
        import mlflow

        mlflow.set_tracking_uri(before)
    if before is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = before


@pytest.fixture(scope="session")
def params():
    from components.config import load_params

    return load_params(REPO / "params")


@pytest.fixture(scope="session")
def base_model_dir(tmp_path_factory, params) -> Path:
    """The packaged SmolLM2, de-quantised once per test session (about 25 s); tiny projects point at it."""
    from components.llm.models import prepare_base_model

    out = tmp_path_factory.mktemp("base-model")
    prepare_base_model(params.finetune.base_model, out)
    return out


@pytest.fixture(scope="session")
def embedder(params):
    from components.retrieval.embedding import Embedder

    return Embedder(params.retrieval.embedders["minilm"])


def require(missing: str | None, env: str) -> None:
    """Skip the calling test for a requirement this machine lacks (``missing``: why; None when met), or
    fail it where ``env`` is set: ``.ci/run`` sets each ``RAGTUNE_REQUIRE_*`` so that CI runs every test."""
    if missing is None:
        return
    if os.environ.get(env):
        pytest.fail(f"{missing} ({env} is set: this run must not skip it)", pytrace=False)
    pytest.skip(missing)


def require_mount_namespace() -> None:
    """What the isolated Ray node needs: a mount namespace of its own (``unshare``, tests/e2e/private_tmp.py)."""
    from tests.e2e.private_tmp import MISSING, namespace_prefix

    require(MISSING if namespace_prefix() is None else None, "RAGTUNE_REQUIRE_MOUNT_NS")


@pytest.fixture
def isolated_ray(tmp_path_factory, monkeypatch):
    """A one-node Ray cluster that cannot see the driver's temporary files (``/tmp``, pytest's base
    temp), wherever the checkout lives; this driver joins it. Yields its address. Needs a mount
    namespace (checked by :func:`pytest_runtest_setup`)."""
    import ray

    from tests.e2e.servers import ray_node_with_private_tmp

    ray.shutdown()  # a local instance another test left
    # no PYTHONPATH: the project's code reaches the node's workers with each job (components.ray_runtime)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"RAY_USAGE_STATS_ENABLED": "0"}
    node = tmp_path_factory.mktemp("ray-node")
    with ray_node_with_private_tmp(node, env, cpus=2, hide=[tmp_path_factory.getbasetemp()]) as driver_env:
        for name, value in driver_env.items():
            monkeypatch.setenv(name, value)
        yield driver_env["RAY_ADDRESS"]
        ray.shutdown()


@pytest.fixture(scope="session")
def mlflow_db(tmp_path_factory) -> Path:
    """An empty sqlite MLflow store, its tables created once per session (MLflow's migrations take ~8 s).

    A test copies it into its project (:func:`copy_store`) instead of migrating a new one.
    """
    import mlflow

    from components.tracking import DEFAULT_DB

    folder = tmp_path_factory.mktemp("mlflow-db")
    before = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.MlflowClient(tracking_uri=f"sqlite:///{folder / DEFAULT_DB}").search_experiments()
    assert os.environ.get("MLFLOW_TRACKING_URI") == before  # a client of its own: nothing global changed
    return folder / DEFAULT_DB


def copy_store(template: Path, root: Path) -> None:
    """``root``'s default MLflow store (``mlruns.db``) as a copy of the migrated empty store ``template``."""
    import shutil

    shutil.copy2(template, root / template.name)


def params_project(root: Path, monkeypatch) -> Path:
    """``root`` as the working directory of a project with the shipped params and dvc.yaml, on its own
    sqlite MLflow store (no server); returns ``root``."""
    import shutil

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(root)
    shutil.copytree(REPO / "params", root / "params")
    shutil.copy2(REPO / "dvc.yaml", root / "dvc.yaml")
    return root


def free_port() -> int:
    """A port of 127.0.0.1 that nothing listens on (bound, then closed again)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def code_examples(base_model_dir: Path, n: int, name: str):
    """Training examples for ``n`` closed-book questions ("Code i?" -> "Ci"), one per step (no
    accumulation, a checkpoint every 2 steps), and the adapter config that made them."""
    import pandas as pd

    from components.config import QASource
    from components.llm.models import load_tokenizer
    from components.training.examples import TrainingInputs, build_examples

    qa = pd.DataFrame(
        {"question": [f"Code {i}?" for i in range(n)], "answers": [[f"C{i}"] for i in range(n)], "split": "train"}
    )
    cfg = like(
        PARAMS.finetune.adapters[0],
        name=name,
        batch_size=1,
        grad_accum=1,
        max_length=64,
        learning_rate=1e-3,
        epochs=1,
        max_steps=None,
        data=[QASource(source="qa", weight=1.0)],
        checkpoint_every=2,
    )
    inputs = TrainingInputs(documents=pd.DataFrame({"text": []}), qa=qa)
    return build_examples(inputs, load_tokenizer(base_model_dir), cfg, PARAMS.evaluation.prompts), cfg


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


def make_pdf(pages: list[str], title: str | None = None) -> bytes:
    """A minimal valid PDF with one Helvetica text line per input line (ASCII text only)."""

    def esc(s: str) -> str:
        return s.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")

    n = len(pages)
    kids = " ".join(f"{4 + 2 * i} 0 R" for i in range(n))
    objs = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{kids}] /Count {n} >>",
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    for i, text in enumerate(pages):
        stream = "BT /F1 12 Tf 72 720 Td 14 TL " + " ".join(f"({esc(line)}) Tj T*" for line in text.split("\n")) + " ET"
        objs.append(
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            f"/Resources << /Font << /F1 3 0 R >> >> /Contents {5 + 2 * i} 0 R >>"
        )
        objs.append(f"<< /Length {len(stream)} >>\nstream\n{stream}\nendstream")
    info = ""
    if title is not None:
        objs.append(f"<< /Title ({esc(title)}) >>")
        info = f" /Info {len(objs)} 0 R"
    out = b"%PDF-1.4\n"
    offsets = []
    for k, obj in enumerate(objs, start=1):
        offsets.append(len(out))
        out += f"{k} 0 obj\n{obj}\nendobj\n".encode("latin-1")
    xref = len(out)
    out += f"xref\n0 {len(objs) + 1}\n0000000000 65535 f \n".encode()
    out += "".join(f"{off:010d} 00000 n \n" for off in offsets).encode()
    out += f"trailer\n<< /Size {len(objs) + 1} /Root 1 0 R{info} >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return out


def choice(cell: str = "base+vector-minilm-k3", run_id: str = "r", mean: float = 0.5, **changes):
    """A :class:`Choice` (a cell named by the decision) for tests that need a ``best.json``."""
    from components.catalog.artifacts import Choice

    model, retriever, *_ = cell.split("+")
    values = dict(cell=cell, model=model, retriever=retriever, shots=0, run_id=run_id, mean=mean)
    return Choice(**{**values, "ci_low": mean - 0.1, "ci_high": mean + 0.1, "cost_per_1k_amortised": 0.01, **changes})


def best_file(recommended=None, best=None, **changes):
    """A valid :class:`BestFile` (``best.json``): ``recommended`` and ``best`` default to the same choice."""
    from components.catalog.artifacts import BestFile, Confirmation

    recommended = recommended or choice()
    best = best or recommended
    confirmation = Confirmation(
        choice="confirmed",
        estimate="reproduced",
        beaten_by=None,
        mean=0.5,
        ci_low=0.4,
        ci_high=0.6,
        questions=40,
        groups=40,
        references=[],
        text="ok",
    )
    values = dict(
        main_metric="f1",
        split="dev",
        questions=40,
        groups=40,
        parent_run_id="p",
        best=best,
        recommended=recommended,
        ranking=[best, recommended] if best != recommended else [best],
        tied=[best.cell],
        few_groups=False,
        underpowered=[],
        under_trained=[],
        retention={},
        max_new_tokens=16,
        few_shot_examples=[],
        confirmation=confirmation,
    )
    return BestFile(**{**values, **changes})
