"""``params/retrieval.yaml``: embedders, how tables are indexed, and the retriever variants."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from components.config.base import Strict, with_defaults


class EmbedderConfig(Strict):
    """A sentence-transformers model: a path, an id in the local cache, or a package that ships one."""

    name: str
    package: str | None = None  # one of package or path: the other is left out
    path: str | None = None
    batch_size: int = Field(gt=0)

    @model_validator(mode="after")
    def _one_source(self) -> EmbedderConfig:
        if (self.package is None) == (self.path is None):
            raise ValueError("give exactly one of embedder.package or embedder.path")
        return self


RetrievalMode = Literal["vector", "fulltext", "hybrid"]

# Rerankers that can run here. A cross-encoder is only allowed when its weights ship inside an
# installed PyPI package (the hub is unreachable); none does yet, so "none" is the only choice.
AVAILABLE_RERANKERS = ("none",)


class RetrieverConfig(Strict):
    """One retriever variant: which table it reads, how it searches, how many chunks it returns."""

    name: str
    chunker: str
    embedder: str
    mode: RetrievalMode
    top_k: int = Field(gt=0, le=50)
    reranker: str
    rrf_k: int = Field(gt=0)  # reciprocal rank fusion constant (hybrid mode)
    candidates: int = Field(gt=0, le=500)  # hits taken from each list before fusion (hybrid mode)

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


class IndexSettings(Strict):
    """How each LanceDB table is indexed."""

    ann_min_rows: int = Field(gt=0)  # exact (flat) search below this row count, an ANN index above
    ann_index_type: Literal["IVF_HNSW_SQ", "IVF_PQ"]
    num_partitions: int | None = Field(gt=0)  # IVF partitions; None: LanceDB's default (~sqrt(rows))
    num_sub_vectors: int | None = Field(gt=0)  # IVF_PQ only; None: LanceDB's default


class RayEmbeddingConfig(Strict):
    """When and how chunks are embedded with Ray Data instead of in this process."""

    min_chunks: int = Field(gt=0)  # at least this many new chunks: Ray Data (or whenever RAY_ADDRESS is set)
    num_actors: int = Field(gt=0)  # embedding actors, each loads the model once
    batch_size: int = Field(gt=0)  # chunks per Ray Data batch
    gpus_per_actor: float = Field(ge=0)  # GPUs per embedding actor, each sees only its own; 0: CPU


class RetrievalConfig(Strict):
    embedders: dict[str, EmbedderConfig] = Field(min_length=1)
    index: IndexSettings
    ray_embedding: RayEmbeddingConfig
    eval_splits: list[Literal["tune", "dev", "test"]] = Field(min_length=1)  # splits scored by `ragtune retrieval-eval`
    retriever_defaults: dict[str, Any]  # shared by every retriever; each entry of `retrievers` gives its delta
    retrievers: list[RetrieverConfig] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _apply_defaults(cls, data: Any) -> Any:
        if isinstance(data, dict) and "retrievers" in data:
            data = {**data, "retrievers": with_defaults(data.get("retriever_defaults", {}), data["retrievers"])}
        return data

    @model_validator(mode="after")
    def _references_exist(self) -> RetrievalConfig:
        names = [r.name for r in self.retrievers]
        if len(set(names)) != len(names):
            raise ValueError(f"retriever names must be unique, got {names}")
        for r in self.retrievers:
            if r.embedder not in self.embedders:
                raise ValueError(f"retriever {r.name!r} names unknown embedder {r.embedder!r}")
        return self

    def retriever(self, name: str) -> RetrieverConfig:
        """The retriever called ``name``.

        Raises:
            KeyError: naming the known retrievers.
        """
        for r in self.retrievers:
            if r.name == name:
                return r
        raise KeyError(f"no retriever {name!r} in params/retrieval.yaml; known: {[r.name for r in self.retrievers]}")
