"""All of ``params/`` as one validated object, loaded from the five YAML files.

A bad value fails at load time with the file and the dotted key named, never as a ``KeyError``
deep inside a run. The only reader of ``params/*.yaml`` is :func:`load_params`.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError, model_validator

from components.config.base import ConfigError, Strict
from components.config.data import DataConfig
from components.config.evaluation import EvaluationConfig
from components.config.finetune import FinetuneConfig, RaftSource
from components.config.questions import QuestionsConfig
from components.config.retrieval import RetrievalConfig

PARAM_FILES = ("data", "retrieval", "finetune", "evaluation", "questions")


class Params(Strict):
    """All of ``params/``: what every stage reads."""

    data: DataConfig
    retrieval: RetrievalConfig
    finetune: FinetuneConfig
    evaluation: EvaluationConfig
    questions: QuestionsConfig

    @model_validator(mode="after")
    def _grid_references_exist(self) -> Params:
        known = {r.name for r in self.retrieval.retrievers}
        unknown = sorted(set(self.evaluation.grid.retrievers or []) - known)
        if unknown:
            raise ValueError(f"evaluation.grid.retrievers names unknown retriever(s) {unknown}; known: {sorted(known)}")
        models = {"base", *(a.name for a in self.finetune.adapters)}
        unknown = sorted(set(self.evaluation.few_shot.models) - models)
        if unknown:
            raise ValueError(f"evaluation.few_shot.models names unknown model(s) {unknown}; known: {sorted(models)}")
        return self

    @model_validator(mode="after")
    def _drill_references_exist(self) -> Params:
        drill = self.evaluation.drill
        if drill.retriever is not None and drill.retriever not in {r.name for r in self.retrieval.retrievers}:
            raise ValueError(f"evaluation.drill.retriever names unknown retriever {drill.retriever!r}")
        if drill.adapter is not None and drill.adapter not in {a.name for a in self.finetune.adapters}:
            raise ValueError(f"evaluation.drill.adapter names unknown adapter {drill.adapter!r}")
        return self

    @model_validator(mode="after")
    def _raft_retrievers_exist(self) -> Params:
        known = {r.name for r in self.retrieval.retrievers}
        for adapter in self.finetune.adapters:
            for source in adapter.data:
                if isinstance(source, RaftSource) and source.retriever not in known:
                    raise ValueError(
                        f"adapter {adapter.name!r}: raft retriever {source.retriever!r} is unknown; "
                        f"known: {sorted(known)}"
                    )
        return self

    @model_validator(mode="after")
    def _chunkers_exist(self) -> Params:
        for r in self.retrieval.retrievers:
            if r.chunker not in self.data.chunkers:
                raise ValueError(f"retriever {r.name!r} names unknown chunker {r.chunker!r}")
        if self.questions.chunker not in self.data.chunkers:
            raise ValueError(f"questions.chunker names unknown chunker {self.questions.chunker!r}")
        return self


def _read_yaml(path: Path) -> dict:
    if not path.is_file():
        raise ConfigError(f"{path}: params file not found")
    try:
        with path.open(encoding="utf-8") as f:
            loaded = yaml.safe_load(f)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return loaded


def _format_errors(exc: ValidationError, params_dir: Path) -> str:
    lines = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        where = params_dir / f"{loc[0]}.yaml" if loc and loc[0] in PARAM_FILES else params_dir
        lines.append(f"  {where}: {'.'.join(loc[1:]) or '(top level)'}: {err['msg']}")
    return "\n".join(lines)


def load_params(params_dir: Path | str) -> Params:
    """Load and validate every params file.

    Raises:
        ConfigError: naming the file and the dotted key of each invalid value.
    """
    params_dir = Path(params_dir)
    raw = {name: _read_yaml(params_dir / f"{name}.yaml") for name in PARAM_FILES}
    try:
        return Params(**raw)
    except ValidationError as exc:
        raise ConfigError(f"invalid params:\n{_format_errors(exc, params_dir)}") from exc
