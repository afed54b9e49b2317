"""Typed configuration built from ``params/*.yaml``.

Every tunable of the pipeline lives in one of four YAML files; this module turns them into
validated pydantic models. A bad value fails at load time with the file and the dotted key named,
never as a ``KeyError`` deep inside a run. No other module reads YAML or environment variables.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

PARAM_FILES = ("data", "retrieval", "finetune", "evaluation")


class ConfigError(ValueError):
    """A params file is missing, unreadable or holds an invalid value."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- data ---------------------------------------------------------------------------------------


class Paths(_Strict):
    """Where each stage reads and writes, relative to the project root."""

    raw: str = "data/raw"
    demo: str = "data/demo"
    processed: str = "data/processed"
    index: str = "data/index"
    models: str = "data/models"
    eval: str = "data/eval"
    metrics: str = "data/metrics"
    reports: str = "reports"
    cache: str = "data/cache"  # prediction cache: not a DVC output, so it survives re-runs


class SplitConfig(_Strict):
    """Deterministic split of the questions (never of the documents)."""

    seed: int = 0
    dev: float = Field(0.15, ge=0.0, lt=1.0)
    test: float = Field(0.15, gt=0.0, lt=1.0)

    @model_validator(mode="after")
    def _leaves_train(self) -> SplitConfig:
        if self.dev + self.test >= 1.0:
            raise ValueError("split.dev + split.test must leave some questions for train")
        return self


class ChunkerConfig(_Strict):
    """Paragraph packing: whole paragraphs packed into chunks of at most ``max_chars``.

    (Named ``ChunkerConfig`` for compatibility: it was the only kind.)
    """

    kind: Literal["paragraph"] = "paragraph"
    max_chars: int = Field(800, gt=50)


class SentenceChunkerConfig(_Strict):
    """Sentence packing: whole sentences packed into chunks of at most ``max_chars``."""

    kind: Literal["sentence"]
    max_chars: int = Field(800, gt=50)
    overlap: int = Field(0, ge=0, description="sentences repeated from the end of the previous chunk")


class TokenChunkerConfig(_Strict):
    """Fixed windows of ``size`` tokens, each starting ``size - overlap`` tokens after the last."""

    kind: Literal["token"]
    size: int = Field(128, gt=0)
    overlap: int = Field(16, ge=0)

    @model_validator(mode="after")
    def _overlap_below_size(self) -> TokenChunkerConfig:
        if self.overlap >= self.size:
            raise ValueError(f"overlap ({self.overlap}) must be smaller than size ({self.size})")
        return self


class HeadingChunkerConfig(_Strict):
    """Markdown sections: one chunk per heading (up to ``max_level``), long ones cut at ``max_chars``."""

    kind: Literal["heading"]
    max_level: int = Field(6, ge=1, le=6)
    max_chars: int = Field(2000, gt=50)


AnyChunkerConfig = Annotated[
    ChunkerConfig | SentenceChunkerConfig | TokenChunkerConfig | HeadingChunkerConfig,
    Field(discriminator="kind"),
]


class DataConfig(_Strict):
    paths: Paths = Paths()
    max_file_mb: float = Field(50.0, gt=0)
    split: SplitConfig = SplitConfig()
    chunkers: dict[str, AnyChunkerConfig] = {"para-400": ChunkerConfig()}


# --- retrieval ----------------------------------------------------------------------------------


class EmbedderConfig(_Strict):
    """A sentence-transformers model: a path, an id in the local cache, or a package that ships one."""

    name: str
    package: str | None = None
    path: str | None = None
    batch_size: int = Field(64, gt=0)

    @model_validator(mode="after")
    def _one_source(self) -> EmbedderConfig:
        if (self.package is None) == (self.path is None):
            raise ValueError("give exactly one of embedder.package or embedder.path")
        return self


RetrievalMode = Literal["vector", "fulltext", "hybrid"]

# Rerankers that can run here. A cross-encoder is only allowed when its weights ship inside an
# installed PyPI package (the hub is unreachable); none does yet, so "none" is the only choice.
AVAILABLE_RERANKERS = ("none",)


class RetrieverConfig(_Strict):
    """One retriever variant: which table it reads, how it searches, how many chunks it returns."""

    name: str
    chunker: str
    embedder: str
    mode: RetrievalMode = "vector"
    top_k: int = Field(3, gt=0, le=50)
    reranker: str = "none"
    rrf_k: int = Field(60, gt=0)  # reciprocal rank fusion constant (hybrid mode)
    candidates: int = Field(20, gt=0, le=500)  # hits taken from each list before fusion (hybrid mode)

    @field_validator("reranker")
    @classmethod
    def _reranker_available(cls, reranker: str) -> str:
        if reranker not in AVAILABLE_RERANKERS:
            raise ValueError(
                f"reranker {reranker!r} is not available offline (no packaged cross-encoder is installed); "
                f"choose one of {list(AVAILABLE_RERANKERS)}"
            )
        return reranker

    @model_validator(mode="after")
    def _enough_candidates(self) -> RetrieverConfig:
        if self.mode == "hybrid" and self.candidates < self.top_k:
            raise ValueError(f"retriever {self.name!r}: candidates ({self.candidates}) must be >= top_k ({self.top_k})")
        return self


class IndexSettings(_Strict):
    """How each LanceDB table is indexed."""

    ann_min_rows: int = Field(50_000, gt=0)  # exact (flat) search below this row count, an ANN index above
    ann_index_type: Literal["IVF_HNSW_SQ", "IVF_PQ"] = "IVF_HNSW_SQ"
    num_partitions: int | None = Field(None, gt=0)  # IVF partitions; None: LanceDB's default (~sqrt(rows))
    num_sub_vectors: int | None = Field(None, gt=0)  # IVF_PQ only; None: LanceDB's default


class RayEmbeddingConfig(_Strict):
    """When and how chunks are embedded with Ray Data instead of in this process."""

    min_chunks: int = Field(20_000, gt=0)  # at least this many new chunks: Ray Data (or whenever RAY_ADDRESS is set)
    num_actors: int = Field(2, gt=0)  # embedding actors, each loads the model once
    batch_size: int = Field(256, gt=0)  # chunks per Ray Data batch


class RetrievalConfig(_Strict):
    embedders: dict[str, EmbedderConfig]
    index: IndexSettings = IndexSettings()
    ray_embedding: RayEmbeddingConfig = RayEmbeddingConfig()
    eval_splits: list[Literal["dev", "test"]] = ["dev", "test"]  # splits scored by `ragtune retrieval-eval`
    retrievers: list[RetrieverConfig]

    @model_validator(mode="after")
    def _references_exist(self) -> RetrievalConfig:
        names = [r.name for r in self.retrievers]
        if len(set(names)) != len(names):
            raise ValueError(f"retriever names must be unique, got {names}")
        for r in self.retrievers:
            if r.embedder not in self.embedders:
                raise ValueError(f"retriever {r.name!r} names unknown embedder {r.embedder!r}")
        return self


# --- fine-tuning --------------------------------------------------------------------------------


class BaseModelConfig(_Strict):
    """The base LLM: a GGUF file inside an installed package, or a local path / hub cache id."""

    name: str
    package: str | None = None
    gguf_file: str | None = None
    path: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> BaseModelConfig:
        if self.package is None and self.path is None:
            raise ValueError("give base_model.package (with gguf_file) or base_model.path")
        if self.package is not None and self.gguf_file is None:
            raise ValueError("base_model.package needs base_model.gguf_file")
        return self


class RayConfig(_Strict):
    num_workers: int = Field(2, gt=0)
    cpus_per_worker: int = Field(1, gt=0)
    use_gpu: bool = False  # DDP backend follows: nccl on GPU (with bf16 autocast), gloo on CPU
    max_failures: int = Field(1, ge=0)  # worker-group restarts from the latest checkpoint before the run fails


class CorpusSource(_Strict):
    """Continued pre-training on every document, optionally with train-split facts in other forms."""

    source: Literal["corpus"]
    weight: float = Field(1.0, gt=0)  # examples of this source repeated/sampled to weight x their count
    augment: list[Literal["qa_text", "statement"]] = []  # extra renderings of each train QA pair as text


class QASource(_Strict):
    """Closed-book QA: the evaluation's closed-book chat prompt, loss on the answer tokens only."""

    source: Literal["qa"]
    weight: float = Field(1.0, gt=0)


class RaftSource(_Strict):
    """RAFT (Zhang et al. 2024): the with-context prompt with the gold chunk kept with ``p_gold``."""

    source: Literal["raft"]
    weight: float = Field(1.0, gt=0)
    retriever: str  # from params/retrieval.yaml: its chunker gives the passages, its top_k their number
    p_gold: float = Field(0.8, ge=0.0, le=1.0)  # chance the gold chunk is among the passages
    distractors: Literal["other_docs"] = "other_docs"  # chunks sampled from documents the question is not about


AnySource = Annotated[CorpusSource | QASource | RaftSource, Field(discriminator="source")]


class AdapterConfig(_Strict):
    """One LoRA variant, named for what it changes (``lora-r8-qv``)."""

    name: str
    r: int = Field(8, gt=0)
    alpha: int = Field(16, gt=0)
    dropout: float = Field(0.05, ge=0.0, lt=1.0)
    target_modules: list[str] = ["q_proj", "v_proj"]
    learning_rate: float = Field(1e-3, gt=0)
    epochs: int = Field(1, gt=0)
    max_steps: int | None = Field(None, gt=0)
    batch_size: int = Field(8, gt=0)
    grad_accum: int = Field(1, gt=0)
    max_length: int = Field(128, gt=8)
    batching: Literal["random", "bucketed"] = "bucketed"
    checkpoint_every: int | None = Field(None, gt=0)
    seed: int = 0
    data: list[AnySource] = Field(
        default_factory=lambda: [CorpusSource(source="corpus"), QASource(source="qa")], min_length=1
    )

    @field_validator("data")
    @classmethod
    def _one_of_each(cls, data: list) -> list:
        kinds = [s.source for s in data]
        if len(set(kinds)) != len(kinds):
            raise ValueError(f"each data source may appear once, got {kinds}")
        return data


class SearchDim(_Strict):
    """One hyperparameter's search range: exactly one of ``choice``, ``grid``, ``loguniform``, ``uniform``.

    ``choice`` samples one of the values per trial; ``grid`` tries every value, in order, ``num_samples``
    times over (with other grids: every combination).
    """

    choice: list[float] | None = Field(None, min_length=1)
    grid: list[float] | None = Field(None, min_length=1)
    loguniform: tuple[float, float] | None = None
    uniform: tuple[float, float] | None = None

    @property
    def values(self) -> list[float] | None:
        """The listed values of a ``choice`` or ``grid``; None for a range."""
        return self.choice if self.choice is not None else self.grid

    @model_validator(mode="after")
    def _one_kind(self) -> SearchDim:
        given = [k for k in ("choice", "grid", "loguniform", "uniform") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of choice, grid, loguniform, uniform; got {given or 'none'}")
        for kind in ("loguniform", "uniform"):
            bounds = getattr(self, kind)
            if bounds is not None and not (bounds[0] < bounds[1] and (kind == "uniform" or bounds[0] > 0)):
                raise ValueError(f"{kind} needs 0 < low < high (uniform: low < high), got {list(bounds)}")
        return self


SWEEPABLE = ("r", "alpha", "dropout", "learning_rate")  # the LoRA hyperparameters a sweep may vary
INTEGER_HYPERPARAMETERS = ("r", "alpha")


class SweepConfig(_Strict):
    """`ragtune sweep`: Ray Tune trials of one adapter's config, stopped early by ASHA on dev loss."""

    adapter: str  # the adapter config every trial starts from (its data, batch size, length)
    num_samples: int = Field(4, gt=0)  # trials sampled from ``space``
    max_steps: int = Field(20, gt=0)  # optimiser steps of a trial that is never stopped (ASHA's max_t)
    grace_period: int = Field(5, gt=0)  # steps every trial runs before ASHA may stop it
    reduction_factor: int = Field(2, ge=2)  # ASHA keeps the best 1/reduction_factor at each rung
    eval_every: int = Field(5, gt=0)  # held-out loss every this many steps: what ASHA compares
    dev_questions: int = Field(32, gt=0)  # dev-split questions in the held-out loss
    max_concurrent: int = Field(1, gt=0)  # trials at once; each takes ray.num_workers workers
    seed: int = 0  # seeds the sampling of the search space
    space: dict[Literal["r", "alpha", "dropout", "learning_rate"], SearchDim] = Field(min_length=1)

    @model_validator(mode="after")
    def _steps(self) -> SweepConfig:
        if self.grace_period > self.max_steps:
            raise ValueError(f"grace_period {self.grace_period} exceeds max_steps {self.max_steps}")
        for name in INTEGER_HYPERPARAMETERS:
            dim = self.space.get(name)
            if dim is not None and (dim.values is None or any(v != int(v) or v <= 0 for v in dim.values)):
                raise ValueError(f"space.{name} must be a choice or grid of positive integers")
        return self


class FinetuneConfig(_Strict):
    base_model: BaseModelConfig
    ray: RayConfig = RayConfig()
    adapters: list[AdapterConfig]
    sweep: SweepConfig | None = None  # only `ragtune sweep` reads it; the pipeline stages do not

    @field_validator("adapters")
    @classmethod
    def _unique(cls, adapters: list[AdapterConfig]) -> list[AdapterConfig]:
        names = [a.name for a in adapters]
        if len(set(names)) != len(names) or "base" in names:
            raise ValueError(f"adapter names must be unique and not 'base', got {names}")
        return adapters

    @model_validator(mode="after")
    def _sweep_adapter_exists(self) -> FinetuneConfig:
        names = [a.name for a in self.adapters]
        if self.sweep is not None and self.sweep.adapter not in names:
            raise ValueError(f"sweep.adapter {self.sweep.adapter!r} is not one of the adapters {names}")
        return self


# --- evaluation ---------------------------------------------------------------------------------


class GenerationConfig(_Strict):
    max_new_tokens: int = Field(24, gt=0)
    batch_size: int = Field(16, gt=0)


class PromptConfig(_Strict):
    system: str
    closed_book: str
    with_context: str

    @model_validator(mode="after")
    def _placeholders(self) -> PromptConfig:
        if "{question}" not in self.closed_book:
            raise ValueError("prompts.closed_book must contain {question}")
        if "{question}" not in self.with_context or "{context}" not in self.with_context:
            raise ValueError("prompts.with_context must contain {question} and {context}")
        return self


class CostConfig(_Strict):
    """Prices that turn measured compute time and tokens into money (see docs/decision.md)."""

    cpu_hour: float = Field(0.05, ge=0.0)  # price of one CPU-machine hour (one training worker, one index build)
    per_1k_tokens: float = Field(0.0, ge=0.0)  # price per 1,000 prompt + completion tokens (0: self-hosted)
    query_volume: int = Field(100_000, gt=0)  # queries the fixed costs are spread over (amortisation)


class StatisticsConfig(_Strict):
    """Paired bootstrap over the questions."""

    resamples: int = Field(2000, ge=100)  # more: steadier interval ends, slower
    confidence: float = Field(0.95, gt=0.5, lt=1.0)
    seed: int = 0
    min_questions: int = Field(30, ge=1)  # fewer: the recommendation warns that its ties say little


class RegistryConfig(_Strict):
    """Where the MLflow model registry keeps the champion and the adapters."""

    name: str = Field("ragtune-qa", min_length=1)  # registered model of the winning cell
    alias: str = Field("champion", min_length=1)  # alias moved to the winner's version by `ragtune register`
    adapter_prefix: str = Field("ragtune-adapter-", min_length=1)  # + adapter name: one registered model per adapter


class DrillConfig(_Strict):
    """The knowledge-update drill: hold documents back, add them as new knowledge, time each mix absorbing it."""

    share: float = Field(0.1, gt=0.0, lt=1.0)  # documents held back (at least one), drawn with ``seed``
    seed: int = 0
    retriever: str | None = None  # the RAG arm's retriever; None: the first grid retriever
    adapter: str | None = None  # the fine-tuning arm's adapter config; None: the first of finetune.yaml
    max_steps: int = Field(20, gt=0)  # optimiser steps of each drill training run (keeps the drill short)
    max_questions: int | None = Field(None, gt=0)  # new-knowledge questions scored (None: all)


class EvaluationConfig(_Strict):
    experiment: str = "ragtune"
    split: Literal["dev", "test"] = "test"
    max_questions: int | None = Field(None, gt=0)
    main_metric: Literal["exact_match", "f1", "rouge_l"] = "f1"
    grid_retrievers: list[str] | None = None  # retrievers in the LLM grid; None: every retriever
    generation: GenerationConfig = GenerationConfig()
    prompts: PromptConfig
    answered_threshold: float = Field(0.5, gt=0.0, le=1.0)  # main metric at least this: answered (complementarity)
    cost: CostConfig = CostConfig()
    statistics: StatisticsConfig = StatisticsConfig()
    registry: RegistryConfig = RegistryConfig()
    drill: DrillConfig = DrillConfig()


class Params(_Strict):
    """All of ``params/``: what every stage reads."""

    data: DataConfig
    retrieval: RetrievalConfig
    finetune: FinetuneConfig
    evaluation: EvaluationConfig

    def grid_retrievers(self) -> list[str]:
        """The retrievers the LLM grid pairs with every model variant, in params order."""
        wanted = self.evaluation.grid_retrievers
        return [r.name for r in self.retrieval.retrievers if wanted is None or r.name in wanted]

    @model_validator(mode="after")
    def _grid_retrievers_exist(self) -> Params:
        known = {r.name for r in self.retrieval.retrievers}
        unknown = sorted(set(self.evaluation.grid_retrievers or []) - known)
        if unknown:
            raise ValueError(f"evaluation.grid_retrievers names unknown retriever(s) {unknown}; known: {sorted(known)}")
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


def load_params(params_dir: Path | str = "params") -> Params:
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
