"""Candidate answers: short spans of a passage that a question can ask for (answer first).

A span is a name (capitalised words, with "of", "de", "the" inside), a date, a year or a number
with its unit: what factoid questions ask for, and what the round trip can check by string.
Spans are found by rule, per sentence; one that opens its sentence as a single capitalised word is
skipped (any sentence starts with one). The candidates of a corpus are ordered for spread
(:func:`candidates`): every document before any document's second candidate, every passage of a
document before its second span, each level shuffled by the seed.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

import pandas as pd

from components.questions.filters import STOPWORDS

MAX_SPAN_WORDS = 6
MAX_SPAN_CHARS = 60
MIN_SENTENCE_WORDS = 5
MAX_SENTENCE_CHARS = 400

_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
_MONTH = r"(?:January|February|March|April|May|June|July|August|September|October|November|December)"
_SPAN = re.compile(
    rf"\b{_MONTH}\s+\d{{1,2}},\s+\d{{4}}\b"  # October 14, 1965
    rf"|\b\d{{1,2}}\s+{_MONTH}\s+\d{{4}}\b"  # 14 October 1965
    r"|\b\d[\d,.]*(?:\s+(?:million|billion|thousand|hundred|percent|per cent|km|kilometres|miles|metres|meters|"
    r"kg|tonnes|years|days|hours|minutes|seconds|bytes|KB|MB|GB|people|episodes|seasons|times))?\b"
    r"|\b[A-Z][\w'’.-]*(?:\s+(?:(?:of|de|la|le|the|and|von|van|da|du|del)\s+)*[A-Z][\w'’.-]*)*"
)


@dataclass(frozen=True)
class Candidate:
    """One (document, passage, answer span) to write a question for."""

    doc_id: str
    chunk_id: str
    passage: str  # the chunk's text: what the round trip answers from
    sentence: str  # the sentence that holds the answer: what the question is written from
    answer: str


def sentences(text: str) -> list[str]:
    """The sentences of a passage that are long enough to ask about (markdown heading lines excluded)."""
    out = []
    for s in _SENTENCE.split(text):
        s = s.strip()
        if s and not s.startswith("#") and len(s.split()) >= MIN_SENTENCE_WORDS and len(s) <= MAX_SENTENCE_CHARS:
            out.append(s)
    return out


def spans(sentence: str) -> list[str]:
    """Candidate answers in one sentence, in order, each once (see the module doc)."""
    found: list[str] = []
    for m in _SPAN.finditer(sentence):
        span = re.sub(r"['’]s$", "", m.group(0)).strip(" ,;:-")
        span = re.sub(r"(?<=[a-z]{2})\.$", "", span)  # a sentence's full stop, not an abbreviation's ("U.S.")
        words = span.split()
        if not span or len(words) > MAX_SPAN_WORDS or len(span) > MAX_SPAN_CHARS or span.casefold() in STOPWORDS:
            continue
        if m.start() == 0 and len(words) == 1 and not span[0].isdigit():
            continue  # the sentence's first word: capitalised because it comes first
        if span not in found:
            found.append(span)
    return found


def passage_candidates(doc_id: str, chunk_id: str, passage: str, k: int, rng: random.Random) -> list[Candidate]:
    """Up to ``k`` candidates of one passage, each a different answer, drawn by ``rng``."""
    pool = [(s, a) for s in sentences(passage) for a in spans(s)]
    unique = list({a.casefold(): (s, a) for s, a in pool}.values())
    picked = rng.sample(unique, min(k, len(unique)))
    return [Candidate(doc_id, chunk_id, passage, s, a) for s, a in picked]


def candidates(chunks: pd.DataFrame, per_chunk: int, seed: int) -> list[Candidate]:
    """Every passage's candidates, ordered for spread over documents and passages (see the module doc)."""
    rng = random.Random(seed)
    by_doc: dict[str, list[list[Candidate]]] = {}
    for doc_id, chunk_id, text in zip(chunks["doc_id"], chunks["chunk_id"], chunks["text"], strict=True):
        found = passage_candidates(doc_id, chunk_id, text, per_chunk, rng)
        if found:
            by_doc.setdefault(doc_id, []).append(found)
    ordered: dict[str, list[Candidate]] = {}
    for doc_id in sorted(by_doc):
        passages = by_doc[doc_id]
        rng.shuffle(passages)
        ordered[doc_id] = [p[r] for r in range(per_chunk) for p in passages if r < len(p)]
    docs = sorted(ordered)
    rng.shuffle(docs)
    longest = max((len(v) for v in ordered.values()), default=0)
    return [ordered[d][r] for r in range(longest) for d in docs if r < len(ordered[d])]
