"""The split of the questions into train, dev and test: by leakage group, seeded, stable.

Questions that share a ``group`` (paraphrases of one fact) or the same normalised text form one
leakage group and always land in the same split, or a test question would be trained on in
another wording.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

import pandas as pd

from components.config import SplitConfig

SPLITS = ("train", "dev", "test")


def normalize_question(question: str) -> str:
    """The key under which two questions count as the same question (for leakage checks)."""
    return re.sub(r"\s+", " ", unicodedata.normalize("NFKC", question).casefold()).strip(" ?.!")


def leakage_groups(qa: pd.DataFrame) -> list[str]:
    """Union questions that share a ``group`` or a normalised question text into one key.

    The key is what the split keeps together, and what the bootstrap resamples as one unit.
    """
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    keys = []
    for group, question in zip(qa["group"], qa["question"], strict=True):
        q_key = "q:" + normalize_question(question)
        g_key = "g:" + group if group else q_key
        ra, rb = find(g_key), find(q_key)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
        keys.append(g_key)
    return [find(k) for k in keys]


def split_questions(qa: pd.DataFrame, cfg: SplitConfig) -> pd.Series:
    """Assign train/dev/test per leakage group by a seeded hash: deterministic and stable.

    Adding new questions never moves an existing question to another split.
    """

    def bucket(key: str) -> str:
        u = int(hashlib.sha256(f"{cfg.seed}:{key}".encode()).hexdigest()[:12], 16) / 16**12
        return "test" if u < cfg.test else "dev" if u < cfg.test + cfg.dev else "train"

    return pd.Series([bucket(k) for k in leakage_groups(qa)], index=qa.index, name="split")
