"""``params/questions.yaml``: questions from documents (the ``questions`` stage, docs/questions.md)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from components.config.base import Strict
from components.config.evaluation import GenerationConfig


class GeneratorConfig(Strict):
    """The model that writes the questions and answers them back."""

    model: str = Field(min_length=1)  # "base": the shipped base model; else a model folder or a cached HF id
    engine: Literal["transformers", "vllm"]
    dtype: Literal["auto", "float32", "bfloat16", "float16"]
    batch_size: int = Field(gt=0)
    max_new_tokens: int = Field(gt=0)

    def generation(self, max_new_tokens: int | None = None) -> GenerationConfig:
        """The generation settings of one call (greedy, capped at ``max_new_tokens``)."""
        cap = max_new_tokens or self.max_new_tokens
        return GenerationConfig(
            max_new_tokens=cap, min_new_tokens=1, cap_percentile=100, batch_size=self.batch_size,
            engine=self.engine, dtype=self.dtype,
        )  # fmt: skip


class QuestionPrompts(Strict):
    system: str
    question: str
    examples: list[tuple[str, str]]
    round_trip_system: str
    round_trip: str
    round_trip_examples: list[tuple[str, str]]

    @model_validator(mode="after")
    def _placeholders(self) -> QuestionPrompts:
        for name, template, needed in (
            ("question", self.question, ("{sentence}", "{answer}")),
            ("round_trip", self.round_trip, ("{passage}", "{question}")),
        ):
            missing = [p for p in needed if p not in template]
            if missing:
                raise ValueError(f"prompts.{name} must contain {missing}")
        return self


class QuestionFilters(Strict):
    min_words: int = Field(ge=1)
    max_answer_overlap: float = Field(ge=0.0, le=1.0)
    round_trip: Literal["contains", "f1"]
    min_f1: float = Field(gt=0.0, le=1.0)
    round_trip_max_new_tokens: int = Field(gt=0)
    near_duplicate: float = Field(gt=0.0, le=1.0)


class QuestionsConfig(Strict):
    mode: Literal["auto", "add", "off"]
    target: int = Field(gt=0)
    max_candidates: int = Field(gt=0)
    seed: int
    chunker: str
    spans_per_chunk: int = Field(gt=0)
    generator: GeneratorConfig
    prompts: QuestionPrompts
    filters: QuestionFilters
