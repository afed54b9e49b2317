"""Retrievers bound to their LanceDB tables and embedders, as the stages and the benchmarks open them."""

from __future__ import annotations

from components.catalog import table_name
from components.config import AnyChunkerConfig, EmbedderConfig, IndexSettings, RayEmbeddingConfig, RetrieverConfig
from components.retrieval.embedding import Embedder
from components.retrieval.index import open_table_at
from components.retrieval.search import Retriever


class Embedders:
    """Each embedder of params/retrieval.yaml, loaded once, on first use.

    Args:
        configs: ``retrieval.embedders``.
        ray: for corpus embedding: Ray Data above its ``min_chunks`` (None: always in this process).
        cluster_address: a Ray cluster is configured (``RAY_ADDRESS``): corpus embedding uses Ray Data there.
        store: the object store the Ray Data actors fetch the embedder from (None: the driver's path).
    """

    def __init__(
        self,
        configs: dict[str, EmbedderConfig],
        ray: RayEmbeddingConfig | None = None,
        cluster_address: str | None = None,
        store=None,
    ) -> None:
        self.configs = configs
        self.ray = ray
        self.cluster_address = cluster_address
        self.store = store
        self._loaded: dict[str, Embedder] = {}

    def __getitem__(self, name: str) -> Embedder:
        if name not in self._loaded:
            self._loaded[name] = Embedder(
                self.configs[name], ray=self.ray, cluster_address=self.cluster_address, store=self.store
            )
        return self._loaded[name]


def parse_versions(pins: list[str]) -> dict[str, int]:
    """``["table=4", ...]`` -> ``{"table": 4}``.

    Raises:
        ValueError: a pin is not ``TABLE=VERSION`` with a whole-number version.
    """
    versions = {}
    for pin in pins:
        table, sep, version = pin.partition("=")
        if not sep or not table or not version.isdigit():
            raise ValueError(f"expected TABLE=VERSION (a whole number), got {pin!r}")
        versions[table] = int(version)
    return versions


def open_retrievers(
    retrievers: list[RetrieverConfig], db, embedders: Embedders, versions: dict[str, int] | None = None
) -> dict[str, Retriever]:
    """Each retriever bound to its table (latest version, or ``versions[table]`` to reproduce a past run).

    Raises:
        ValueError: ``versions`` names a table no retriever reads.
        components.retrieval.index.TableVersionError: a pinned version does not exist.
    """
    versions = versions or {}
    unknown = set(versions) - {table_name(r.chunker, r.embedder) for r in retrievers}
    if unknown:
        raise ValueError(f"no retriever reads table(s) {sorted(unknown)}")
    opened = {}
    for r in retrievers:
        name = table_name(r.chunker, r.embedder)
        table = open_table_at(db, name, versions[name]) if name in versions else db.open_table(name)
        opened[r.name] = Retriever(r, table, embedders[r.embedder])
    return opened


def retriever_params(
    retriever: Retriever, embedder: EmbedderConfig, chunker: AnyChunkerConfig, index: IndexSettings
) -> dict:
    """What a retriever's MLflow run records: its config, its embedder, chunker and index settings, table version."""
    cfg = retriever.cfg
    return {
        "retrieval": cfg.model_dump(),
        "embedder": embedder.model_dump(),
        "chunker": chunker.model_dump(),
        "index": index.model_dump(),
        "index_table": table_name(cfg.chunker, cfg.embedder),
        "index_table_version": retriever.table_version,
    }


def run_params_of(
    retrievers: dict[str, Retriever], retrieval, chunkers: dict[str, AnyChunkerConfig]
) -> dict[str, dict]:
    """:func:`retriever_params` of each opened retriever (``retrieval``: the RetrievalConfig they come from)."""
    return {
        name: retriever_params(r, retrieval.embedders[r.cfg.embedder], chunkers[r.cfg.chunker], retrieval.index)
        for name, r in retrievers.items()
    }
