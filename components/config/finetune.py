"""``params/finetune.yaml``: the base model, Ray workers, LoRA adapter variants and the optional sweep."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from components.config.base import Strict, with_defaults


class BaseModelConfig(Strict):
    """The base LLM: a GGUF file inside an installed package, or a local path / hub cache id."""

    name: str
    package: str | None = None  # one of package (with gguf_file) or path: the others are left out
    gguf_file: str | None = None
    path: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> BaseModelConfig:
        if (self.package is None) == (self.path is None):
            raise ValueError("give base_model.package (with gguf_file) or base_model.path, not both")
        if self.package is not None and self.gguf_file is None:
            raise ValueError("base_model.package needs base_model.gguf_file")
        return self


class RayConfig(Strict):
    num_workers: int = Field(gt=0)
    cpus_per_worker: int = Field(gt=0)
    use_gpu: bool  # DDP backend follows: nccl on GPU (with bf16 autocast), gloo on CPU
    max_failures: int = Field(ge=0)  # worker-group restarts from the latest checkpoint before the run fails
    strategy: Literal["ddp", "fsdp"]  # ddp: a whole model per worker; fsdp: the model sharded over the workers
    gradient_checkpointing: bool  # recompute activations in the backward pass: less memory, more compute


class CorpusSource(Strict):
    """Continued pre-training on every document, optionally with train-split facts in other forms."""

    source: Literal["corpus"]
    weight: float = Field(gt=0)  # examples of this source repeated/sampled to weight x their count
    # the facts in other phrasings (components/training/augment.py), form -> weight (copies; a fraction samples)
    augment: dict[Literal["qa_text", "statement", "rewrite", "sentences", "entity_pairs"], float]


class QASource(Strict):
    """Closed-book QA: the evaluation's closed-book chat prompt, loss on the answer tokens only."""

    source: Literal["qa"]
    weight: float = Field(gt=0)


class RaftSource(Strict):
    """RAFT (Zhang et al. 2024): the with-context prompt with the gold chunk kept with ``p_gold``."""

    source: Literal["raft"]
    weight: float = Field(gt=0)
    retriever: str  # from params/retrieval.yaml: its chunker gives the passages, its top_k their number
    p_gold: float = Field(ge=0.0, le=1.0)  # chance the gold chunk is among the passages
    distractors: Literal["other_docs"]  # chunks sampled from documents the question is not about


AnySource = Annotated[CorpusSource | QASource | RaftSource, Field(discriminator="source")]


class AdapterConfig(Strict):
    """One LoRA variant, named for what it changes (``lora-r8-qv``)."""

    name: str
    r: int = Field(gt=0)
    alpha: int = Field(gt=0)
    dropout: float = Field(ge=0.0, lt=1.0)
    target_modules: list[str] | Literal["all-linear"]  # module names, or every linear layer but the output head
    learning_rate: float = Field(gt=0)
    epochs: int = Field(gt=0)
    max_steps: int | None = Field(gt=0)
    batch_size: int = Field(gt=0)
    grad_accum: int = Field(gt=0)
    max_length: int = Field(gt=8)
    batching: Literal["random", "bucketed"]
    checkpoint_every: int | None = Field(gt=0)
    eval_every: int | None = Field(gt=0)  # tune loss, a learning-curve snapshot, best-checkpoint choice; null: none
    tune_questions: int = Field(gt=0)  # tune-split questions in that held-out loss
    patience: int | None = Field(gt=0)  # evaluations without improvement before stopping early; null: never
    min_delta: float = Field(ge=0.0)  # a tune-loss improvement smaller than this does not count
    seed: int
    data: list[AnySource] = Field(min_length=1)

    @field_validator("data")
    @classmethod
    def _one_of_each(cls, data: list) -> list:
        kinds = [s.source for s in data]
        if len(set(kinds)) != len(kinds):
            raise ValueError(f"each data source may appear once, got {kinds}")
        return data


class SearchDim(Strict):
    """One hyperparameter's search range: exactly one of ``choice``, ``grid``, ``loguniform``, ``uniform``.

    ``choice`` samples one of the values per trial; ``grid`` tries every value, in order, ``num_samples``
    times over (with other grids: every combination). Unused kinds are left out of the YAML.
    """

    choice: list[float] | None = Field(None, min_length=1)  # a search range names one kind: the rest are absent
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


INTEGER_HYPERPARAMETERS = ("r", "alpha")


class SweepConfig(Strict):
    """`ragtune sweep`: Ray Tune trials of one adapter's config, stopped early by ASHA on tune loss."""

    adapter: str  # the adapter config every trial starts from (its data, batch size, length)
    num_samples: int = Field(gt=0)  # trials sampled from ``space``
    max_steps: int = Field(gt=0)  # optimiser steps of a trial that is never stopped (ASHA's max_t)
    grace_period: int = Field(gt=0)  # steps every trial runs before ASHA may stop it
    reduction_factor: int = Field(ge=2)  # ASHA keeps the best 1/reduction_factor at each rung
    eval_every: int = Field(gt=0)  # held-out loss every this many steps: what ASHA compares
    tune_questions: int = Field(gt=0)  # tune-split questions in the held-out loss
    max_concurrent: int = Field(gt=0)  # trials at once; each takes ray.num_workers workers
    seed: int  # seeds the sampling of the search space
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


class FinetuneConfig(Strict):
    base_model: BaseModelConfig
    ray: RayConfig
    adapter_defaults: dict[str, Any]  # shared by every adapter; each entry of `adapters` gives its delta
    adapters: list[AdapterConfig] = Field(min_length=1)
    sweep: SweepConfig | None  # only `ragtune sweep` reads it (null: no sweep); the pipeline stages do not

    @model_validator(mode="before")
    @classmethod
    def _apply_defaults(cls, data: Any) -> Any:
        if isinstance(data, dict) and "adapters" in data:
            data = {**data, "adapters": with_defaults(data.get("adapter_defaults", {}), data["adapters"])}
        return data

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

    def adapter(self, name: str) -> AdapterConfig:
        """The adapter called ``name``.

        Raises:
            KeyError: naming the known adapters.
        """
        for a in self.adapters:
            if a.name == name:
                return a
        raise KeyError(f"no adapter {name!r} in params/finetune.yaml; known: {[a.name for a in self.adapters]}")
