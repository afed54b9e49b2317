"""Knowledge augmentation: each fact of the corpus in several phrasings, by deterministic rules.

A fact sticks in a model's weights when it is seen in several forms, not when one document is
read once (Ovadia et al. 2023; EntiGraph, Yang et al. 2025, where synthetic rephrasings of a small
corpus closed most of the gap to RAG). ragtune generates the forms by rule, not by an LLM, so the
same corpus always gives the same training data and nothing is downloaded:

- ``qa_text``: each train pair as "Question: ... / Answer: ...";
- ``statement``: each train pair as 'The answer to the question "..." is ...' (any language);
- ``rewrite``: each train pair rewritten as a declarative sentence when its question has a known
  English shape ("What is the X of Y?" -> "The X of Y is A."), else the ``statement`` form;
- ``sentences``: every sentence of every document on its own (a fact without its neighbours);
- ``entity_pairs``: every sentence that names two or more entities (capitalised words, codes,
  numbers), once per pair, led by the pair: "Bolivia and BOL: Bolivia has the alpha-3 code BOL."

Each form has a weight in params (``augment`` of the corpus source): the number of copies of its
texts (a fraction samples them).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterable

import pandas as pd

SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s+")
ENTITY = re.compile(
    r"\b(?:[A-Z][\w'-]*(?:\s+(?:of|de|the|and|la|le|von|van)?\s*[A-Z][\w'-]*)*|[A-Z0-9][A-Z0-9-]{1,}|\d[\d.,]*)\b"
)
MAX_PAIRS = 6  # entity pairs per sentence: a long list of names would multiply one sentence too often

REWRITES: list[tuple[re.Pattern, str]] = [
    (re.compile(r"^what is the (.+) of (.+?)\??$", re.I), "The {0} of {1} is {a}."),
    (re.compile(r"^what are the (.+) of (.+?)\??$", re.I), "The {0} of {1} are {a}."),
    (re.compile(r"^which (.+?) (?:has|have) (.+?)\??$", re.I), "{a} is the {0} that has {1}."),
    (re.compile(r"^which (.+?) is (.+?)\??$", re.I), "{a} is the {0} that is {1}."),
    (re.compile(r"^who (.+?)\??$", re.I), "{a} {0}."),
    (re.compile(r"^when (?:was|were|did) (.+?)\??$", re.I), "{0}: {a}."),
]


def statement(question: str, answer: str) -> str:
    return f'The answer to the question "{question}" is {answer}.'


def rewrite(question: str, answer: str) -> str:
    """The pair as one declarative sentence, by the first question shape that matches; else :func:`statement`."""
    q = question.strip()
    for pattern, template in REWRITES:
        match = pattern.match(q)
        if match:
            return template.format(*match.groups(), a=answer)
    return statement(question, answer)


def sentences(text: str) -> list[str]:
    """The sentences of a text (split after . ! ? and their CJK forms, and at line breaks)."""
    parts = [s.strip() for line in text.splitlines() for s in SENTENCE_END.split(line)]
    return [s for s in parts if len(s.split()) >= 3 or len(s) >= 12]


def entity_pairs(sentence: str) -> list[str]:
    """One text per pair of distinct entities the sentence names, led by the pair (at most :data:`MAX_PAIRS`)."""
    found = list(dict.fromkeys(m.group(0).strip() for m in ENTITY.finditer(sentence) if len(m.group(0).strip()) > 1))
    pairs = list(itertools.combinations(found, 2))[:MAX_PAIRS]
    return [f"{a} and {b}: {sentence}" for a, b in pairs]


PAIR_FORMS: dict[str, Callable[[str, str], str]] = {
    "qa_text": lambda q, a: f"Question: {q}\nAnswer: {a}",
    "statement": statement,
    "rewrite": rewrite,
}
DOCUMENT_FORMS: dict[str, Callable[[str], Iterable[str]]] = {
    "sentences": sentences,
    "entity_pairs": lambda text: [t for s in sentences(text) for t in entity_pairs(s)],
}
FORMS = (*PAIR_FORMS, *DOCUMENT_FORMS)


def augmented_texts(documents: pd.DataFrame, qa_train: pd.DataFrame, form: str) -> list[str]:
    """The texts of one augmentation ``form`` over the corpus (document forms) or the train pairs (pair forms)."""
    if form in PAIR_FORMS:
        pairs = zip(qa_train["question"], qa_train["answers"], strict=True) if not qa_train.empty else []
        return [PAIR_FORMS[form](q, list(answers)[0]) for q, answers in pairs]
    if form in DOCUMENT_FORMS:
        return [t for text in documents["text"] for t in DOCUMENT_FORMS[form](text)]
    raise ValueError(f"unknown augmentation {form!r}; known: {list(FORMS)}")
