"""Chunking: cut normalised documents into retrievable pieces.

Each chunk keeps its document id, its position, the markdown heading path it sits under and a
content hash (of document id and text), the key the index uses for incremental updates. Gold
evidence stays at document level, so re-chunking never breaks the QA-to-corpus mapping.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import pandas as pd

from components.config import ChunkerConfig
from components.ingest import content_hash

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


def paragraph_chunks(text: str, cfg: ChunkerConfig) -> Iterator[tuple[str, str]]:
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


CHUNKERS: dict[str, Callable[[str, ChunkerConfig], Iterator[tuple[str, str]]]] = {
    "paragraph": paragraph_chunks,
}


def chunk_documents(documents: pd.DataFrame, cfg: ChunkerConfig) -> pd.DataFrame:
    """Chunk every document with the chunker ``cfg.kind`` names."""
    chunker = CHUNKERS[cfg.kind]
    rows = []
    for doc_id, text in zip(documents["doc_id"], documents["text"]):
        for position, (heading, chunk) in enumerate(chunker(text, cfg)):
            rows.append({
                "chunk_id": f"{doc_id}#{position}",
                "doc_id": doc_id,
                "position": position,
                "heading": heading,
                "text": chunk,
                "content_hash": content_hash(f"{doc_id}\n{chunk}"),
            })
    return pd.DataFrame(rows, columns=CHUNK_COLUMNS)
