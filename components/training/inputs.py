"""What the training data sources draw on, read from the ``ingest`` stage's outputs."""

from __future__ import annotations

from components.catalog import Catalog
from components.config import AdapterConfig, RaftSource, RetrievalConfig
from components.io import read_parquet
from components.training.examples import TrainingInputs


def load_inputs(catalog: Catalog, adapters: list[AdapterConfig], retrieval: RetrievalConfig) -> TrainingInputs:
    """Documents, QA pairs and, for each retriever a RAFT source names, its chunker's chunks and top_k."""
    raft = {s.retriever for a in adapters for s in a.data if isinstance(s, RaftSource)}
    retrievers = {name: retrieval.retriever(name) for name in sorted(raft)}
    return TrainingInputs(
        documents=read_parquet(catalog.documents),
        qa=read_parquet(catalog.qa),
        chunks={name: read_parquet(catalog.chunks(r.chunker)) for name, r in retrievers.items()},
        top_k={name: r.top_k for name, r in retrievers.items()},
    )
