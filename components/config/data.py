"""``params/data.yaml``: where artifacts live, how questions are split, how documents are chunked."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from components.config.base import Strict


class Paths(Strict):
    """Folders each stage reads and writes, relative to the project root (files in them: ``components.catalog``)."""

    raw: str
    demo: str
    questions: str  # the questions stage's output: generated pairs and their report
    processed: str
    index: str
    models: str
    eval: str
    metrics: str
    reports: str
    cache: str  # prediction cache: not a DVC output, so it survives re-runs
    scratch: str  # work folders of the drill and the sweep: never read by a pipeline stage
    probes: str  # out-of-domain probe questions (JSONL): each adapter's retention of what the base model answers


class SplitConfig(Strict):
    """Deterministic split of the questions by leakage group (``components/data/split.py``)."""

    seed: int
    dev: float = Field(ge=0.0, lt=1.0)
    test: float = Field(gt=0.0, lt=1.0)
    tune: float = Field(ge=0.0, lt=1.0)  # held out of training: checkpoints, early stopping, curves, retrievers
    near_duplicate: float = Field(gt=0.0, le=1.01)  # TF-IDF cosine of two questions with a shared answer; >1: off
    by_document: bool  # questions about one gold document share a split and a bootstrap group

    @model_validator(mode="after")
    def _leaves_train(self) -> SplitConfig:
        if self.dev + self.test + self.tune >= 1.0:
            raise ValueError("split.dev + split.test + split.tune must leave some questions for train")
        return self


class ParagraphChunkerConfig(Strict):
    """Paragraph packing: whole paragraphs packed into chunks of at most ``max_chars``."""

    kind: Literal["paragraph"]
    max_chars: int = Field(gt=50)


class SentenceChunkerConfig(Strict):
    """Sentence packing: whole sentences packed into chunks of at most ``max_chars``."""

    kind: Literal["sentence"]
    max_chars: int = Field(gt=50)
    overlap: int = Field(ge=0, description="sentences repeated from the end of the previous chunk")


class TokenChunkerConfig(Strict):
    """Fixed windows of ``size`` tokens, each starting ``size - overlap`` tokens after the last."""

    kind: Literal["token"]
    size: int = Field(gt=0)
    overlap: int = Field(ge=0)

    @model_validator(mode="after")
    def _overlap_below_size(self) -> TokenChunkerConfig:
        if self.overlap >= self.size:
            raise ValueError(f"overlap ({self.overlap}) must be smaller than size ({self.size})")
        return self


class HeadingChunkerConfig(Strict):
    """Markdown sections: one chunk per heading (up to ``max_level``), long ones cut at ``max_chars``."""

    kind: Literal["heading"]
    max_level: int = Field(ge=1, le=6)
    max_chars: int = Field(gt=50)


AnyChunkerConfig = Annotated[
    ParagraphChunkerConfig | SentenceChunkerConfig | TokenChunkerConfig | HeadingChunkerConfig,
    Field(discriminator="kind"),
]


class DataConfig(Strict):
    paths: Paths
    max_file_mb: float = Field(gt=0)
    split: SplitConfig
    chunkers: dict[str, AnyChunkerConfig] = Field(min_length=1)
