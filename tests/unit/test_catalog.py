"""The catalog names every artifact from params' folders; the typed artifacts round-trip and name a bad file."""

from __future__ import annotations

import ast

import pytest

from components.catalog import Catalog, artifacts, table_name
from components.catalog.artifacts import BestFile, FinetuneFile
from tests.conftest import PARAMS, REPO, best_file, choice, like


def test_every_path_follows_the_folders_params_give(tmp_path):
    paths = like(PARAMS.data.paths, processed="elsewhere/p", metrics="m", reports="out", scratch="tmp")
    c = Catalog(tmp_path, paths)
    assert c.documents == tmp_path / "elsewhere/p/documents.parquet"
    assert c.chunks("para-400") == tmp_path / "elsewhere/p/chunks-para-400.parquet"
    assert c.metrics("best") == tmp_path / "m/best.json" and c.leaderboard == tmp_path / "out/leaderboard.md"
    assert c.scratch("drill") == tmp_path / "tmp/drill"
    assert table_name("para-400", "minilm") == "chunks__para_400__minilm"


def test_an_artifact_round_trips_and_a_bad_file_is_named_with_its_field(tmp_path):
    best = best_file(choice("a+b"), questions=9, groups=9, few_groups=True, max_new_tokens=8)
    artifacts.write(best, tmp_path / "best.json")
    assert artifacts.read(BestFile, tmp_path / "best.json") == best
    (tmp_path / "old.json").write_text('{"cell": "a+b", "f1": 0.5}')
    with pytest.raises(ValueError, match=r"(?s)old.json is not a valid BestFile.*main_metric"):
        artifacts.read(BestFile, tmp_path / "old.json")
    with pytest.raises(FileNotFoundError, match="run the stage that writes it"):
        artifacts.read(FinetuneFile, tmp_path / "missing.json")


def test_no_module_spells_an_artifact_path_the_catalog_owns():
    """Folder names live in params/data.yaml and file names in components/catalog: nowhere else."""
    folders = list(PARAMS.data.paths.model_dump().values())
    c = Catalog(REPO, PARAMS.data.paths)
    files = {
        p.name
        for p in (
            c.documents,
            c.qa,
            c.predictions,
            c.cells,
            c.leaderboard,
            c.report_html,
            c.complementarity,
            c.drill_report,
            c.sweep_report,
        )
    }
    spelled = []
    for path in sorted([*(REPO / "components").rglob("*.py"), *(REPO / "flows").rglob("*.py")]):
        if path.is_relative_to(REPO / "components" / "catalog") or path.is_relative_to(REPO / "components" / "config"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                v = node.value
                if v in files or any(v == f or v.startswith(f + "/") for f in folders):
                    spelled.append(f"{path.relative_to(REPO)}: {v!r}")
    assert spelled == []
