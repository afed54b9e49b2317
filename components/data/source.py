"""What every reader shares: the bytes of one input file, decoding them, and the document record."""

from __future__ import annotations

from dataclasses import dataclass

from components.data.errors import InputError


@dataclass(frozen=True)
class SourceFile:
    """The bytes of one input file and how errors and ids refer to it."""

    name: str  # shown in errors, e.g. "docs/guide/intro.md"
    doc_id: str  # the path under the documents folder without its suffix, e.g. "guide/intro"
    suffix: str  # lower-case, with the dot
    data: bytes


def decode_utf8(file: SourceFile, errors: list[InputError]) -> str | None:
    """The file as UTF-8 text (a leading BOM dropped), or None with the line of the first bad byte."""
    try:
        return file.data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = file.data[: exc.start].count(b"\n") + 1
        errors.append(InputError(file.name, line, None, f"not valid UTF-8 (byte {exc.start})"))
        return None


def encodable(value: str) -> bool:
    """False for strings holding unpaired surrogates (JSON allows them; UTF-8 and parquet do not)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def document(
    file: SourceFile, text: str, title: str, fmt: str, doc_id: str | None = None, line: int | None = None
) -> dict:
    """A document record: ``{doc_id, title, text, format, file, line}``."""
    return {
        "doc_id": doc_id or file.doc_id,
        "title": title,
        "text": text,
        "format": fmt,
        "file": file.name,
        "line": line,
    }
