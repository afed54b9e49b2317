import lancedb
import numpy as np
import pandas as pd
import pytest

from components.config import EmbedderConfig, ParagraphChunkerConfig
from components.data.chunking import chunk_documents
from components.retrieval.embedding import Embedder
from components.retrieval.index import (
    IndexMismatchError,
    IndexSyncError,
    TableVersionError,
    indices,
    open_table_at,
    sync_table,
)
from components.retrieval.search import MissingIndexError, Retriever
from tests.conftest import PARAMS, like

SETTINGS = PARAMS.retrieval.index  # exact search below ann_min_rows: every table here is below it

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
MORE = pd.DataFrame(
    {
        "doc_id": [f"country/X{i}" for i in range(9)],
        "text": [f"Country number {i} has the made-up code X{i}Q and its capital is Town{i}." for i in range(9)],
    }
)


def _chunks(docs):
    return chunk_documents(docs, ParagraphChunkerConfig(kind="paragraph", max_chars=200))


def _retriever(table, embedder, mode="vector", top_k=1):
    cfg = like(PARAMS.retrieval.retrievers[0], name=mode, chunker="c", embedder="minilm", mode=mode, top_k=top_k)
    return Retriever(cfg, table, embedder)


def test_sync_embeds_only_new_chunks_and_deletes_removed_ones(tmp_path, embedder):
    db = lancedb.connect(str(tmp_path))
    first = sync_table(db, "t", _chunks(DOCS), embedder, SETTINGS, fts=True)
    assert (first.rows, first.added, first.deleted) == (3, 3, 0)
    again = sync_table(db, "t", _chunks(DOCS), embedder, SETTINGS, fts=True)
    assert (again.rows, again.added, again.updated, again.deleted) == (3, 0, 0, 0)
    assert again.version == first.version  # nothing written
    changed = DOCS.copy()
    changed.loc[2, "text"] = "The Euro has the ISO 4217 code EUR and the numeric code 978."
    changed = pd.concat([changed.drop(index=0), pd.DataFrame({"doc_id": ["x"], "text": ["New doc."]})])
    update = sync_table(db, "t", _chunks(changed), embedder, SETTINGS, fts=True)
    assert (update.rows, update.added, update.deleted) == (3, 2, 2)
    stored = db.open_table("t").to_pandas()
    assert sorted(stored["doc_id"]) == ["country/FR", "currency/EUR", "x"]
    assert "978" in stored.set_index("doc_id").loc["currency/EUR", "text"]


def test_upsert_on_the_indexed_key_really_replaces_rows(tmp_path, embedder):
    """merge_insert on a key with a scalar index has silently updated nothing in some LanceDB releases."""
    db = lancedb.connect(str(tmp_path))
    sync_table(db, "t", _chunks(DOCS), embedder, SETTINGS, fts=True)
    table = db.open_table("t")
    assert indices(table)["content_hash"] == "BTree"
    before = table.to_pandas().set_index("content_hash")
    moved = _chunks(DOCS).assign(chunk_id=lambda c: c["chunk_id"] + "-moved", position=lambda c: c["position"] + 7)
    report = sync_table(db, "t", moved, embedder, SETTINGS, fts=True)
    assert (report.rows, report.added, report.updated, report.deleted) == (3, 0, 3, 0)
    after = db.open_table("t").to_pandas().set_index("content_hash")
    assert len(after) == 3 and sorted(after.index) == sorted(before.index)
    assert all(after["chunk_id"].str.endswith("-moved")) and all(after["position"] == before["position"] + 7)
    for key in before.index:  # the stored vectors were carried over, not re-embedded
        np.testing.assert_array_equal(after.loc[key, "vector"], before.loc[key, "vector"])


def test_fulltext_finds_chunks_upserted_after_the_index_was_built(tmp_path, embedder):
    db = lancedb.connect(str(tmp_path))
    sync_table(db, "t", _chunks(DOCS), embedder, SETTINGS, fts=True)
    question = ["Which country has the code ZQW?"]
    before, _ = _retriever(db.open_table("t"), embedder, "fulltext").search(question)
    assert all(h.doc_id != "country/ZQ" for h in before[0])
    new = pd.concat([DOCS, pd.DataFrame({"doc_id": ["country/ZQ"], "text": ["Zanquaria has the code ZQW."]})])
    report = sync_table(db, "t", _chunks(new), embedder, SETTINGS, fts=True)
    assert report.fts_index and report.added == 1
    hits, _ = _retriever(db.open_table("t"), embedder, "fulltext").search(question)
    assert hits[0][0].doc_id == "country/ZQ"
    # LanceDB 0.40 also scans rows the index lacks, so check the index itself covers the new chunk
    table = db.open_table("t")
    assert {c.columns[0]: c.num_unindexed_rows for c in table.list_indices()}["text"] == 0
    indexed_only = table.search("ZQW", query_type="fts").fast_search().limit(3).select(["doc_id", "_score"]).to_list()
    assert [r["doc_id"] for r in indexed_only] == ["country/ZQ"]


def test_ann_index_is_built_above_the_threshold_and_not_below(tmp_path, embedder):
    db = lancedb.connect(str(tmp_path))
    settings = like(SETTINGS, ann_min_rows=10, num_partitions=1)
    small = sync_table(db, "t", _chunks(DOCS), embedder, settings, fts=False)
    assert small.ann_index is None and "vector" not in indices(db.open_table("t"))
    large = sync_table(db, "t", _chunks(pd.concat([DOCS, MORE])), embedder, settings, fts=False)
    assert large.rows == 12 and large.ann_index == "IvfHnswSq"  # LanceDB's name for IVF_HNSW_SQ
    assert indices(db.open_table("t"))["vector"] == "IvfHnswSq"
    hits, _ = _retriever(db.open_table("t"), embedder).search(["What is the alpha-3 code of France?"])
    assert hits[0][0].doc_id == "country/FR"
    shrunk = sync_table(db, "t", _chunks(DOCS), embedder, settings, fts=False)
    assert shrunk.rows == 3 and shrunk.ann_index is None


@pytest.mark.parametrize("mode", ["vector", "fulltext", "hybrid"])
def test_each_mode_returns_the_gold_document(tmp_path, embedder, mode):
    db = lancedb.connect(str(tmp_path))
    sync_table(db, "t", _chunks(pd.concat([DOCS, MORE])), embedder, SETTINGS, fts=True)
    retriever = _retriever(db.open_table("t"), embedder, mode, top_k=2)
    hits, latencies = retriever.search(["What is the alpha-3 code of France?", "Which currency has the code EUR?"])
    assert [h[0].doc_id for h in hits] == ["country/FR", "currency/EUR"]
    assert all(len(h) == 2 for h in hits)
    assert len(latencies) == 2 and all(t > 0 for t in latencies)


def test_fulltext_retriever_refuses_a_table_without_fulltext_index(tmp_path, embedder):
    db = lancedb.connect(str(tmp_path))
    sync_table(db, "t", _chunks(DOCS), embedder, SETTINGS, fts=False)
    with pytest.raises(MissingIndexError, match="needs a full-text index"):
        _retriever(db.open_table("t"), embedder, "hybrid")


def test_a_past_table_version_reproduces_its_results(tmp_path, embedder):
    db = lancedb.connect(str(tmp_path))
    v1 = sync_table(db, "t", _chunks(DOCS), embedder, SETTINGS, fts=True).version
    question = ["What is the numeric code of Bolivia?"]
    first, _ = _retriever(db.open_table("t"), embedder, "hybrid").search(question)
    assert first[0][0].doc_id == "country/BO"
    v2 = sync_table(db, "t", _chunks(DOCS.drop(index=0)), embedder, SETTINGS, fts=True).version
    assert v2 > v1
    latest, _ = _retriever(db.open_table("t"), embedder, "hybrid").search(question)
    assert "country/BO" not in [h.doc_id for h in latest[0]]
    old = open_table_at(db, "t", v1)
    assert old.version == v1 and sorted(old.to_pandas()["doc_id"]) == sorted(DOCS["doc_id"])
    again, _ = _retriever(old, embedder, "hybrid").search(question)
    assert [(h.chunk_id, h.score) for h in again[0]] == [(h.chunk_id, h.score) for h in first[0]]
    with pytest.raises(TableVersionError, match="has no version 999"):
        open_table_at(db, "t", 999)


def test_querying_with_another_embedder_is_refused(tmp_path, embedder):
    db = lancedb.connect(str(tmp_path))
    sync_table(db, "t", _chunks(DOCS), embedder, SETTINGS, fts=True)
    renamed = Embedder.__new__(Embedder)
    renamed.cfg = EmbedderConfig(name="other-model", path="/nowhere", batch_size=8)
    renamed.model, renamed.dim, renamed.ray, renamed.cluster_address = embedder.model, embedder.dim, None, None
    with pytest.raises(IndexMismatchError, match="built with embedder 'sentence-transformers/all-MiniLM-L6-v2'"):
        Retriever(like(PARAMS.retrieval.retrievers[0], name="v"), db.open_table("t"), renamed)
    with pytest.raises(IndexMismatchError):
        sync_table(db, "t", _chunks(DOCS), renamed, SETTINGS, fts=True)


def test_an_ivf_pq_index_is_built_when_asked_and_still_finds_the_gold_document(tmp_path, embedder):
    db = lancedb.connect(str(tmp_path))
    settings = like(SETTINGS, ann_min_rows=10, ann_index_type="IVF_PQ", num_partitions=1, num_sub_vectors=8)
    report = sync_table(db, "t", _chunks(pd.concat([DOCS, MORE])), embedder, settings, fts=False)
    assert report.ann_index == "IvfPq" and indices(db.open_table("t"))["vector"] == "IvfPq"
    hits, _ = _retriever(db.open_table("t"), embedder).search(["What is the alpha-3 code of France?"])
    assert hits[0][0].doc_id == "country/FR"


def test_an_upsert_that_silently_writes_nothing_fails_loudly(tmp_path, embedder, monkeypatch):
    """Some LanceDB releases returned from merge_insert on an indexed key having written nothing."""
    from lancedb.merge import LanceMergeInsertBuilder

    db = lancedb.connect(str(tmp_path))
    sync_table(db, "t", _chunks(DOCS), embedder, SETTINGS, fts=True)
    monkeypatch.setattr(LanceMergeInsertBuilder, "execute", lambda self, data, **kwargs: None)
    new = pd.concat([DOCS, pd.DataFrame({"doc_id": ["country/ZQ"], "text": ["Zanquaria has the code ZQW."]})])
    with pytest.raises(IndexSyncError, match=r"1 chunks missing.*merge_insert wrote less"):
        sync_table(db, "t", _chunks(new), embedder, SETTINGS, fts=True)
