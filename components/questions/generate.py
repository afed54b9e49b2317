"""The generator: the model that writes a question for an answer, and answers it back from the passage.

Prompts come from ``params/questions.yaml`` (``prompts``), in the model's chat template with the
few-shot turns first. Both calls decode greedily through :mod:`components.llm.engines`
(transformers, or vLLM on a GPU), and go through a :class:`~components.llm.prediction_cache.PredictionCache`
keyed by the model's content hash, the call's settings and the rendered prompt: a re-run with the
same documents and params generates nothing.

``generator.model: base`` is the shipped base model (the ``model`` stage's output); anything else
is a local model folder or a Hugging Face id already in the local cache (nothing is downloaded).
"""

from __future__ import annotations

import logging
from pathlib import Path

from components.config import QuestionsConfig
from components.io import dir_hash
from components.llm import engines
from components.llm.generation import chat_prompt
from components.llm.prediction_cache import PredictionCache
from components.questions.spans import Candidate

logger = logging.getLogger(__name__)

BASE = "base"


def model_folder(name: str, base_dir: Path) -> Path:
    """The folder of the generator ``name``: the base model's, a local folder, or a cached Hugging Face id.

    Raises:
        FileNotFoundError: ``name`` is neither a model folder nor in the local Hugging Face cache.
    """
    if name == BASE:
        return base_dir
    if Path(name).is_dir():
        return Path(name)
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(name, "config.json")
    if not isinstance(found, str):
        raise FileNotFoundError(
            f"questions.generator.model {name!r} is not a model folder and not in the local Hugging Face cache "
            "(download it once on a machine with access, or give its folder)"
        )
    return Path(found).parent


class Generator:
    """A loaded generator model with its prompts and its cache."""

    def __init__(self, folder: Path, cfg: QuestionsConfig, cache_dir: Path) -> None:
        from components.llm.models import load_model, load_tokenizer

        self.cfg, self.cache_dir = cfg, cache_dir
        self.tokenizer, self.model = load_tokenizer(folder), load_model(folder)
        self.key = dir_hash(folder)  # the cache key of its completions: the model's content
        self.generated = 0  # completions generated (cache misses)

    def _complete(self, prompts: list[str], kind: str, max_new_tokens: int) -> list[str]:
        gen = self.cfg.generator.generation(max_new_tokens)
        precision = engines.machine_precision(gen)  # auto resolves by machine: answers differ slightly by precision
        scope = {"generator": self.key, "kind": kind, "generation": gen.model_dump(), "precision": precision}
        cache = PredictionCache(self.cache_dir, scope)
        made = cache.generate(prompts, lambda todo: engines.generate(self.model, self.tokenizer, todo, gen))
        self.generated += cache.generated
        return [g.answer for g in made]

    def ask(self, batch: list[Candidate]) -> list[str]:
        """A question for each candidate's answer, written from its sentence."""
        p = self.cfg.prompts
        user = [p.question.format(sentence=c.sentence, answer=c.answer) for c in batch]
        prompts = [chat_prompt(self.tokenizer, p.system, u, examples=p.examples) for u in user]
        return self._complete(prompts, "question", self.cfg.generator.max_new_tokens)

    def answer_back(self, pairs: list[tuple[Candidate, str]]) -> list[str]:
        """The generator's answer to each question, shown the candidate's passage (the round trip)."""
        p = self.cfg.prompts
        prompts = [
            chat_prompt(
                self.tokenizer, p.round_trip_system, p.round_trip.format(passage=c.passage, question=q),
                examples=p.round_trip_examples,
            )
            for c, q in pairs
        ]  # fmt: skip
        return self._complete(prompts, "round_trip", self.cfg.filters.round_trip_max_new_tokens)
