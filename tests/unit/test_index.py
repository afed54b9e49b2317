import lancedb
import pandas as pd
import pytest

from components.chunking import chunk_documents
from components.config import ChunkerConfig, EmbedderConfig, RetrieverConfig
from components.embedding import Embedder
from components.index import IndexMismatchError, sync_table
from components.retrieval import Retriever, recall_at_k

DOCS = pd.DataFrame(
    {
        "doc_id": ["country/BO", "country/FR", "currency/EUR"],
        "text": [
            "Bolivia has the alpha-3 code BOL and the numeric code 068.",
            "France has the alpha-3 code FRA and the numeric code 250.",
            "The Euro has the ISO 4217 code EUR.",
        ],
    }
)


def _chunks(docs):
    return chunk_documents(docs, ChunkerConfig(max_chars=200))


def test_sync_embeds_only_new_chunks_and_deletes_removed_ones(tmp_path, embedder):
    db = lancedb.connect(str(tmp_path))
    first = sync_table(db, "t", _chunks(DOCS), embedder)
    assert (first.rows, first.added, first.deleted) == (3, 3, 0)
    again = sync_table(db, "t", _chunks(DOCS), embedder)
    assert (again.rows, again.added, again.deleted) == (3, 0, 0)
    assert again.version == first.version  # nothing written
    changed = DOCS.copy()
    changed.loc[2, "text"] = "The Euro has the ISO 4217 code EUR and the numeric code 978."
    changed = pd.concat([changed.drop(index=0), pd.DataFrame({"doc_id": ["x"], "text": ["New doc."]})])
    update = sync_table(db, "t", _chunks(changed), embedder)
    assert (update.rows, update.added, update.deleted) == (3, 2, 2)
    stored = db.open_table("t").to_pandas()
    assert sorted(stored["doc_id"]) == ["country/FR", "currency/EUR", "x"]
    assert "978" in stored.set_index("doc_id").loc["currency/EUR", "text"]


def test_retriever_finds_the_gold_document(tmp_path, embedder):
    db = lancedb.connect(str(tmp_path))
    sync_table(db, "t", _chunks(DOCS), embedder)
    retriever = Retriever(RetrieverConfig(name="v", chunker="c", embedder="minilm", top_k=1), db.open_table("t"), embedder)
    hits, latencies = retriever.search(["What is the alpha-3 code of France?", "Which currency has code EUR?"])
    assert [h[0].doc_id for h in hits] == ["country/FR", "currency/EUR"]
    assert len(latencies) == 2 and all(t > 0 for t in latencies)
    assert recall_at_k(hits[0], ["country/FR"]) == 1.0 and recall_at_k(hits[0], ["country/BO"]) == 0.0


def test_querying_with_another_embedder_is_refused(tmp_path, embedder):
    db = lancedb.connect(str(tmp_path))
    sync_table(db, "t", _chunks(DOCS), embedder)
    renamed = Embedder.__new__(Embedder)
    renamed.cfg = EmbedderConfig(name="other-model", path="/nowhere")
    renamed.model, renamed.dim = embedder.model, embedder.dim
    with pytest.raises(IndexMismatchError, match="built with embedder 'sentence-transformers/all-MiniLM-L6-v2'"):
        Retriever(RetrieverConfig(name="v", chunker="c", embedder="x"), db.open_table("t"), renamed)
    with pytest.raises(IndexMismatchError):
        sync_table(db, "t", _chunks(DOCS), renamed)
