"""The catalog: the path of every artifact a stage reads or writes, from ``params/data.yaml:paths``.

No other module spells a file or folder name of the pipeline. The folders come from params (and
dvc.yaml interpolates the same keys into its deps and outs); the names of the files inside them
are fixed here. The files passed between stages have typed models in
:mod:`components.catalog.artifacts`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from components.config import Paths


@dataclass(frozen=True)
class Catalog:
    """Every artifact path of a project rooted at ``root``."""

    root: Path
    paths: Paths

    def _at(self, folder: str) -> Path:
        return self.root / folder

    # inputs
    @property
    def raw(self) -> Path:
        return self._at(self.paths.raw)

    @property
    def demo(self) -> Path:
        return self._at(self.paths.demo)

    # questions
    @property
    def questions(self) -> Path:
        """The ``questions`` stage's output: generated pairs and the report of their filters."""
        return self._at(self.paths.questions)

    @property
    def generated_qa(self) -> Path:
        return self.questions / "generated.jsonl"

    @property
    def questions_report(self) -> Path:
        return self.questions / "report.json"

    @property
    def question_cache(self) -> Path:
        """The generator's completions (``components.llm.prediction_cache``): not a DVC output, survives re-runs."""
        return self._at(self.paths.cache) / "questions"

    # ingest
    @property
    def processed(self) -> Path:
        return self._at(self.paths.processed)

    @property
    def documents(self) -> Path:
        return self.processed / "documents.parquet"

    @property
    def qa(self) -> Path:
        return self.processed / "qa.parquet"

    def chunks(self, chunker: str) -> Path:
        return self.processed / f"chunks-{chunker}.parquet"

    # index
    @property
    def index(self) -> Path:
        return self._at(self.paths.index)

    # model and finetune
    @property
    def models(self) -> Path:
        return self._at(self.paths.models)

    @property
    def base_model(self) -> Path:
        return self.models / "base"

    @property
    def adapters(self) -> Path:
        return self.models / "adapters"

    def adapter(self, name: str) -> Path:
        return self.adapters / name

    @property
    def curves(self) -> Path:
        """Each adapter's training snapshots (its learning curve): ``curves/<adapter>/step-<n>/``."""
        return self.models / "curves"

    def curve(self, name: str) -> Path:
        return self.curves / name

    @property
    def ray_storage(self) -> Path:
        """Ray Train runs of `ragtune finetune` (checkpoints to resume from); not a DVC output."""
        return self.models / "ray"

    # evaluate
    @property
    def eval(self) -> Path:
        return self._at(self.paths.eval)

    @property
    def predictions(self) -> Path:
        return self.eval / "predictions.parquet"

    @property
    def cells(self) -> Path:
        return self.eval / "cells.json"

    @property
    def curves_file(self) -> Path:
        """The adapters' learning curves, scored on the tuning slice by ``evaluate``."""
        return self.eval / "curves.json"

    @property
    def curve_scores(self) -> Path:
        """The per-question scores behind the learning curves (adapter, step, qa_id, main metric)."""
        return self.eval / "curve_scores.parquet"

    @property
    def prediction_cache(self) -> Path:
        return self._at(self.paths.cache) / "predictions"

    # metrics: one small JSON per stage (`dvc metrics show`)
    def metrics(self, name: str) -> Path:
        """``<metrics>/<name>.json``: ingest, model, index, retrieval, finetune, eval, best, registry, drill, sweep."""
        return self._at(self.paths.metrics) / f"{name}.json"

    # reports
    @property
    def reports(self) -> Path:
        return self._at(self.paths.reports)

    @property
    def leaderboard(self) -> Path:
        """The decision report's text (``ragtune run`` prints it)."""
        return self.reports / "leaderboard.md"

    @property
    def report_html(self) -> Path:
        return self.reports / "report.html"

    @property
    def complementarity(self) -> Path:
        return self.reports / "complementarity.csv"

    @property
    def drill_report(self) -> Path:
        return self.reports / "drill.md"

    @property
    def sweep_report(self) -> Path:
        return self.reports / "sweep.md"

    def report(self, name: str) -> Path:
        """A file beside the report, named by the report itself (its charts)."""
        return self.reports / name

    @property
    def probes(self) -> Path:
        """The out-of-domain probe questions (JSONL) every model answers closed-book."""
        return self._at(self.paths.probes)

    # scratch: work folders of commands that are not stages
    def scratch(self, name: str) -> Path:
        return self._at(self.paths.scratch) / name


def table_name(chunker: str, embedder: str) -> str:
    """The LanceDB table of a (chunker, embedder) pair, in LanceDB-safe characters."""
    return re.sub(r"[^A-Za-z0-9_]+", "_", f"chunks__{chunker}__{embedder}")


def catalog(root: Path | str, paths: Paths) -> Catalog:
    """The catalog of the project at ``root``."""
    return Catalog(Path(root), paths)
