"""Chunking: cut normalised documents into retrievable pieces.

One small strategy function per ``kind`` of chunker config (:data:`CHUNKERS`), each yielding
(heading path, chunk text):

- ``paragraph``: whole paragraphs packed up to ``max_chars`` (over-long ones cut at sentence ends);
- ``sentence``: whole sentences packed up to ``max_chars``, optionally repeating the last
  ``overlap`` sentences;
- ``token``: fixed windows of ``size`` tokens with ``overlap``; a token is a run of non-space
  characters (regex ``\S+``), not the embedder's word pieces, so windows do not depend on the
  embedder (one word is one or more word pieces: keep ``size`` well under the embedder's limit);
- ``heading``: one chunk per markdown section, long sections packed by paragraph.

Each chunk keeps its document id, its position, the markdown heading path it sits under and a
content hash (of document id and text), the key the index uses for incremental updates. Gold
evidence stays at document level, so re-chunking never breaks the QA-to-corpus mapping.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Iterator

import pandas as pd

from components.config import (
    AnyChunkerConfig,
    HeadingChunkerConfig,
    ParagraphChunkerConfig,
    SentenceChunkerConfig,
    TokenChunkerConfig,
)
from components.data.ingest import content_hash

CHUNK_COLUMNS = ["chunk_id", "doc_id", "position", "heading", "text", "content_hash"]

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_HEADING = re.compile(r"^(#{1,6})\s+(.+)$")


def _pieces(paragraph: str, max_chars: int) -> Iterator[str]:
    """Split an over-long paragraph at sentence ends, then hard at ``max_chars``."""
    if len(paragraph) <= max_chars:
        yield paragraph
        return
    current = ""
    for sentence in _SENTENCE_END.split(paragraph):
        while len(sentence) > max_chars:
            if current:
                yield current
                current = ""
            yield sentence[:max_chars]
            sentence = sentence[max_chars:]
        if current and len(current) + 1 + len(sentence) > max_chars:
            yield current
            current = sentence
        else:
            current = f"{current} {sentence}" if current else sentence
    if current:
        yield current


def paragraph_chunks(text: str, cfg: ParagraphChunkerConfig) -> Iterator[tuple[str, str]]:
    """Pack whole paragraphs into chunks of at most ``max_chars``; yield (heading path, text)."""
    headings: list[str] = []
    current: list[str] = []
    current_heading = ""
    size = 0
    for paragraph in text.split("\n\n"):
        match = _HEADING.match(paragraph.split("\n", 1)[0])
        if match:  # a new section starts a new chunk
            if current:
                yield current_heading, "\n\n".join(current)
                current, size = [], 0
            level = len(match.group(1))
            headings = headings[: level - 1] + [match.group(2).strip()]
        for piece in _pieces(paragraph, cfg.max_chars):
            if current and size + 2 + len(piece) > cfg.max_chars:
                yield current_heading, "\n\n".join(current)
                current, size = [], 0
            if not current:
                current_heading = " > ".join(headings)
            current.append(piece)
            size += len(piece) + (2 if size else 0)
    if current:
        yield current_heading, "\n\n".join(current)


def _heading_marks(text: str, max_level: int = 6) -> tuple[list[int], list[str]]:
    """Offsets of the heading lines (up to ``max_level``) and the heading path each one starts."""
    offsets, paths, headings = [0], [""], []
    for match in re.finditer(r"(?m)^(#{1,6})\s+(.+)$", text):
        level = len(match.group(1))
        if level > max_level:
            continue
        headings = headings[: level - 1] + [match.group(2).strip()]
        offsets.append(match.start())
        paths.append(" > ".join(headings))
    return offsets, paths


def _sections(text: str, max_level: int = 6) -> Iterator[tuple[str, str]]:
    """(heading path, text) of each markdown section, the heading line included."""
    offsets, paths = _heading_marks(text, max_level)
    for i, start in enumerate(offsets):
        end = offsets[i + 1] if i + 1 < len(offsets) else len(text)
        section = text[start:end].strip()
        if section:
            yield paths[i], section


def sentence_chunks(text: str, cfg: SentenceChunkerConfig) -> Iterator[tuple[str, str]]:
    """Pack whole sentences into chunks of at most ``max_chars``; a new section starts a new chunk."""
    for heading, section in _sections(text):
        sentences = [
            piece
            for paragraph in section.split("\n\n")
            for sentence in _SENTENCE_END.split(paragraph.strip())
            for piece in _pieces(sentence.strip(), cfg.max_chars)
            if piece
        ]
        current: list[str] = []
        fresh = 0  # sentences in ``current`` not yet emitted
        for sentence in sentences:
            if current and len(" ".join([*current, sentence])) > cfg.max_chars:
                if fresh:
                    yield heading, " ".join(current)
                current = current[len(current) - cfg.overlap :] if cfg.overlap else []
                while current and len(" ".join([*current, sentence])) > cfg.max_chars:
                    current.pop(0)
                fresh = 0
            current.append(sentence)
            fresh += 1
        if fresh:
            yield heading, " ".join(current)


_TOKEN = re.compile(r"\S+")


def token_chunks(text: str, cfg: TokenChunkerConfig) -> Iterator[tuple[str, str]]:
    """Windows of ``size`` whitespace tokens, ``overlap`` tokens shared with the previous window.

    A chunk is the original text from its first token to its last (inner spacing kept); its
    heading path is the one in force at its first token.
    """
    spans = [m.span() for m in _TOKEN.finditer(text)]
    offsets, paths = _heading_marks(text)
    step = cfg.size - cfg.overlap
    for first in range(0, len(spans), step):
        last = min(first + cfg.size, len(spans)) - 1
        start = spans[first][0]
        yield paths[bisect.bisect_right(offsets, start) - 1], text[start : spans[last][1]]
        if last == len(spans) - 1:
            break


def heading_chunks(text: str, cfg: HeadingChunkerConfig) -> Iterator[tuple[str, str]]:
    """One chunk per markdown section (headings up to ``max_level``); long sections by paragraph."""
    packer = ParagraphChunkerConfig(kind="paragraph", max_chars=cfg.max_chars)
    for heading, section in _sections(text, cfg.max_level):
        if len(section) <= cfg.max_chars:
            yield heading, section
            continue
        for _, chunk in paragraph_chunks(section, packer):
            yield heading, chunk


CHUNKERS: dict[str, Callable[[str, AnyChunkerConfig], Iterator[tuple[str, str]]]] = {
    "paragraph": paragraph_chunks,
    "sentence": sentence_chunks,
    "token": token_chunks,
    "heading": heading_chunks,
}


def chunk_documents(documents: pd.DataFrame, cfg: AnyChunkerConfig) -> pd.DataFrame:
    """Chunk every document with the chunker ``cfg.kind`` names."""
    chunker = CHUNKERS[cfg.kind]
    rows = []
    for doc_id, text in zip(documents["doc_id"], documents["text"], strict=True):
        for position, (heading, chunk) in enumerate(chunker(text, cfg)):
            rows.append(
                {
                    "chunk_id": f"{doc_id}#{position}",
                    "doc_id": doc_id,
                    "position": position,
                    "heading": heading,
                    "text": chunk,
                    "content_hash": content_hash(f"{doc_id}\n{chunk}"),
                }
            )
    return pd.DataFrame(rows, columns=CHUNK_COLUMNS)
