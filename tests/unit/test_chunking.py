import shutil

import pandas as pd
import pytest
import yaml
from pydantic import ValidationError

from components.config import (
    ConfigError,
    HeadingChunkerConfig,
    ParagraphChunkerConfig,
    SentenceChunkerConfig,
    TokenChunkerConfig,
    load_params,
)
from components.data.chunking import (
    CHUNKERS,
    chunk_documents,
    heading_chunks,
    paragraph_chunks,
    sentence_chunks,
    token_chunks,
)
from tests.conftest import REPO


def test_paragraphs_are_packed_up_to_max_chars_with_heading_path():
    text = "# Title\n\nFirst para.\n\n## Part\n\n" + "Sentence number one. " * 10 + "\n\nLast."
    chunks = list(paragraph_chunks(text, ParagraphChunkerConfig(kind="paragraph", max_chars=120)))
    assert all(len(body) <= 120 for _, body in chunks)
    assert chunks[0] == ("Title", "# Title\n\nFirst para.")
    assert chunks[-1][0] == "Title > Part"
    # nothing is lost but the paragraph separators
    joined = " ".join(body for _, body in chunks).split()
    assert joined == text.split()


def test_a_word_longer_than_max_chars_is_cut_hard():
    chunks = list(paragraph_chunks("x" * 250, ParagraphChunkerConfig(kind="paragraph", max_chars=100)))
    assert [len(b) for _, b in chunks] == [100, 100, 50]


def test_chunk_ids_positions_and_hashes_are_stable():
    docs = pd.DataFrame({"doc_id": ["a", "b"], "text": ["One.\n\nTwo.", "One."]})
    first = chunk_documents(docs, ParagraphChunkerConfig(kind="paragraph", max_chars=60))
    again = chunk_documents(docs, ParagraphChunkerConfig(kind="paragraph", max_chars=60))
    assert first.equals(again)
    assert first["chunk_id"].tolist() == ["a#0", "b#0"]
    # the same text in two documents gets two keys (the hash covers the document id)
    small = chunk_documents(docs, ParagraphChunkerConfig(kind="paragraph", max_chars=51))
    assert small["content_hash"].is_unique


# --- sentence, token and heading chunkers ---------------------------------------------------------

DOC = (
    "# Guide\n\nIntro sentence one. Intro sentence two!\n\n## Install\n\n"
    "Run the installer. Then restart? Done.\n\n### Linux\n\nUse the package manager.\n\n# Appendix\n\nLast words."
)


def test_token_windows_have_the_size_and_overlap_and_cover_every_token():
    cfg = TokenChunkerConfig(kind="token", size=6, overlap=2)
    chunks = list(token_chunks(DOC, cfg))
    windows = [body.split() for _, body in chunks]
    assert all(len(w) == 6 for w in windows[:-1]) and 0 < len(windows[-1]) <= 6
    for prev, nxt in zip(windows, windows[1:], strict=False):
        assert prev[-2:] == nxt[:2]
    tokens = DOC.split()
    rebuilt = windows[0] + [t for w in windows[1:] for t in w[2:]]
    assert rebuilt == tokens
    assert chunks[0][0] == "Guide"
    assert any(h == "Guide > Install > Linux" for h, _ in chunks)


def test_token_window_larger_than_the_document_is_one_chunk():
    assert list(token_chunks("a b c", TokenChunkerConfig(kind="token", size=10, overlap=3))) == [("", "a b c")]


def test_token_overlap_must_be_below_size():
    with pytest.raises(ValidationError, match="overlap"):
        TokenChunkerConfig(kind="token", size=4, overlap=4)


def test_sentences_are_packed_whole_and_sections_start_new_chunks():
    cfg = SentenceChunkerConfig(kind="sentence", max_chars=60, overlap=0)
    chunks = list(sentence_chunks(DOC, cfg))
    assert all(len(body) <= 60 for _, body in chunks)
    assert [h for h, _ in chunks][:2] == ["Guide", "Guide > Install"]
    assert ("Guide > Install", "## Install Run the installer. Then restart? Done.") in chunks
    assert " ".join(b for _, b in chunks).split() == DOC.split()


def test_sentence_overlap_repeats_the_last_sentences():
    text = "One is here. Two is here. Three is here. Four is here."
    chunks = [b for _, b in sentence_chunks(text, SentenceChunkerConfig(kind="sentence", max_chars=60, overlap=1))]
    assert chunks == ["One is here. Two is here. Three is here. Four is here."]
    chunks = [b for _, b in sentence_chunks(text, SentenceChunkerConfig(kind="sentence", max_chars=51, overlap=1))]
    assert chunks == ["One is here. Two is here. Three is here.", "Three is here. Four is here."]


def test_heading_sections_respect_max_level_and_split_long_sections():
    top = list(heading_chunks(DOC, HeadingChunkerConfig(kind="heading", max_level=1, max_chars=2000)))
    assert [h for h, _ in top] == ["Guide", "Appendix"]
    assert top[0][1].startswith("# Guide") and "### Linux" in top[0][1]
    every = list(heading_chunks(DOC, HeadingChunkerConfig(kind="heading", max_level=6, max_chars=2000)))
    assert [h for h, _ in every] == ["Guide", "Guide > Install", "Guide > Install > Linux", "Appendix"]
    small = list(heading_chunks(DOC, HeadingChunkerConfig(kind="heading", max_level=1, max_chars=60)))
    assert all(len(b) <= 60 for _, b in small) and {h for h, _ in small} == {"Guide", "Appendix"}


@pytest.mark.parametrize(
    "cfg",
    [
        ParagraphChunkerConfig(kind="paragraph", max_chars=80),
        SentenceChunkerConfig(kind="sentence", max_chars=80, overlap=1),
        TokenChunkerConfig(kind="token", size=8, overlap=3),
        HeadingChunkerConfig(kind="heading", max_level=6, max_chars=80),
    ],
    ids=lambda c: c.kind,
)
def test_every_kind_keeps_doc_id_position_heading_and_hash(cfg):
    docs = pd.DataFrame({"doc_id": ["g", "h"], "text": [DOC, "Plain text without headings."]})
    chunks = chunk_documents(docs, cfg)
    assert list(chunks.columns) == ["chunk_id", "doc_id", "position", "heading", "text", "content_hash"]
    for doc_id, group in chunks.groupby("doc_id"):
        assert group["position"].tolist() == list(range(len(group)))
        assert group["chunk_id"].tolist() == [f"{doc_id}#{i}" for i in range(len(group))]
    assert chunks["content_hash"].str.fullmatch(r"[0-9a-f]{16}").all()
    assert (chunks["text"].str.len() > 0).all()
    assert chunk_documents(docs, cfg).equals(chunks)


def test_params_data_yaml_chunkers_load_and_para_400_is_kept(params):
    assert params.data.chunkers["para-400"] == ParagraphChunkerConfig(kind="paragraph", max_chars=400)
    assert {c.kind for c in params.data.chunkers.values()} == set(CHUNKERS)


def test_a_bad_chunker_fails_at_load_time_naming_file_and_key(tmp_path):
    shutil.copytree(REPO / "params", tmp_path / "params")
    data = yaml.safe_load((tmp_path / "params" / "data.yaml").read_text())
    data["chunkers"]["tok-96"]["overlap"] = 96
    data["chunkers"]["sections"]["size"] = 5  # a field of another kind
    (tmp_path / "params" / "data.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as err:
        load_params(tmp_path / "params")
    assert "data.yaml: chunkers.tok-96.token: Value error, overlap (96) must be smaller than size (96)" in str(
        err.value
    )
    assert "data.yaml: chunkers.sections.heading.size: Extra inputs are not permitted" in str(err.value)
