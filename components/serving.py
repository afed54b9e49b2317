"""The champion as one MLflow pyfunc model: base LLM + adapter + retriever, answering questions.

This is the one module besides ``components/tracking.py`` that imports mlflow, and only
``mlflow.pyfunc``: the :class:`RagtuneModel` class must subclass ``mlflow.pyfunc.PythonModel``.
Registering, tagging and downloading stay in ``components/tracking.py``.

What a model version bundles (see docs/serving.md):

- ``bundle.json``: a :class:`Bundle`, the retriever config, the embedder reference, the index
  reference (LanceDB URI + table + version), the prompts and the generation config;
- ``adapter/``: the LoRA adapter (a few MB), when the model is not the base model;
- the base model by reference: ``Bundle.base_model_uri`` points at a run that holds the base
  model's safetensors, logged once per content hash (~540 MB float32), not once per version.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import mlflow.pyfunc
import pandas as pd
from pydantic import BaseModel, ConfigDict

from components.config import EmbedderConfig, EvaluationConfig, GenerationConfig, PromptConfig, RetrieverConfig
from components.io import dir_hash

logger = logging.getLogger(__name__)

BUNDLE_FILE = "bundle.json"
NO_RETRIEVAL = "none"


class Bundle(BaseModel):
    """Everything but the weights that a model version needs to answer like its grid cell."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str  # "base" or an adapter name
    retriever: RetrieverConfig | None = None
    embedder: EmbedderConfig | None = None
    index_uri: str | None = None  # LanceDB URI (a local folder or object storage)
    index_table: str | None = None
    index_version: int | None = None
    prompts: PromptConfig
    generation: GenerationConfig
    base_model_hash: str
    base_model_uri: str = ""  # filled by the registry: where the base model's files are stored

    @property
    def retrieval(self) -> str:
        return self.retriever.name if self.retriever is not None else NO_RETRIEVAL

    @property
    def cell(self) -> str:
        return f"{self.model}+{self.retrieval}"


def bundle_hash(bundle: Bundle, adapter_dir: Path | None) -> str:
    """The content hash of what a version bundles: the bundle (base model by its hash) and the adapter.

    ``base_model_uri`` is left out: the same base model stored in another run is the same model.
    """
    digest = hashlib.sha256(bundle.model_dump_json(exclude={"base_model_uri"}).encode())
    digest.update(dir_hash(adapter_dir).encode() if adapter_dir is not None else b"no-adapter")
    return digest.hexdigest()


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

    Artifacts: ``bundle`` (bundle.json) and, with an adapter, ``adapter`` (the adapter folder).
    """

    def load_context(self, context) -> None:
        """Load the bundle, fetch the base model by reference, merge the adapter, open the index."""
        from components import tracking
        from components.models import load_model, load_tokenizer

        self.bundle = Bundle.model_validate_json(Path(context.artifacts["bundle"]).read_text(encoding="utf-8"))
        base_dir = tracking.download(self.bundle.base_model_uri)
        adapter = context.artifacts.get("adapter")
        self.model = load_model(base_dir, Path(adapter) if adapter else None)
        self.tokenizer = load_tokenizer(base_dir)
        self.retriever = open_retriever(self.bundle) if self.bundle.retriever is not None else None
        logger.info("loaded %s", self.bundle.cell)

    def predict(self, context, model_input, params=None) -> pd.DataFrame:
        """One row per question: ``answer``, and ``retrieved_doc_ids`` when the model retrieves."""
        return answer(self.model, self.tokenizer, self.retriever, self.bundle, _questions(model_input))


def open_retriever(bundle: Bundle):
    """The bundle's retriever on its LanceDB table, pinned at the table version it was evaluated on."""
    import lancedb

    from components.embedding import Embedder
    from components.index import open_table_at
    from components.retrieval import Retriever

    refs = (bundle.index_uri, bundle.index_table, bundle.index_version, bundle.embedder)
    if any(ref is None for ref in refs):
        raise ValueError(f"bundle {bundle.cell!r} has a retriever but no index reference or embedder")
    table = open_table_at(lancedb.connect(bundle.index_uri), bundle.index_table, bundle.index_version)
    return Retriever(bundle.retriever, table, Embedder(bundle.embedder))


def answer(model, tokenizer, retriever, bundle: Bundle, questions: list[str]) -> pd.DataFrame:
    """Answer ``questions`` the way the bundle's grid cell did (same prompts, same greedy decoding)."""
    from components.generation import chat_prompt, generate, user_message

    hits = retriever.search(questions)[0] if retriever is not None else None
    prompts = [
        chat_prompt(
            tokenizer,
            bundle.prompts.system,
            user_message(bundle.prompts, q, None if hits is None else [h.text for h in hits[i]]),
        )
        for i, q in enumerate(questions)
    ]
    out = pd.DataFrame({"answer": [g.answer for g in generate(model, tokenizer, prompts, bundle.generation)]})
    if hits is not None:
        out["retrieved_doc_ids"] = [[h.doc_id for h in row] for row in hits]
    return out


def bundle_files(bundle: Bundle, adapter_dir: Path | None, out_dir: Path) -> dict[str, str]:
    """Write ``bundle.json`` into ``out_dir``; the pyfunc artifacts (name -> local path) to log."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / BUNDLE_FILE).write_text(json.dumps(bundle.model_dump(mode="json"), indent=2), encoding="utf-8")
    artifacts = {"bundle": str(out_dir / BUNDLE_FILE)}
    if adapter_dir is not None:
        if not (adapter_dir / "adapter_config.json").is_file():
            raise FileNotFoundError(f"{adapter_dir} holds no adapter: run `ragtune finetune` first")
        artifacts["adapter"] = str(adapter_dir)
    return artifacts


def make_bundle(
    model: str,
    retriever: RetrieverConfig | None,
    embedders: dict[str, EmbedderConfig],
    index_uri: str | None,
    index_version: int | None,
    evaluation: EvaluationConfig,
    base_model_hash: str,
) -> Bundle:
    """The bundle of grid cell ``model`` x ``retriever`` (None: closed-book) from the pipeline's params."""
    from components.index import table_name

    if retriever is None:
        return Bundle(
            model=model, prompts=evaluation.prompts, generation=evaluation.generation, base_model_hash=base_model_hash
        )
    if index_uri is None or index_version is None:
        raise ValueError(f"retriever {retriever.name!r} needs the index URI and the table version it was evaluated on")
    return Bundle(
        model=model,
        retriever=retriever,
        embedder=embedders[retriever.embedder],
        index_uri=index_uri,
        index_table=table_name(retriever.chunker, retriever.embedder),
        index_version=index_version,
        prompts=evaluation.prompts,
        generation=evaluation.generation,
        base_model_hash=base_model_hash,
    )
