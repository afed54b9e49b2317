"""Per-format readers: bytes of one input file in, plain records out, problems as InputErrors.

Each reader is a small function chosen by the file's suffix from a registry (:data:`DOC_READERS`
for documents, :data:`QA_READERS` for question files); adding a format is adding one function and
one registry entry. Readers never raise on bad input: every problem is appended to ``errors`` with
the file, the line (or CSV record, or PDF page) and the field, and the reader moves on.

A document record is ``{doc_id, title, text, format, file, line}``; a QA record is
``{qa_id, question, answers, doc_ids, group, origin, chunk_id, file, line}`` (``origin`` and
``chunk_id``, empty when absent, mark questions generated from the documents). Text is returned as read; normalising
it (NFC, whitespace) and checking it against the rest of the corpus is the job of ``ingest``.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
from collections.abc import Callable, Iterator

from components.data.errors import InputError
from components.data.html import html_to_text, read_html
from components.data.pdf import read_pdf
from components.data.source import SourceFile, decode_utf8, document, encodable

logger = logging.getLogger(__name__)

__all__ = ["DOC_READERS", "QA_READERS", "SourceFile", "decode_utf8", "html_to_text", "read_html", "read_pdf", "read_qa"]


Records = Iterator[tuple[int, dict]]


# --- decoding and records -----------------------------------------------------------------------


def jsonl_records(text: str, name: str, errors: list[InputError]) -> Records:
    """Yield (line number, record) for each non-blank line that parses as a JSON object."""
    for lineno, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            errors.append(InputError(name, lineno, None, f"not valid JSON: {exc.msg} (column {exc.colno})"))
            continue
        except RecursionError:
            errors.append(InputError(name, lineno, None, "not valid JSON: nested too deeply"))
            continue
        if not isinstance(record, dict):
            errors.append(InputError(name, lineno, None, f"expected a JSON object, got {type(record).__name__}"))
            continue
        yield lineno, record


_LIST_COLUMNS = ("answers", "doc_ids")


def csv_records(text: str, name: str, errors: list[InputError]) -> Records:
    """Yield (line number, record) for each CSV row; the first row names the columns.

    Empty cells count as absent. A cell of a list column (``answers``, ``doc_ids``) that starts
    with ``[`` is read as a JSON list, anything else as one value. The line number is the line
    the record starts on (a quoted cell may span lines).
    """
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    start = 1
    header: list[str] | None = None
    try:
        for row in reader:
            lineno, start = start, reader.line_num + 1
            if not any(cell.strip() for cell in row):
                continue
            if header is None:
                header = [cell.strip() for cell in row]
                dupes = sorted({c for c in header if header.count(c) > 1})
                if dupes:
                    errors.append(InputError(name, lineno, None, f"duplicate column(s) {dupes} in the header"))
                    return
                if "question" not in header:
                    errors.append(InputError(name, lineno, "question", f"no 'question' column in the header {header}"))
                    return
                continue
            if len(row) != len(header):
                errors.append(InputError(name, lineno, None, f"expected {len(header)} cells, got {len(row)}"))
                continue
            record: dict = {}
            bad = False
            for column, cell in zip(header, row, strict=True):
                if not cell.strip():
                    continue
                if column in _LIST_COLUMNS and cell.lstrip().startswith("["):
                    try:
                        record[column] = json.loads(cell)
                    except (json.JSONDecodeError, RecursionError):
                        errors.append(InputError(name, lineno, column, "starts with '[' but is not a JSON list"))
                        bad = True
                        continue
                else:
                    record[column] = cell
            if not bad:
                yield lineno, record
    except csv.Error as exc:
        errors.append(InputError(name, start, None, f"not valid CSV: {exc}"))


def string_field(
    record: dict, name: str, file: str, lineno: int, errors: list[InputError], required: bool = True
) -> str | None:
    """The string ``record[name]``, or None with an error when it is missing or not a string."""
    value = record.get(name)
    if value is None:
        if required:
            errors.append(InputError(file, lineno, name, "missing"))
        return None
    if not isinstance(value, str):
        errors.append(InputError(file, lineno, name, f"expected a string, got {type(value).__name__}"))
        return None
    if not encodable(value):
        errors.append(InputError(file, lineno, name, "holds an unpaired surrogate (\\ud800-\\udfff)"))
        return None
    if required and not value.strip():
        errors.append(InputError(file, lineno, name, "empty"))
        return None
    return value


def string_list(
    record: dict, many: str, one: str, file: str, lineno: int, errors: list[InputError]
) -> list[str] | None:
    """Read ``many`` (a list of strings) or ``one`` (a string); report under the name used."""
    if many in record:
        value, name = record[many], many
        if isinstance(value, str):  # one value where a list was expected: take it
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            errors.append(InputError(file, lineno, name, "expected a list of strings"))
            return None
    elif one in record:
        value, name = record[one], one
        if not isinstance(value, str):
            errors.append(InputError(file, lineno, name, f"expected a string, got {type(value).__name__}"))
            return None
        value = [value]
    else:
        errors.append(InputError(file, lineno, many, f"missing (give {many!r} or {one!r})"))
        return None
    if not all(encodable(v) for v in value):
        errors.append(InputError(file, lineno, name, "holds an unpaired surrogate (\\ud800-\\udfff)"))
        return None
    value = [v.strip() for v in value]
    if not value or not all(value):
        errors.append(InputError(file, lineno, name, "must hold at least one non-empty string"))
        return None
    return value


# --- document readers ---------------------------------------------------------------------------

_MD_TITLE = re.compile(r"^#\s+(.+)$", flags=re.MULTILINE)


def read_jsonl_documents(file: SourceFile, errors: list[InputError]) -> list[dict]:
    """One document per line: ``{"id": str, "text": str, "title": str?}``."""
    text = decode_utf8(file, errors)
    if text is None:
        return []
    docs = []
    for lineno, record in jsonl_records(text, file.name, errors):
        before = len(errors)
        doc_id = string_field(record, "id", file.name, lineno, errors)
        body = string_field(record, "text", file.name, lineno, errors, required=False)
        if record.get("text") is None:  # absent or null
            errors.append(InputError(file.name, lineno, "text", "missing"))
        title = string_field(record, "title", file.name, lineno, errors, required=False)
        if len(errors) == before:
            docs.append(document(file, body, title or "", "jsonl", doc_id.strip(), lineno))
    return docs


def read_markdown(file: SourceFile, errors: list[InputError]) -> list[dict]:
    """The whole file is one document; its first ``# `` heading is the title."""
    text = decode_utf8(file, errors)
    if text is None:
        return []
    heading = _MD_TITLE.search(text)
    return [document(file, text, heading.group(1).strip() if heading else "", "markdown")]


def read_text(file: SourceFile, errors: list[InputError]) -> list[dict]:
    """The whole file is one untitled document."""
    text = decode_utf8(file, errors)
    return [] if text is None else [document(file, text, "", "text")]


DocReader = Callable[[SourceFile, list[InputError]], list[dict]]

DOC_READERS: dict[str, DocReader] = {
    ".jsonl": read_jsonl_documents,
    ".md": read_markdown,
    ".markdown": read_markdown,
    ".txt": read_text,
    ".html": read_html,
    ".htm": read_html,
    ".pdf": read_pdf,
}


# --- QA readers ---------------------------------------------------------------------------------

ORIGINS = ("team", "generated", "reviewed")  # who wrote a question: people, the generator, the generator then people

QA_READERS: dict[str, Callable[[str, str, list[InputError]], Records]] = {
    ".jsonl": jsonl_records,
    ".csv": csv_records,
}


def read_qa(file: SourceFile, errors: list[InputError]) -> list[dict]:
    """Read a QA file (JSONL or CSV, by suffix) into QA records; see data/README.md for the schema."""
    records = QA_READERS.get(file.suffix)
    if records is None:
        errors.append(
            InputError(file.name, None, None, f"unsupported QA file type {file.suffix!r} (use {sorted(QA_READERS)})")
        )
        return []
    text = decode_utf8(file, errors)
    if text is None:
        return []
    rows = []
    for lineno, record in records(text, file.name, errors):
        question = string_field(record, "question", file.name, lineno, errors)
        answers = string_list(record, "answers", "answer", file.name, lineno, errors)
        doc_ids = string_list(record, "doc_ids", "doc_id", file.name, lineno, errors)
        qa_id = string_field(record, "id", file.name, lineno, errors, required=False)
        group = string_field(record, "group", file.name, lineno, errors, required=False)
        origin = string_field(record, "origin", file.name, lineno, errors, required=False)
        chunk_id = string_field(record, "chunk_id", file.name, lineno, errors, required=False)
        if origin is not None and origin.strip() not in ORIGINS:
            errors.append(InputError(file.name, lineno, "origin", f"{origin!r} is not one of {list(ORIGINS)}"))
            continue
        if question is None or answers is None or doc_ids is None:
            continue
        rows.append(
            {
                "qa_id": (qa_id or "").strip() or f"line-{lineno}",
                "id_given": bool((qa_id or "").strip()),
                "question": question,
                "answers": answers,
                "doc_ids": doc_ids,
                "doc_ids_field": "doc_ids" if "doc_ids" in record else "doc_id",
                "group": (group or "").strip(),
                "origin": (origin or "").strip(),
                "chunk_id": (chunk_id or "").strip(),
                "file": file.name,
                "line": lineno,
            }
        )
    return rows
