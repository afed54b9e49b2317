"""The split of the questions into train, tune, dev and test: by leakage group, seeded, stable.

Questions that belong together form one *leakage group*; a group always lands in one split (or a
test question would be trained on in another wording) and the bootstrap resamples it as one unit
(or correlated questions would pass for independent evidence). A group unions the questions that

- share a ``group`` (paraphrases of one fact, as the team marked them);
- have the same normalised text;
- are near-duplicates: they share a normalised gold answer and their word TF-IDF cosine is at least
  ``split.near_duplicate`` ("who wrote the patriotic song sare jahan se achcha?" and "who composed the
  famous song ' sare jahan se acha '?");
- with ``split.by_document``, share a gold document.

Each choice is made on its own questions (docs/decision.md): ``tune`` (held-out train groups, never
trained on) picks checkpoints, stops training early, scores learning curves and picks retrievers;
``dev`` picks the cell; ``test`` confirms it.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import defaultdict

import numpy as np
import pandas as pd

from components.config import SplitConfig

SPLITS = ("train", "tune", "dev", "test")


def normalize_question(question: str) -> str:
    """The key under which two questions count as the same question (for leakage checks)."""
    return re.sub(r"\s+", " ", unicodedata.normalize("NFKC", question).casefold()).strip(" ?.!")


def _answer_key(answer: str) -> str:
    return re.sub(r"[^\w ]+", "", normalize_question(str(answer))).strip()


class _Union:
    """Union-find over string keys; a component's representative is its smallest key (stable under order)."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, x: str) -> str:
        self.parent.setdefault(x, x)
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def join(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def near_duplicate_pairs(questions: list[str], answers: list[list[str]], threshold: float) -> list[tuple[int, int]]:
    """Pairs of questions (by position) that share a normalised gold answer and whose word TF-IDF cosine
    (IDF over all ``questions``) is at least ``threshold``. Only questions sharing an answer are compared,
    so the cost follows the answer buckets, not the square of the question count."""
    if len(questions) < 2:
        return []
    from sklearn.feature_extraction.text import TfidfVectorizer

    buckets: dict[str, list[int]] = defaultdict(list)
    for i, golds in enumerate(answers):
        for key in {_answer_key(a) for a in golds} - {""}:
            buckets[key].append(i)
    shared = [rows for rows in buckets.values() if len(rows) > 1]
    if not shared:
        return []
    try:
        vectors = TfidfVectorizer(analyzer="word", sublinear_tf=True).fit_transform(
            [normalize_question(q) for q in questions]
        )
    except ValueError:  # no word at all in any question (sklearn: "empty vocabulary")
        return []
    pairs = set()
    for rows in shared:
        close = np.triu((vectors[rows] @ vectors[rows].T).toarray() >= threshold, k=1)
        pairs |= {(rows[a], rows[b]) for a, b in zip(*np.nonzero(close), strict=True)}
    return sorted(pairs)


def leakage_groups(qa: pd.DataFrame, cfg: SplitConfig | None = None) -> list[str]:
    """One key per question: its leakage group (see the module docstring).

    Args:
        qa: ``question`` and ``group`` (and ``answers``, ``doc_ids`` when ``cfg`` asks for near-duplicates or
            documents).
        cfg: the split params; None: paraphrase groups and identical questions only.
    """
    union = _Union()
    keys = []
    for group, question in zip(qa["group"], qa["question"], strict=True):
        q_key = "q:" + normalize_question(question)
        g_key = "g:" + group if group else q_key
        union.join(g_key, q_key)
        keys.append(g_key)
    if cfg is not None and cfg.near_duplicate <= 1:
        pairs = near_duplicate_pairs(qa["question"].tolist(), [list(a) for a in qa["answers"]], cfg.near_duplicate)
        for a, b in pairs:
            union.join(keys[a], keys[b])
    if cfg is not None and cfg.by_document:
        for key, doc_ids in zip(keys, qa["doc_ids"], strict=True):
            for doc in doc_ids:
                union.join(key, "d:" + doc)
    return [union.find(k) for k in keys]


def bucket(key: str, cfg: SplitConfig) -> str:
    """The split of a leakage group: a seeded hash of its key, cut by the shares (test, dev, tune, train)."""
    u = int(hashlib.sha256(f"{cfg.seed}:{key}".encode()).hexdigest()[:12], 16) / 16**12
    for split, upto in (("test", cfg.test), ("dev", cfg.test + cfg.dev), ("tune", cfg.test + cfg.dev + cfg.tune)):
        if u < upto:
            return split
    return "train"


def split_questions(qa: pd.DataFrame, cfg: SplitConfig, groups: list[str] | None = None) -> pd.Series:
    """Assign train/tune/dev/test per leakage group by a seeded hash: deterministic and stable.

    Adding questions never moves an existing question to another split, unless a new question joins two
    existing groups into one (a paraphrase, near-duplicate or shared document across them).

    Args:
        groups: the questions' leakage groups (:func:`leakage_groups`); None: computed here.
    """
    keys = groups if groups is not None else leakage_groups(qa, cfg)
    return pd.Series([bucket(k, cfg) for k in keys], index=qa.index, name="split")
