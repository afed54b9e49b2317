"""Training examples for an adapter, built from its data sources (``data:`` in params/finetune.yaml).

Each source has its own strategy function in :data:`SOURCES`:

- ``corpus``: every document cut into ``max_length``-token windows, full language-model loss
  (continued pre-training), plus, with ``augment``, the facts in other phrasings, each form
  weighted (:mod:`components.training.augment`: train pairs as text, statements and rewrites;
  single sentences; entity-pair statements), since facts stick in weights only when seen in
  several forms (Ovadia et al. 2023);
- ``qa``: each train question in the evaluation's closed-book chat prompt, loss on the answer only;
- ``raft``: each train question in the evaluation's *with-context* chat prompt with as many passages
  as the named retriever's ``top_k``: the gold chunk (the chunk of the question's first gold
  document that contains the answer, else its first chunk) with probability ``p_gold``, the other
  passages chunks sampled from other documents (deterministic by seed), in shuffled order; loss
  on the answer only (RAFT, Zhang et al. 2024). A model learns to read the context and to ignore
  distractors.

Tune, dev and test questions are never trained on: :func:`build_examples` keeps the train split itself.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field

import pandas as pd

from components.config import AdapterConfig, CorpusSource, PromptConfig, QASource, RaftSource
from components.llm.generation import chat_prompt, user_message
from components.training.augment import augmented_texts
from components.training.train_step import IGNORE_INDEX

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingInputs:
    """What the data sources draw on: documents, QA pairs of every split, and per-retriever chunks."""

    documents: pd.DataFrame
    qa: pd.DataFrame
    chunks: dict[str, pd.DataFrame] = field(default_factory=dict)  # retriever name -> its chunker's chunks
    top_k: dict[str, int] = field(default_factory=dict)  # retriever name -> passages per prompt

    def train_qa(self) -> pd.DataFrame:
        """Train-split questions only: tune, dev and test questions never reach training."""
        if self.qa.empty:
            return self.qa
        return self.qa[self.qa["split"] == "train"]


def corpus_examples(texts: list[str], tokenizer, max_length: int) -> list[dict]:
    """Windows of ``max_length`` tokens over each text, ending with EOS; loss on every token."""
    examples = []
    for text in texts:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        for start in range(0, len(ids), max_length):
            window = ids[start : start + max_length]
            if len(window) > 1:
                examples.append({"input_ids": window, "labels": list(window)})
    return examples


def chat_example(
    tokenizer, prompts: PromptConfig, question: str, contexts: list[str] | None, answer: str, max_length: int
) -> dict | None:
    """One chat exchange with loss on the answer tokens only; None if the prompt leaves no room."""
    user = user_message(prompts, question, contexts)
    prompt_ids = tokenizer(chat_prompt(tokenizer, prompts.system, user), add_special_tokens=False)["input_ids"]
    full_ids = tokenizer(chat_prompt(tokenizer, prompts.system, user, answer=answer), add_special_tokens=False)[
        "input_ids"
    ]
    if full_ids[: len(prompt_ids)] != prompt_ids or len(full_ids) <= len(prompt_ids):
        raise ValueError(f"chat template does not extend the prompt for question {question!r}")
    if len(prompt_ids) >= max_length:
        return None
    full_ids = full_ids[:max_length]
    return {"input_ids": full_ids, "labels": [IGNORE_INDEX] * len(prompt_ids) + full_ids[len(prompt_ids) :]}


def qa_examples(qa: pd.DataFrame, tokenizer, prompts: PromptConfig, max_length: int) -> list[dict]:
    """Closed-book chat examples, one per (question, first answer); loss on the answer only."""
    examples = [
        chat_example(tokenizer, prompts, q, None, answers[0], max_length)
        for q, answers in zip(qa["question"], qa["answers"], strict=True)
    ]
    return [e for e in examples if e is not None]


def gold_chunk(chunks: pd.DataFrame, doc_id: str, answers: list[str]) -> str | None:
    """The first chunk of ``doc_id`` that contains an answer, else its first chunk (None if none)."""
    own = chunks[chunks["doc_id"] == doc_id]
    for text in own["text"]:
        if any(a and a in text for a in answers):
            return text
    return own["text"].iloc[0] if len(own) else None


def raft_contexts(
    qa: pd.DataFrame, chunks: pd.DataFrame, top_k: int, p_gold: float, seed: int
) -> list[tuple[str, list[str], bool]]:
    """Per question: (question, passages, gold kept), deterministic by ``seed``.

    With probability ``p_gold`` the passages are the gold chunk and ``top_k - 1`` distractors,
    otherwise ``top_k`` distractors; distractors are chunks of documents the question is not about.
    """
    rng = random.Random(seed)
    out = []
    doc_ids = chunks["doc_id"].to_numpy()
    texts = chunks["text"].tolist()
    for question, answers, gold_docs in zip(qa["question"], qa["answers"], qa["doc_ids"], strict=True):
        answers = list(answers)
        gold = gold_chunk(chunks, gold_docs[0], answers) if len(gold_docs) else None
        others = [i for i, d in enumerate(doc_ids) if d not in set(gold_docs)]
        keep = gold is not None and rng.random() < p_gold
        n_distractors = top_k - 1 if keep else top_k
        if len(others) < n_distractors:
            raise ValueError(f"raft: only {len(others)} chunks outside the gold documents, need {n_distractors}")
        passages = [texts[i] for i in rng.sample(others, n_distractors)] + ([gold] if keep else [])
        rng.shuffle(passages)
        out.append((question, passages, keep))
    return out


def raft_examples(
    qa: pd.DataFrame,
    chunks: pd.DataFrame,
    tokenizer,
    prompts: PromptConfig,
    max_length: int,
    top_k: int,
    p_gold: float,
    seed: int,
) -> list[dict]:
    """RAFT chat examples in the evaluation's with-context prompt; loss on the answer only.

    Examples whose prompt does not fit ``max_length`` are dropped (and counted in the log).
    """
    examples = []
    contexts = raft_contexts(qa, chunks, top_k, p_gold, seed)
    for (question, passages, _), answers in zip(contexts, qa["answers"], strict=True):
        example = chat_example(tokenizer, prompts, question, passages, answers[0], max_length)
        if example is not None:
            examples.append(example)
    if len(examples) < len(qa):
        logger.warning(
            "raft: %d of %d prompts exceed max_length %d and were dropped", len(qa) - len(examples), len(qa), max_length
        )
    return examples


def _corpus(inputs: TrainingInputs, source: CorpusSource, tokenizer, cfg: AdapterConfig, prompts: PromptConfig):
    """The documents, plus each augmentation form's texts in the number of copies its weight asks for."""
    examples = corpus_examples(inputs.documents["text"].tolist(), tokenizer, cfg.max_length)
    for form, weight in source.augment.items():
        texts = augmented_texts(inputs.documents, inputs.train_qa(), form)
        built = corpus_examples(texts, tokenizer, cfg.max_length)
        logger.info("adapter %s: %d %s texts (weight %g)", cfg.name, len(built), form, weight)
        examples += weighted(built, weight, cfg.seed)
    return examples


def _qa(inputs: TrainingInputs, source: QASource, tokenizer, cfg: AdapterConfig, prompts: PromptConfig):
    return qa_examples(inputs.train_qa(), tokenizer, prompts, cfg.max_length)


def _raft(inputs: TrainingInputs, source: RaftSource, tokenizer, cfg: AdapterConfig, prompts: PromptConfig):
    if source.retriever not in inputs.chunks:
        raise ValueError(f"adapter {cfg.name!r}: no chunks given for raft retriever {source.retriever!r}")
    return raft_examples(
        inputs.train_qa(),
        inputs.chunks[source.retriever],
        tokenizer,
        prompts,
        cfg.max_length,
        inputs.top_k[source.retriever],
        source.p_gold,
        cfg.seed,
    )


SOURCES = {"corpus": _corpus, "qa": _qa, "raft": _raft}


def weighted(examples: list[dict], weight: float, seed: int) -> list[dict]:
    """``round(weight * n)`` examples: whole copies, then a seeded sample for the fraction."""
    target = round(weight * len(examples))
    whole, rest = divmod(target, len(examples)) if examples else (0, 0)
    return examples * whole + random.Random(seed).sample(examples, rest)


def build_examples(inputs: TrainingInputs, tokenizer, cfg: AdapterConfig, prompts: PromptConfig) -> list[dict]:
    """All training examples an adapter config asks for, each source through its strategy function."""
    examples = []
    for source in cfg.data:
        built = SOURCES[source.source](inputs, source, tokenizer, cfg, prompts)
        logger.info("adapter %s: %d %s examples (weight %g)", cfg.name, len(built), source.source, source.weight)
        examples += weighted(built, source.weight, cfg.seed)
    return examples


def held_out_examples(
    inputs: TrainingInputs, tokenizer, cfg: AdapterConfig, prompts: PromptConfig, n_questions: int, split: str = "tune"
) -> list[dict]:
    """Answer-only examples of the first ``n_questions`` of ``split``, in the adapter's own format.

    The adapter's ``qa`` and ``raft`` sources are built over those questions (a corpus source has
    no held-out text: every document is trained on); an adapter with neither gets closed-book QA.
    The loss on them is what a sweep compares: how well the adapter answers unseen questions.
    """
    questions = inputs.qa[inputs.qa["split"] == split].head(n_questions)
    if questions.empty:
        raise ValueError(f"no {split!r} questions to measure a held-out loss on")
    view = TrainingInputs(inputs.documents, questions.assign(split="train"), inputs.chunks, inputs.top_k)
    sources = [s for s in cfg.data if s.source in ("qa", "raft")] or [QASource(source="qa", weight=1.0)]
    return [e for source in sources for e in SOURCES[source.source](view, source, tokenizer, cfg, prompts)]


def examples_and_dev(
    inputs: TrainingInputs, tokenizer, cfg: AdapterConfig, prompts: PromptConfig
) -> tuple[list[dict], list[dict]]:
    """An adapter's training examples and its held-out tune examples (none, with a warning, when there are no
    tune questions or the adapter has no ``eval_every``: it then keeps its last weights and never stops early)."""
    examples = build_examples(inputs, tokenizer, cfg, prompts)
    if cfg.eval_every is None:
        return examples, []
    try:
        return examples, held_out_examples(inputs, tokenizer, cfg, prompts, cfg.tune_questions)
    except ValueError as exc:
        logger.warning("adapter %s: %s: no tune loss, no early stopping, the last weights are kept", cfg.name, exc)
        return examples, []
