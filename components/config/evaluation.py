"""``params/evaluation.yaml``: questions, prompts, generation, metrics, costs, statistics, registry, gate, drill."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from components.config.base import Strict


class GenerationConfig(Strict):
    """Greedy decoding. The answer cap (``max_new_tokens``) is set per run from the train answers."""

    max_new_tokens: int = Field(gt=0)  # the cap's upper bound (and the cap itself once set)
    min_new_tokens: int = Field(gt=0)  # the cap's lower bound
    cap_percentile: float = Field(gt=0, le=100)  # the cap: this percentile of the train answers' length in tokens
    batch_size: int = Field(gt=0)
    engine: Literal["transformers", "vllm"]  # vllm: on a GPU with vllm installed, else transformers (logged)
    dtype: Literal["auto", "float32", "bfloat16", "float16"]  # auto: bf16 on a GPU or a CPU with bf16 in hardware

    @model_validator(mode="after")
    def _bounds(self) -> GenerationConfig:
        if self.min_new_tokens > self.max_new_tokens:
            raise ValueError(f"min_new_tokens ({self.min_new_tokens}) exceeds max_new_tokens ({self.max_new_tokens})")
        return self


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


class FewShotConfig(Strict):
    """Few-shot prompting: a baseline that needs no training (train-split pairs shown before the question)."""

    k: int = Field(gt=0)  # example pairs per prompt
    seed: int  # which train pairs (the same for every question)
    models: list[str]  # model variants ("base" or adapter names) that also answer with the few-shot prompt


class GridConfig(Strict):
    """Which retrievers enter the LLM grid: chosen by their tune retrieval scores, unless pinned."""

    retrievers: list[str] | None  # a pinned list; null: chosen by `metric` on tune
    metric: Literal["hit_rate_at_k", "recall_at_k", "mrr_at_k", "ndcg_at_k"]
    margin: float = Field(ge=0.0)  # retrievers within this of the best one's tune score enter too
    max_retrievers: int = Field(gt=0)  # at most this many (best first, then faster): each adds a cell per model


class LearningCurveConfig(Strict):
    """Each adapter's training snapshots scored by generation on the tuning slice (never dev or test)."""

    questions: int = Field(gt=0)  # tune-split questions each snapshot answers
    min_gain: float = Field(ge=0.0)  # a last gain above this flags the adapter as still improving


class ProbesConfig(Strict):
    """Out-of-domain probes (``paths.probes``): what fine-tuning costs outside the corpus."""

    enabled: bool  # False: no probe answers, no retention in the report
    max_questions: int | None = Field(gt=0)  # the first N probes (None: all) the base model answers
    metric: Literal["exact_match", "f1", "answer_contained", "rouge_l"]  # what "the base model answers it" means
    max_new_tokens: int = Field(gt=0)  # the probes' own answer cap (the grid's follows the team's answers)


class ParallelConfig(Strict):
    """Where the grid's answers are generated (components/evaluation/executors.py)."""

    workers: int = Field(gt=0)  # 1: in this process; more: that many Ray actors (RAY_ADDRESS: on that cluster)
    cpus_per_worker: int = Field(gt=0)  # CPUs (and torch threads) per actor
    gpus_per_worker: float = Field(ge=0)  # GPUs per actor (a fraction shares one); 0: the actors see no GPU
    timed_cost: float = Field(gt=0)  # a latency-pass answer (one at a time) costs this many batched answers


class TracingConfig(Strict):
    """How ``ragtune evaluate`` sends each question's trace to MLflow (components/tracking/genai.py)."""

    span_batch: int = Field(gt=0)  # spans per request to the tracking store (MLflow sends them in the background)


class CostConfig(Strict):
    """Prices that turn measured compute time and tokens into money (see docs/decision.md)."""

    cpu_hour: float = Field(ge=0.0)  # price of one CPU-machine hour (one training worker, one index build)
    per_1k_tokens: float = Field(ge=0.0)  # price per 1,000 prompt + completion tokens (0: self-hosted)
    query_volume: int = Field(gt=0)  # queries the fixed costs are spread over (amortisation)


class StatisticsConfig(Strict):
    """Paired bootstrap over leakage groups of questions, and the verdict of each cell against the best."""

    resamples: int = Field(ge=100)  # more: steadier interval ends, slower
    confidence: float = Field(gt=0.5, lt=1.0)  # simultaneous over the comparisons with the best (Bonferroni)
    seed: int
    margin: float = Field(ge=0.0)  # practical equivalence on the main metric: within it of the best counts as as good
    min_groups: int = Field(ge=1)  # fewer independent groups: the report warns and `register` refuses unless allowed


class RegistryConfig(Strict):
    """Where the MLflow model registry keeps the champion and the adapters."""

    name: str = Field(min_length=1)  # registered model of the winning cell
    alias: str = Field(min_length=1)  # alias moved to the winner's version by `ragtune register`
    adapter_prefix: str = Field(min_length=1)  # + adapter name: one registered model per adapter
    anchor_alias: str = Field(min_length=1)  # the best champion so far (gate.anchor: best-ever)


class GateConfig(Strict):
    """The gate in front of the champion alias (``ragtune register``; docs/operations.md, "The gate")."""

    split: Literal["test", "dev"]  # questions neither the new cell nor the champion was chosen on: test
    margin: float = Field(gt=0.0, lt=1.0)  # largest tolerated drop of the main metric (non-inferiority margin)
    max_questions: int | None = Field(gt=0)  # questions compared (None: the whole split)
    judge_only: bool  # True: the verdict and its exit code only, the registry left alone (CI on pull requests)
    allow_few_groups: bool  # True: judge on fewer than statistics.min_groups groups (judge-only runs only)
    allow_unconfirmed: bool  # True: register a recommendation whose choice test did not confirm
    anchor: Literal["none", "best-ever"]  # best-ever: also non-inferior to the best champion so far

    @model_validator(mode="after")
    def _few_groups_never_register(self) -> GateConfig:
        if self.allow_few_groups and not self.judge_only:
            raise ValueError(
                "gate.allow_few_groups: true registers a cell judged on too few question groups: "
                "set it only with gate.judge_only: true (a registering run uses the team's full params)"
            )
        return self


class DrillConfig(Strict):
    """The knowledge-update drill: hold documents back, add them as new knowledge, time each mix absorbing it."""

    share: float = Field(gt=0.0, lt=1.0)  # documents held back (at least one), drawn with ``seed``
    seed: int
    retriever: str | None  # the RAG arm's retriever; None: the recommended mix's (best.json)
    adapter: str | None  # the fine-tuning arm's adapter; None: the recommended mix's (its own budget)
    max_questions: int | None = Field(gt=0)  # new-knowledge questions scored (None: all)
    changed: str | None  # a raw-layout folder of changed versions of the documents (same ids): the facts change


class EvaluationConfig(Strict):
    experiment: str
    max_questions: int | None = Field(gt=0)  # per split (dev chooses, test confirms); null: all
    test_cells: Literal["standing", "families", "all"]  # which cells answer test (components/evaluation/protocol.py)
    main_metric: Literal["exact_match", "f1", "rouge_l", "answer_contained", "semantic_similarity"]
    grid: GridConfig
    generation: GenerationConfig
    prompts: PromptConfig
    few_shot: FewShotConfig
    long_answer_words: int = Field(gt=0)  # train answers this long (median, in words): also score semantic similarity
    latency_questions: int = Field(gt=0)  # per cell, answered one at a time to time a query end to end
    brevity_gap: float = Field(gt=0.0, le=1.0)  # answer_contained this far above F1: the report warns of wordy answers
    learning_curve: LearningCurveConfig
    probes: ProbesConfig
    parallel: ParallelConfig
    tracing: TracingConfig
    answered_threshold: float = Field(gt=0.0, le=1.0)  # main metric at least this: answered (complementarity)
    cost: CostConfig
    statistics: StatisticsConfig
    registry: RegistryConfig
    gate: GateConfig
    drill: DrillConfig
