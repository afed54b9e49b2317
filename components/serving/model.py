"""The champion as one MLflow pyfunc model: base LLM + adapter + retriever, answering questions.

Besides ``components.tracking``, the one module that imports mlflow, and only ``mlflow.pyfunc``:
:class:`RagtuneModel` must subclass ``mlflow.pyfunc.PythonModel``. Registering, tagging and
downloading stay in ``components.tracking``; what a version bundles is in
:mod:`components.serving.bundle` (see docs/serving.md).
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import mlflow.pyfunc
import pandas as pd

from components.serving.bundle import Bundle

logger = logging.getLogger(__name__)


def _questions(model_input) -> list[str]:
    """The questions of a DataFrame with a ``question`` column, a list of strings or one string."""
    if isinstance(model_input, pd.DataFrame):
        if "question" not in model_input.columns:
            raise ValueError(f"input needs a 'question' column, got columns {list(model_input.columns)}")
        return [str(q) for q in model_input["question"]]
    if isinstance(model_input, str):
        return [model_input]
    if isinstance(model_input, list | tuple) and all(isinstance(q, str) for q in model_input):
        return list(model_input)
    raise ValueError(f"expected a DataFrame with a 'question' column or a list of strings, got {type(model_input)}")


class RagtuneModel(mlflow.pyfunc.PythonModel):
    """A grid cell as a pyfunc: ``predict`` takes questions and returns answers (+ retrieved doc ids).

    Artifacts: ``bundle`` (bundle.json), with an adapter ``adapter`` (the adapter folder), with a
    local index ``index`` (the copy of its pinned table version). Logged from code
    (:mod:`components.serving.pyfunc_code`), never pickled.
    """

    def load_context(self, context) -> None:
        """Load the bundle, fetch the base model by reference, merge the adapter, open the index."""
        from components import tracking

        self.bundle = Bundle.model_validate_json(Path(context.artifacts["bundle"]).read_text(encoding="utf-8"))
        adapter, index = context.artifacts.get("adapter"), context.artifacts.get("index")
        # The base model (~0.5 GB) is read once into memory: its copy goes when loaded, or every load of
        # a champion (each gate run, each server start) would leave one in the machine's temp folder.
        with tempfile.TemporaryDirectory(prefix="ragtune-base-model-") as tmp:
            base_dir = tracking.download(self.bundle.base_model_uri, Path(tmp))
            self.model, self.tokenizer, self.retriever = load_parts(
                self.bundle, base_dir, Path(adapter) if adapter else None, Path(index) if index else None
            )
        logger.info("loaded %s", self.bundle.cell)

    def predict(self, context, model_input, params=None) -> pd.DataFrame:
        """One row per question: ``answer``, and ``retrieved_doc_ids`` when the model retrieves."""
        return answer(self.model, self.tokenizer, self.retriever, self.bundle, _questions(model_input))


def load_parts(bundle: Bundle, base_dir: Path, adapter_dir: Path | None, index_dir: Path | None = None) -> tuple:
    """The model (base + adapter), tokenizer and retriever (None: closed-book) a bundle answers with.

    ``index_dir``: the copy of the index a version carries; None: the table the bundle references.
    """
    from components.llm.models import load_model, load_tokenizer

    retriever = open_retriever(bundle, index_dir) if bundle.retriever is not None else None
    return load_model(base_dir, adapter_dir), load_tokenizer(base_dir), retriever


def open_retriever(bundle: Bundle, index_dir: Path | None = None):
    """The bundle's retriever on the table version it was evaluated on, checked against its content hash.

    Raises:
        components.serving.index_bundle.IndexIntegrityError: the table is not the one the cell was scored on.
    """
    from components.retrieval.embedding import Embedder
    from components.retrieval.search import Retriever
    from components.serving.index_bundle import open_verified

    if bundle.index_table is None or bundle.embedder is None:
        raise ValueError(f"bundle {bundle.cell!r} has a retriever but no index reference or embedder")
    table = open_verified(bundle.index_uri, bundle.index_table, bundle.index_version, bundle.index_hash, index_dir)
    return Retriever(bundle.retriever, table, Embedder(bundle.embedder))


def answer(model, tokenizer, retriever, bundle: Bundle, questions: list[str]) -> pd.DataFrame:
    """Answer ``questions`` the way the bundle's grid cell did (same prompts and examples, same greedy decoding)."""
    from components.evaluation.answer import render_prompts
    from components.llm.engines import generate

    hits = retriever.search(questions)[0] if retriever is not None else None
    prompts = render_prompts(tokenizer, questions, hits, bundle.prompts, bundle.examples)
    out = pd.DataFrame({"answer": [g.answer for g in generate(model, tokenizer, prompts, bundle.generation)]})
    if hits is not None:
        out["retrieved_doc_ids"] = [[h.doc_id for h in row] for row in hits]
    return out
