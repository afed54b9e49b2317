import pandas as pd

from components.chunking import chunk_documents, paragraph_chunks
from components.config import ChunkerConfig


def test_paragraphs_are_packed_up_to_max_chars_with_heading_path():
    text = "# Title\n\nFirst para.\n\n## Part\n\n" + "Sentence number one. " * 10 + "\n\nLast."
    chunks = list(paragraph_chunks(text, ChunkerConfig(max_chars=120)))
    assert all(len(body) <= 120 for _, body in chunks)
    assert chunks[0] == ("Title", "# Title\n\nFirst para.")
    assert chunks[-1][0] == "Title > Part"
    # nothing is lost but the paragraph separators
    joined = " ".join(body for _, body in chunks).split()
    assert joined == text.split()


def test_a_word_longer_than_max_chars_is_cut_hard():
    chunks = list(paragraph_chunks("x" * 250, ChunkerConfig(max_chars=100)))
    assert [len(b) for _, b in chunks] == [100, 100, 50]


def test_chunk_ids_positions_and_hashes_are_stable():
    docs = pd.DataFrame({"doc_id": ["a", "b"], "text": ["One.\n\nTwo.", "One."]})
    first = chunk_documents(docs, ChunkerConfig(max_chars=60))
    again = chunk_documents(docs, ChunkerConfig(max_chars=60))
    assert first.equals(again)
    assert first["chunk_id"].tolist() == ["a#0", "b#0"]
    # the same text in two documents gets two keys (the hash covers the document id)
    small = chunk_documents(docs, ChunkerConfig(max_chars=51))
    assert small["content_hash"].is_unique
