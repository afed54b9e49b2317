"""Questions from documents, end to end: which candidates, written and answered back in batches, filtered.

:func:`should_generate` says whether the stage has anything to do (``questions.mode`` against the
raw folder). :func:`generate_pairs` walks the candidates (:func:`components.questions.spans.candidates`:
spread over documents) in batches: the generator writes a question for each, the cheap filters run,
the survivors are answered back from their passage (the round trip), and near-duplicates of kept
questions are dropped, until ``target`` pairs are kept or ``max_candidates`` were tried. It counts
what each step kept (the yield the report shows) and keeps a few rejected examples per filter.

Every kept pair records its source document and chunk; its leakage ``group`` is ``gen:<document>``,
so all questions of one document land in one split (leak-safe: a train question never states a dev
or test answer in other words).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd

from components.config import QuestionsConfig
from components.questions.filters import NearDuplicates, clean_question, form, give_away, round_trip
from components.questions.spans import Candidate, candidates

logger = logging.getLogger(__name__)

GENERATED = "generated"
STEPS = ("written", "form", "give_away", "round_trip", "near_duplicate")
EXAMPLES_PER_STEP = 3


def should_generate(mode: str, has_questions: bool) -> tuple[bool, str]:
    """Whether the ``questions`` stage generates, and why (or why not)."""
    if mode == "off":
        return False, "questions.mode is off"
    if mode == "auto" and has_questions:
        return False, "data/raw has a question file (questions.mode: add generates beside it)"
    return True, "no question file in data/raw" if not has_questions else "questions.mode is add"


def group_of(doc_id: str) -> str:
    """The leakage group of a document's generated questions: they share one split."""
    return f"gen:{doc_id}"


def pair_record(c: Candidate, question: str) -> dict:
    """A kept pair in the QA schema, with its origin, source chunk and passage."""
    key = hashlib.sha256(f"{c.chunk_id}\n{c.answer}\n{question}".encode()).hexdigest()[:12]
    return {
        "id": f"gen-{key}",
        "question": question,
        "answers": [c.answer],
        "doc_ids": [c.doc_id],
        "group": group_of(c.doc_id),
        "origin": GENERATED,
        "chunk_id": c.chunk_id,
        "passage": c.passage,
    }


@dataclass
class Yield:
    """What each step kept, with a few of the pairs it dropped."""

    candidates: int = 0
    kept: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STEPS, 0))
    dropped: dict[str, list[str]] = field(default_factory=lambda: {s: [] for s in STEPS})

    def drop(self, step: str, c: Candidate, question: str, reply: str = "") -> None:
        if len(self.dropped[step]) < EXAMPLES_PER_STEP:
            said = f" (answered back: {reply!r})" if reply else ""
            self.dropped[step].append(f"{question!r} -> {c.answer!r}{said}")

    def steps(self) -> list[dict]:
        before, rows = self.candidates, []
        for step in STEPS:
            rows.append({"step": step, "kept": self.kept[step], "dropped": before - self.kept[step],
                         "examples": self.dropped[step]})  # fmt: skip
            before = self.kept[step]
        return rows


def _screen(batch: list[Candidate], questions: list[str], cfg: QuestionsConfig, y: Yield) -> list[tuple]:
    """The cheap filters (written, form, give-away) over one batch; the survivors as (candidate, question)."""
    out = []
    for c, raw in zip(batch, questions, strict=True):
        q = clean_question(raw)
        if not q:
            y.drop("written", c, raw)
            continue
        y.kept["written"] += 1
        if not form(q, cfg.filters):
            y.drop("form", c, q)
            continue
        y.kept["form"] += 1
        if give_away(q, c.answer, cfg.filters):
            y.drop("give_away", c, q)
            continue
        y.kept["give_away"] += 1
        out.append((c, q))
    return out


def generate_pairs(
    chunks: pd.DataFrame,
    cfg: QuestionsConfig,
    ask: Callable[[list[Candidate]], list[str]],
    answer_back: Callable[[list[tuple[Candidate, str]]], list[str]],
    existing: list[str] = (),
) -> tuple[list[dict], Yield]:
    """Kept pairs (QA records, :func:`pair_record`) and the yield of every step (see the module doc).

    Args:
        ask: writes a question for each candidate; answer_back: answers each (candidate, question)
            from the candidate's passage. Both are the generator's (:class:`components.questions.generate.Generator`).
        existing: the team's questions: a generated one too close to any of them is a near-duplicate.
    """
    pool = candidates(chunks, cfg.spans_per_chunk, cfg.seed)[: cfg.max_candidates]
    dedupe, y, kept = NearDuplicates(cfg.filters.near_duplicate, list(existing)), Yield(), []
    step, started = max(cfg.generator.batch_size * 4, 1), time.perf_counter()
    for start in range(0, len(pool), step):
        batch = pool[start : start + step]
        y.candidates += len(batch)
        survivors = _screen(batch, ask(batch), cfg, y)
        replies = answer_back(survivors) if survivors else []
        for (c, q), reply in zip(survivors, replies, strict=True):
            if not round_trip(reply, c.answer, cfg.filters):
                y.drop("round_trip", c, q, reply)
                continue
            y.kept["round_trip"] += 1
            if not dedupe.admit(q):
                y.drop("near_duplicate", c, q)
                continue
            y.kept["near_duplicate"] += 1
            kept.append(pair_record(c, q))
        took = time.perf_counter() - started
        logger.info("questions: %d kept of %d candidates (%.0f s)", len(kept), y.candidates, took)
        if len(kept) >= cfg.target:
            break
    return kept[: cfg.target], y
