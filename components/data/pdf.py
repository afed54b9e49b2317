"""PDF documents: the text layer (pypdf), without page furniture, with words broken at line ends rejoined.

pypdf gives each page's text line by line, as printed. What a reader skips is in it too: running
headers and footers (the manual's title, the chapter, "Page 3 of 12") on every page, and words
hyphenated at a line end ("manip-" / "ulation"). Both end up in chunks, training text and
retrieved context. So, per document:

- **furniture**: a line among the first or last :data:`EDGE` lines of a page is dropped when the
  same line (digits ignored, so "Page 3" matches "Page 4") stands at the edge of at least
  :data:`MIN_SHARE` of the pages (and at least 2); a line that is only a page number ("12",
  "- 12 -", "Page 12", "12 of 40") at a page's edge is dropped on any document of two or more pages;
- **hyphenation**: a line ending in letter + "-" followed by a line starting with a lower-case letter
  is joined without the hyphen ("manip-" + "ulation" -> "manipulation"), unless the hyphenated
  word appears unbroken elsewhere in the document ("well-known" stays "well-known");
- **wrapped lines**: a line that does not end a sentence followed by one that starts in lower case
  continues it (joined with a space), also across a page break; pages stay paragraphs otherwise.
"""

from __future__ import annotations

import io
import re
from collections import Counter

from components.data.errors import InputError
from components.data.source import SourceFile, document, encodable

EDGE = 2  # lines at the top and at the bottom of a page that may be furniture
MIN_SHARE = 0.5  # a repeated edge line is furniture when it is on at least this share of the pages

_PAGE_NUMBER = re.compile(r"^\s*(?:page\s+)?[-–—]?\s*\d{1,4}\s*[-–—]?\s*(?:(?:of|/)\s*\d{1,4})?\s*$", re.IGNORECASE)
_BROKEN = re.compile(r"(\w*[^\W\d_])-$")  # a line ending in letter + hyphen: the first part of a word
_CONTINUES = re.compile(r"^[^\W\d_A-Z]")  # starts with a lower-case letter (any script without case counts)
_SENTENCE_END = re.compile(r"[.!?:;)\]\"'”’]$")


def _key(line: str) -> str:
    return re.sub(r"\d+", "#", " ".join(line.split()).casefold())


def drop_furniture(pages: list[list[str]]) -> list[list[str]]:
    """The pages' lines without running headers, footers and page numbers (see the module doc)."""
    if len(pages) < 2:
        return pages
    edges = Counter()
    for lines in pages:
        edge = {_key(line) for line in [*lines[:EDGE], *lines[-EDGE:]] if line.strip()}
        edges.update(edge)
    repeated = {k for k, n in edges.items() if n >= max(2, MIN_SHARE * len(pages))}
    cleaned = []
    for lines in pages:
        keep = []
        for i, line in enumerate(lines):
            at_edge = i < EDGE or i >= len(lines) - EDGE
            if at_edge and (_key(line) in repeated or _PAGE_NUMBER.match(line)):
                continue
            keep.append(line)
        cleaned.append(keep)
    return cleaned


def join_lines(lines: list[str]) -> list[str]:
    """Rejoin words hyphenated at a line end and lines that continue a sentence (see the module doc).

    An empty line is a paragraph break (a page break): kept, unless the sentence runs on across it.
    """
    unbroken = set(re.findall(r"\b\w+-\w+\b", "\n".join(lines)))
    out: list[str] = []
    pending_break = False
    for line in (raw.strip() for raw in lines):
        if not line:
            pending_break = bool(out)
            continue
        previous = out[-1] if out else ""
        if previous and _CONTINUES.match(line):
            broken = _BROKEN.search(previous)
            first = line.split(maxsplit=1)[0].rstrip(".,;:!?")
            if broken and f"{broken.group(1)}-{first}" not in unbroken:
                out[-1] = previous[:-1] + line
                pending_break = False
                continue
            if broken or not _SENTENCE_END.search(previous):
                out[-1] = previous + line if broken else f"{previous} {line}"
                pending_break = False
                continue
        if pending_break:
            out.append("")
            pending_break = False
        out.append(line)
    return out


def clean_pages(pages: list[str]) -> str:
    """The document's text: furniture dropped, lines rejoined, pages as paragraphs (a sentence runs on across them)."""
    kept = drop_furniture([page.splitlines() for page in pages])
    return "\n".join(join_lines([line for lines in kept for line in [*lines, ""]]))


def read_pdf(file: SourceFile, errors: list[InputError]) -> list[dict]:
    """The text of every page (pypdf's extraction, cleaned: see the module doc) is one document.

    Errors name the page as the record. PDFs without a text layer (scans) come out empty and are
    refused as empty documents; run OCR first.
    """
    from pypdf import PdfReader

    try:
        reader = PdfReader(io.BytesIO(file.data))
        if reader.is_encrypted and not reader.decrypt(""):
            errors.append(InputError(file.name, None, None, "encrypted PDF: decrypt it first"))
            return []
        pages = list(reader.pages)
        meta_title = (reader.metadata or {}).get("/Title")
    except Exception as exc:  # pypdf raises many exception types on malformed files; all mean the same
        errors.append(InputError(file.name, None, None, f"not a readable PDF ({type(exc).__name__}: {exc})"))
        return []
    texts = []
    for number, page in enumerate(pages, start=1):
        try:
            texts.append(page.extract_text() or "")
        except Exception as exc:  # as above: a broken page stream
            errors.append(InputError(file.name, number, "page", f"text not extractable ({type(exc).__name__}: {exc})"))
    text = clean_pages(texts)
    if not encodable(text):
        errors.append(InputError(file.name, None, None, "extracted text holds unpaired surrogates"))
        return []
    title = str(meta_title).strip() if isinstance(meta_title, str) and encodable(meta_title) else ""
    return [document(file, text, title, "pdf")]
