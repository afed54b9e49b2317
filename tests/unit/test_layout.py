"""The layout holds: small modules, no import cycle, and dvc.yaml's deps name all the code each stage runs.

DVC re-runs a stage only when one of its deps changed, so a stage whose deps miss a module it
imports keeps results that its current code would not produce. The imports are read from the
source (every ``import`` statement, top-level or inside a function), followed transitively
through the repository's own modules.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest
import yaml

from flows.cli import STAGE_COMMANDS
from tests.conftest import REPO

PACKAGES = ("components", "flows")
MAX_LINES = {"components": 400, "flows/cli.py": 150, "flows/stages": 80}
MAX_FUNCTION_LINES = 60
# Functions allowed to be longer, each with its reason.
LONG_FUNCTIONS = {
    "components/training/worker.py:train_loop_per_worker": "one Ray Train worker: setup, resume, steps, reports",
}


def _modules() -> dict[str, Path]:
    """Every module of the repository's packages: dotted name -> file."""
    found = {}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            parts = path.relative_to(REPO).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


MODULES = _modules()


def _resolve(name: str) -> list[str]:
    """The in-repo modules that importing ``name`` runs: it and each package above it."""
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1) if ".".join(parts[:i]) in MODULES]


@cache
def imports(module: str) -> frozenset[str]:
    """The in-repo modules ``module`` imports directly (anywhere in its source)."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.update(_resolve(alias.name))
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.update(_resolve(node.module))
            for alias in node.names:  # `from components import tracking` imports a module
                if f"{node.module}.{alias.name}" in MODULES:
                    found.add(f"{node.module}.{alias.name}")
    found.discard(module)
    return frozenset(found)


def closure(module: str) -> set[str]:
    """``module`` and everything it imports, transitively, within the repository."""
    seen, todo = set(), [module]
    while todo:
        current = todo.pop()
        if current not in seen:
            seen.add(current)
            todo += imports(current)
    return seen


def _runs_code(path: Path) -> bool:
    """False for a package ``__init__`` that holds only a docstring (importing it runs nothing)."""
    body = ast.parse(path.read_text(encoding="utf-8")).body
    return not all(isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant) for n in body)


def missing_deps(stage: str, deps: list[str]) -> list[str]:
    """The files stage ``stage`` runs that none of ``deps`` (files or folders) covers."""
    module = f"flows.stages.{stage}"
    if module not in MODULES:
        return [f"flows/stages/{stage}.py (no such module)"]
    covered = [REPO / d for d in deps]
    missing = []
    for name in sorted(closure(module)):
        path = MODULES[name]
        if _runs_code(path) and not any(path == d or d in path.parents for d in covered):
            missing.append(path.relative_to(REPO).as_posix())
    return missing


def _stages() -> dict[str, dict]:
    return yaml.safe_load((REPO / "dvc.yaml").read_text(encoding="utf-8"))["stages"]


@pytest.mark.parametrize("stage", sorted(_stages()))
def test_each_stage_depends_on_all_the_code_it_runs(stage):
    deps = [d for d in _stages()[stage].get("deps", []) if "${" not in d]
    assert f"flows/stages/{stage}.py" in deps
    assert missing_deps(stage, deps) == [], f"dvc.yaml: stage {stage!r} does not list these deps"


def test_a_dep_removed_from_a_stage_is_reported():
    deps = [d for d in _stages()["evaluate"]["deps"] if "${" not in d]
    assert missing_deps("evaluate", deps) == []
    assert missing_deps("evaluate", [d for d in deps if d != "components/llm"]) == [
        "components/llm/engines.py",
        "components/llm/generation.py",
        "components/llm/models.py",
        "components/llm/prediction_cache.py",
    ]


@pytest.mark.parametrize("stage", sorted(_stages()))
def test_variants_and_their_shared_defaults_are_declared_together(stage):
    params = {
        f"{Path(f).stem}.{k}" for entry in _stages()[stage].get("params", []) for f, ks in entry.items() for k in ks
    }
    for variants, defaults in (
        ("finetune.adapters", "finetune.adapter_defaults"),
        ("retrieval.retrievers", "retrieval.retriever_defaults"),
    ):
        assert (variants in params) == (defaults in params), f"{stage}: {variants} is merged from {defaults}"


@pytest.mark.parametrize("stage", sorted(_stages()))
def test_each_stage_runs_its_own_command(stage):
    command = _stages()[stage]["cmd"]
    name = command.removeprefix("ragtune ")
    assert command.startswith("ragtune ") and name in STAGE_COMMANDS
    assert STAGE_COMMANDS[name].__module__ == f"flows.stages.{stage}"


def test_no_import_cycle_between_modules_or_packages():
    def cycle(graph: dict[str, set[str]]) -> list[str] | None:
        state: dict[str, int] = {}
        stack: list[str] = []

        def visit(node: str) -> list[str] | None:
            state[node] = 1
            stack.append(node)
            for nxt in sorted(graph.get(node, ())):
                if state.get(nxt) == 1:
                    return [*stack[stack.index(nxt) :], nxt]
                if nxt not in state and (found := visit(nxt)):
                    return found
            stack.pop()
            state[node] = 2
            return None

        for node in sorted(graph):
            if node not in state and (found := visit(node)):
                return found
        return None

    # a package imports its own modules (its __init__ re-exports); only imports that leave it count
    modules = {
        m: {i for i in imports(m) if not (m.startswith(i + ".") and MODULES[i].name == "__init__.py")} for m in MODULES
    }
    assert cycle(modules) is None

    def package(m: str) -> str:
        return ".".join(m.split(".")[:2])

    packages: dict[str, set[str]] = {}
    for m, targets in modules.items():
        packages.setdefault(package(m), set()).update(package(t) for t in targets if package(t) != package(m))
    assert cycle(packages) is None


def test_modules_are_small():
    too_long = []
    for path in sorted(MODULES.values()):
        rel = path.relative_to(REPO).as_posix()
        limit = MAX_LINES.get(rel) or next((n for prefix, n in MAX_LINES.items() if rel.startswith(prefix + "/")), None)
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if limit is not None and lines > limit:
            too_long.append(f"{rel}: {lines} lines > {limit}")
    assert too_long == []


def test_functions_are_short_or_say_why_not():
    too_long = []
    for path in sorted(MODULES.values()):
        rel = path.relative_to(REPO).as_posix()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if ast.get_docstring(node) is not None:  # the docstring does not count
                    lines -= node.body[0].end_lineno - node.body[0].lineno + 1
                if lines > MAX_FUNCTION_LINES and f"{rel}:{node.name}" not in LONG_FUNCTIONS:
                    too_long.append(f"{rel}:{node.name} ({lines} lines)")
    assert too_long == []
