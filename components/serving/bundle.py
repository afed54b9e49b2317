"""What a registered model version bundles besides the weights, and how it is hashed.

- ``bundle.json``: a :class:`Bundle`, the retriever config, the embedder reference, the index
  reference (LanceDB URI + table + version + content hash), the prompts and the generation config;
- ``adapter/``: the LoRA adapter (a few MB), when the model is not the base model;
- ``index/``: a copy of the pinned table version, when the index is a local folder
  (:mod:`.index_bundle`; one in object storage is referenced, by its content hash);
- the base model by reference: ``Bundle.base_model_uri`` points at a run that holds the base
  model's safetensors, logged once per content hash (~540 MB float32), not once per version.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from components.catalog import table_name
from components.config import EmbedderConfig, GenerationConfig, PromptConfig, RetrieverConfig
from components.io import dir_hash

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
    index_hash: str | None = None  # content hash of the pinned table version (components.serving.index_bundle)
    prompts: PromptConfig
    generation: GenerationConfig  # with the answer cap the cell was scored with
    examples: list[tuple[str, str]]  # the few-shot turns the cell's prompt shows ([] for none)
    base_model_hash: str
    base_model_uri: str = ""  # filled by the registry: where the base model's files are stored

    @property
    def retrieval(self) -> str:
        return self.retriever.name if self.retriever is not None else NO_RETRIEVAL

    @property
    def cell(self) -> str:
        return f"{self.model}+{self.retrieval}" + (f"+{len(self.examples)}shot" if self.examples else "")


def bundle_hash(bundle: Bundle, adapter_dir: Path | None) -> str:
    """The content hash of what a version bundles: the bundle (base model and index by their hashes) and the adapter.

    ``base_model_uri`` and ``index_uri`` are left out: the same base model stored in another run, the
    same table rows in another folder, make the same model.
    """
    digest = hashlib.sha256(bundle.model_dump_json(exclude={"base_model_uri", "index_uri"}).encode())
    digest.update(dir_hash(adapter_dir).encode() if adapter_dir is not None else b"no-adapter")
    return digest.hexdigest()


def bundle_files(bundle: Bundle, adapter_dir: Path | None, out_dir: Path) -> dict[str, str]:
    """Write ``bundle.json`` (and the copy of a local index) into ``out_dir``; the pyfunc artifacts to log."""
    from components.serving.index_bundle import INDEX_ARTIFACT, export_table, is_remote, pinned_table

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / BUNDLE_FILE).write_text(json.dumps(bundle.model_dump(mode="json"), indent=2), encoding="utf-8")
    artifacts = {"bundle": str(out_dir / BUNDLE_FILE)}
    if bundle.retriever is not None and not is_remote(bundle.index_uri):
        table = pinned_table(bundle.index_uri, bundle.index_table, bundle.index_version)
        artifacts[INDEX_ARTIFACT] = str(export_table(table, bundle.index_hash, out_dir / INDEX_ARTIFACT))
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
    prompts: PromptConfig,
    generation: GenerationConfig,
    base_model_hash: str,
    examples: list[tuple[str, str]] = (),
) -> Bundle:
    """The bundle of grid cell ``model`` x ``retriever`` (None: closed-book) from the pipeline's params.

    With a retriever, the table version it was scored on is hashed here (its content, not its number).
    """
    if retriever is None:
        return Bundle(
            model=model,
            prompts=prompts,
            generation=generation,
            base_model_hash=base_model_hash,
            examples=list(examples),
        )
    if index_uri is None or index_version is None:
        raise ValueError(f"retriever {retriever.name!r} needs the index URI and the table version it was evaluated on")
    from components.serving.index_bundle import pinned_table, table_digest

    name = table_name(retriever.chunker, retriever.embedder)
    return Bundle(
        model=model,
        retriever=retriever,
        embedder=embedders[retriever.embedder],
        index_uri=index_uri,
        index_table=name,
        index_version=index_version,
        index_hash=table_digest(pinned_table(index_uri, name, index_version)),
        prompts=prompts,
        generation=generation,
        base_model_hash=base_model_hash,
        examples=list(examples),
    )
