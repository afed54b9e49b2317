"""Prediction cache: an answer is generated once per (model, retrieval, prompt, generation, question).

The key of a question is a SHA-256 over the cell's scope (base model id, adapter content hash,
retriever config and index table version, prompt template, system prompt and generation config)
and the full rendered prompt (which holds the question, the retrieved passages and any few-shot
examples). Any change to any of them is a miss. Entries are small JSON files under
``data/cache/predictions/`` written atomically; the folder is not a DVC output, so it survives
``dvc repro`` re-running the stage. A cached entry keeps the tokens measured when it was generated.
The cache lives with the driver: when the grid runs on Ray workers, only the misses travel.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from components.io import write_json
from components.llm.generation import Generation

logger = logging.getLogger(__name__)


class PredictionCache:
    """Generations on disk under ``folder``, keyed by ``scope`` and the rendered prompt."""

    def __init__(self, folder: Path, scope: dict) -> None:
        self.folder = Path(folder)
        self.scope = json.dumps(scope, sort_keys=True, default=str)
        self.generated = 0  # answers generated (cache misses) by this instance

    def key(self, prompt: str) -> str:
        return hashlib.sha256(f"{self.scope}\n{prompt}".encode()).hexdigest()

    def _path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.json"

    def lookup(self, prompts: list[str]) -> tuple[dict[int, Generation], list[int]]:
        """The cached generations of ``prompts`` (by index) and the indices that miss."""
        found: dict[int, Generation] = {}
        for i, prompt in enumerate(prompts):
            path = self._path(self.key(prompt))
            if path.is_file():
                found[i] = Generation(**json.loads(path.read_text(encoding="utf-8")))
        return found, [i for i in range(len(prompts)) if i not in found]

    def store(self, prompts: list[str], generations: list[Generation]) -> None:
        """Record newly generated answers."""
        for prompt, gen in zip(prompts, generations, strict=True):
            write_json(asdict(gen), self._path(self.key(prompt)))
        self.generated += len(prompts)

    def generate(self, prompts: list[str], generate_fn: Callable[[list[str]], list[Generation]]) -> list[Generation]:
        """Cached generations for ``prompts``; only the misses go to ``generate_fn`` (one batched call)."""
        found, missing = self.lookup(prompts)
        if missing:
            todo = [prompts[i] for i in missing]
            made = generate_fn(todo)
            self.store(todo, made)
            found.update(zip(missing, made, strict=True))
        logger.info("prediction cache: %d hits, %d generated", len(prompts) - len(missing), len(missing))
        return [found[i] for i in range(len(prompts))]
