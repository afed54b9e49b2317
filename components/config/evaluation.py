"""``params/evaluation.yaml``: questions, prompts, generation, metrics, costs, statistics, registry, drill."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from components.config.base import Strict


class GenerationConfig(Strict):
    max_new_tokens: int = Field(gt=0)
    batch_size: int = Field(gt=0)
    engine: Literal["transformers", "vllm"]  # vllm: on a GPU with vllm installed, else transformers (logged)
    dtype: Literal["auto", "float32", "bfloat16", "float16"]  # auto: bfloat16 on a GPU, float32 on CPU


class PromptConfig(Strict):
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


class CostConfig(Strict):
    """Prices that turn measured compute time and tokens into money (see docs/decision.md)."""

    cpu_hour: float = Field(ge=0.0)  # price of one CPU-machine hour (one training worker, one index build)
    per_1k_tokens: float = Field(ge=0.0)  # price per 1,000 prompt + completion tokens (0: self-hosted)
    query_volume: int = Field(gt=0)  # queries the fixed costs are spread over (amortisation)


class StatisticsConfig(Strict):
    """Paired bootstrap over the questions."""

    resamples: int = Field(ge=100)  # more: steadier interval ends, slower
    confidence: float = Field(gt=0.5, lt=1.0)
    seed: int
    min_questions: int = Field(ge=1)  # fewer: the recommendation warns that its ties say little


class RegistryConfig(Strict):
    """Where the MLflow model registry keeps the champion and the adapters."""

    name: str = Field(min_length=1)  # registered model of the winning cell
    alias: str = Field(min_length=1)  # alias moved to the winner's version by `ragtune register`
    adapter_prefix: str = Field(min_length=1)  # + adapter name: one registered model per adapter


class DrillConfig(Strict):
    """The knowledge-update drill: hold documents back, add them as new knowledge, time each mix absorbing it."""

    share: float = Field(gt=0.0, lt=1.0)  # documents held back (at least one), drawn with ``seed``
    seed: int
    retriever: str | None  # the RAG arm's retriever; None: the first grid retriever
    adapter: str | None  # the fine-tuning arm's adapter config; None: the first of finetune.yaml
    max_steps: int = Field(gt=0)  # optimiser steps of each drill training run (keeps the drill short)
    max_questions: int | None = Field(gt=0)  # new-knowledge questions scored (None: all)


class EvaluationConfig(Strict):
    experiment: str
    split: Literal["dev", "test"]
    max_questions: int | None = Field(gt=0)
    main_metric: Literal["exact_match", "f1", "rouge_l"]
    grid_retrievers: list[str] | None  # retrievers in the LLM grid; None: every retriever
    generation: GenerationConfig
    prompts: PromptConfig
    answered_threshold: float = Field(gt=0.0, le=1.0)  # main metric at least this: answered (complementarity)
    cost: CostConfig
    statistics: StatisticsConfig
    registry: RegistryConfig
    drill: DrillConfig
