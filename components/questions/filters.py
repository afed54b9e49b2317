"""The filters a generated question must pass, each a small pure function (docs/questions.md).

In order: ``form`` (at least ``min_words`` words, a question mark), ``give_away`` (the question
does not state its answer), ``round_trip`` (the generator, shown the passage, answers with the
span), ``near_duplicate`` (no question too close to one kept before, or to a team's question).
Words are lower-cased ``\\w+`` runs; an answer's content words leave out function words.
"""

from __future__ import annotations

import re
import unicodedata

from components.config import QuestionFilters

_FUNCTION_WORDS = """a an the of in on at by for with from to and or but is are was were be been being it its this that
these those what which who whom whose when where why how do does did has have had as into than then there their
his her he she they them we you i not no here some any all each every if"""
STOPWORDS = frozenset(_FUNCTION_WORDS.split())
_LABEL = re.compile(r"^\s*(?:question|q)\s*[:.)-]\s*", re.IGNORECASE)


def words(text: str) -> list[str]:
    return re.findall(r"\w+", unicodedata.normalize("NFKC", text).casefold())


def content_words(text: str) -> set[str]:
    """The words of ``text`` without function words (all its words if it has only those)."""
    found = words(text)
    return {w for w in found if w not in STOPWORDS} or set(found)


def clean_question(text: str) -> str:
    """The question in a completion: a leading "Question:" label removed, cut after its first question mark."""
    text = _LABEL.sub("", text.strip()).strip().strip('"“”')
    mark = text.find("?")
    return text[: mark + 1] if mark >= 0 else text


def form(question: str, cfg: QuestionFilters) -> bool:
    """A question: at least ``min_words`` words and a question mark at its end."""
    return len(words(question)) >= cfg.min_words and question.endswith("?")


def give_away(question: str, answer: str, cfg: QuestionFilters) -> bool:
    """True when the question states its answer: the whole answer, or more than ``max_answer_overlap`` of its words."""
    if " ".join(words(answer)) in " ".join(words(question)):
        return True
    answer_words = content_words(answer)
    shared = len(answer_words & set(words(question))) / max(len(answer_words), 1)
    return shared > cfg.max_answer_overlap


def _normal(text: str) -> list[str]:
    return [w for w in words(text) if w not in {"a", "an", "the"}]


def token_f1(prediction: str, gold: str) -> float:
    pred, ref = _normal(prediction), _normal(gold)
    common = sum(min(pred.count(w), ref.count(w)) for w in set(pred))
    if not common:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def round_trip(reply: str, answer: str, cfg: QuestionFilters) -> bool:
    """The generator's answer (shown the passage) gives the span: contains it, or token F1 at least ``min_f1``."""
    if cfg.round_trip == "contains":
        gold = " ".join(_normal(answer))
        return bool(gold) and f" {gold} " in f" {' '.join(_normal(reply))} "
    return token_f1(reply, answer) >= cfg.min_f1


def jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


class NearDuplicates:
    """Questions kept so far (and the team's); :meth:`admit` refuses one too close to any of them."""

    def __init__(self, threshold: float, existing: list[str] = ()) -> None:
        self.threshold = threshold
        self.seen: list[set[str]] = [content_words(q) for q in existing]

    def admit(self, question: str) -> bool:
        key = content_words(question)
        if any(jaccard(key, other) >= self.threshold for other in self.seen):
            return False
        self.seen.append(key)
        return True
