"""Prediction cache: an answer is generated once per (model, retrieval, prompt, generation, question).

The key of a question is a SHA-256 over the cell's scope (base model id, adapter content hash,
retriever config and index table version, prompt template, system prompt and generation config)
and the full rendered prompt (which holds the question and the retrieved passages). Any change to
any of them is a miss. Entries are small JSON files under ``data/cache/predictions/`` written
atomically; the folder is not a DVC output, so it survives ``dvc repro`` re-running the stage.
A cached entry keeps the latency and tokens measured when it was generated.
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

    def generate(self, prompts: list[str], generate_fn: Callable[[list[str]], list[Generation]]) -> list[Generation]:
        """Cached generations for ``prompts``; only the misses go to ``generate_fn`` (one batched call)."""
        keys = [self.key(p) for p in prompts]
        found: dict[int, Generation] = {}
        for i, key in enumerate(keys):
            path = self._path(key)
            if path.is_file():
                found[i] = Generation(**json.loads(path.read_text(encoding="utf-8")))
        missing = [i for i in range(len(prompts)) if i not in found]
        if missing:
            for i, gen in zip(missing, generate_fn([prompts[i] for i in missing]), strict=True):
                write_json(asdict(gen), self._path(keys[i]))
                found[i] = gen
        self.generated += len(missing)
        logger.info("prediction cache: %d hits, %d generated", len(prompts) - len(missing), len(missing))
        return [found[i] for i in range(len(prompts))]
