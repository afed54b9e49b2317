"""A throw-away ragtune project on a 12-document slice of the demo: the repo's code, tiny params, git and DVC.

Shared by the pipeline, drill and operations tests. Commands run with ``PYTHONPATH=<project>``
so the stages execute this checkout's code even when the ``ragtune`` console script was
installed from another one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import REPO, demo_slice

BIN = Path(sys.executable).parent


def edit_yaml(path: Path, edit) -> None:
    data = yaml.safe_load(path.read_text())
    edit(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def sh(*cmd: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=True)


def build_tiny_project(
    root: Path,
    base_model: Path,
    grid_retrievers: tuple[str, ...] = ("vector-minilm-k3",),
    adapters: int = 2,
    steps: int = 2,
    few_shot_models: tuple[str, ...] = (),
) -> Path:
    """Copy code and params into ``root``, shrink the params, ``git init`` + ``dvc init``; return ``root``.

    The base model is ``base_model``, a folder the test session converted once (``base_model.path``:
    the ``model`` stage copies it instead of de-quantising the GGUF again). The first ``adapters``
    adapters train ``steps`` steps each (a tune loss and a learning-curve snapshot every step); the
    evaluation grid is (base + those adapters) x (no retrieval + ``grid_retrievers``, pinned), plus the
    few-shot prompt for ``few_shot_models``, on 4 dev questions, then the cells dev left standing on 4
    test questions. So few questions only judge: ``gate.judge_only`` is on, the registry untouched.
    """
    ignore = shutil.ignore_patterns("__pycache__")
    for folder in ("components", "flows", "params"):
        shutil.copytree(REPO / folder, root / folder, ignore=ignore)
    shutil.copy2(REPO / "dvc.yaml", root / "dvc.yaml")
    shutil.copy2(REPO / ".dvcignore", root / ".dvcignore")
    shutil.copytree(REPO / "data" / "probes", root / "data" / "probes", ignore=ignore)  # out-of-domain questions
    demo_slice(root / "data" / "raw", n_docs=12, n_questions=40)

    def tiny_training(data):
        data["base_model"] = {"name": data["base_model"]["name"], "path": str(base_model)}
        data["adapters"] = data["adapters"][:adapters]
        for adapter in data["adapters"]:  # closed-book and RAFT: a few steps each
            raft = any(source["source"] == "raft" for source in adapter["data"])
            adapter.update(max_steps=steps, grad_accum=1, batch_size=1 if raft else 2, max_length=384 if raft else 64)
            adapter.update(eval_every=1, tune_questions=4, patience=None)

    def tiny_eval(data):
        data["max_questions"] = 4
        data["grid"]["retrievers"] = list(grid_retrievers)  # pinned: 4 dev questions would make every retriever tie
        data["generation"].update(max_new_tokens=8, min_new_tokens=4)
        data["few_shot"]["models"] = list(few_shot_models)
        data["latency_questions"] = 2
        data["learning_curve"]["questions"] = 4
        data["statistics"]["resamples"] = 200
        data["probes"]["max_questions"] = 4
        # 4 questions: far fewer groups than statistics.min_groups, and too few test groups to confirm the
        # choice: a profile this small only judges (a registering run may not use these escape hatches)
        data["gate"].update(judge_only=True, allow_few_groups=True, allow_unconfirmed=True)

    # 17 questions about 12 documents: split by paraphrase group (by document would leave a split empty); this
    # seed gives train 4, tune 3, dev 4, test 6 questions
    split = {"seed": 3, "dev": 0.2, "test": 0.3, "tune": 0.15, "by_document": False}
    edit_yaml(root / "params" / "data.yaml", lambda d: d["split"].update(split))
    edit_yaml(root / "params" / "finetune.yaml", tiny_training)
    edit_yaml(root / "params" / "evaluation.yaml", tiny_eval)
    sh("git", "init", "-q", "-b", "main", cwd=root)
    sh(str(BIN / "dvc"), "init", "-q", cwd=root)
    sh(str(BIN / "dvc"), "config", "core.analytics", "false", cwd=root)
    (root / ".gitignore").write_text(
        "/data/processed/\n/data/index/\n/data/models/\n/data/eval/\n/data/metrics/\n/reports/\n/mlruns.db\n"
        "/mlartifacts/\n/.prefect/\n/data/scratch/\n/data/cache/\n"
    )
    sh("git", "add", "-A", cwd=root)
    sh("git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "tiny project", cwd=root)
    return root


def project_env(root: Path, **extra: str) -> dict[str, str]:
    """Environment for ragtune commands in ``root``: no outside servers unless given, its own Prefect home."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "PREFECT_API", "RAY_ADDRESS"))}
    env["PREFECT_HOME"] = str(root / ".prefect")
    env["PATH"] = str(BIN) + os.pathsep + env.get("PATH", "")
    env["PYTHONPATH"] = str(root)
    # the ephemeral Prefect server needs more than its default 20 s to start on a loaded 2-core machine
    env.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    env.update(extra)
    return env


def ragtune_cmd(*args: str) -> list[str]:
    """``ragtune ARGS`` through this interpreter, importing ``flows`` from PYTHONPATH."""
    return [sys.executable, "-m", "flows.cli", *args]


def git(root: Path, *args: str) -> str:
    """``git ARGS`` in ``root`` with a throw-away identity; its stdout."""
    return sh("git", "-c", "user.name=t", "-c", "user.email=t@t", *args, cwd=root).stdout.strip()


def track_raw_with_dvc(root: Path, remote: Path) -> None:
    """Make data/raw DVC-tracked (``data/raw.dvc`` in git, the files in a local DVC remote), as a team's repo is."""
    dvc = str(BIN / "dvc")
    sh("git", "rm", "-r", "-q", "--cached", "data/raw", cwd=root)
    sh(dvc, "add", "-q", "data/raw", cwd=root)
    sh(dvc, "remote", "add", "-d", "store", str(remote), cwd=root)
    sh(dvc, "push", "-q", cwd=root)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "data/raw tracked by DVC")


def push_raw(root: Path, message: str) -> str:
    """Record the current data/raw with DVC, push it to the remote, commit the pointer; DVC's new md5."""
    dvc = str(BIN / "dvc")
    sh(dvc, "add", "-q", "data/raw", cwd=root)
    sh(dvc, "push", "-q", cwd=root)
    git(root, "add", "data/raw.dvc")
    git(root, "commit", "-q", "-m", message)
    return yaml.safe_load((root / "data" / "raw.dvc").read_text())["outs"][0]["md5"]
