"""Ingestion: read the raw corpus and QA pairs, validate, normalise, de-duplicate and split.

Raw layout (under ``paths.raw``)::

    docs/     documents, one reader per suffix (components/data/readers.py): *.jsonl (one
              {"id", "text", "title"?} per line), *.md, *.markdown, *.txt, *.html, *.htm, *.pdf
              (a file's path relative to docs/, without suffix, is its id); names starting
              with "." are ignored
    qa.jsonl  one {"question", "answers" | "answer", "doc_ids" | "doc_id", "id"?, "group"?} per line
    (or qa.csv with the same columns)

Reading files (``scan_documents``, ``read_source``) is the I/O edge; everything after it
(``ingest_files``) is pure. Every problem is collected as an :class:`InputError` naming the file,
the line and the field, and all of them are raised together; nothing under the raw folder is
ever written.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from components.config import SplitConfig
from components.data.errors import DataValidationError, InputError
from components.data.files import link_problem, read_source, scan_documents
from components.data.readers import DOC_READERS, QA_READERS, SourceFile, read_qa
from components.data.split import SPLITS, leakage_groups, split_questions

__all__ = ["DataValidationError", "InputError", "IngestResult", "ingest", "ingest_files", "ingest_paths"]

logger = logging.getLogger(__name__)


QA_COLUMNS = ["qa_id", "question", "answers", "doc_ids", "group", "origin", "chunk_id"]
TEAM_ORIGINS = {"": "team", "generated": "reviewed"}  # in the team's QA file: a generated question came back reviewed
QA_FILES = tuple(f"qa{suffix}" for suffix in QA_READERS)  # qa.jsonl, qa.csv
DOCS_DIR = "docs"


@dataclass(frozen=True)
class IngestResult:
    documents: pd.DataFrame  # doc_id, title, text, format, content_hash
    qa: pd.DataFrame  # qa_id, question, answers, doc_ids, group, origin, chunk_id, split, leakage_group
    report: dict  # flat counts, written to data/metrics/ingest.json
    duplicates: dict[str, str] = field(default_factory=dict)  # dropped doc id -> id of the kept copy


def normalize_text(text: str) -> str:
    """Unicode NFC, unified newlines, trailing spaces and runs of blank lines removed."""
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    lines = [re.sub(r"[ \t\f\v\u00a0]+", " ", line).strip() for line in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


# --- checking (pure) ----------------------------------------------------------------------------


def _where(record: dict) -> str:
    return record["file"] if record["line"] is None else f"{record['file']}:{record['line']}"


def check_documents(docs: list[dict], errors: list[InputError]) -> tuple[list[dict], dict[str, str]]:
    """Normalise text, refuse empty documents and duplicate ids, drop exact duplicate content.

    Returns:
        The kept documents, and for each dropped duplicate the id of the kept copy.
    """
    seen_ids: dict[str, str] = {}
    seen_hash: dict[str, str] = {}
    aliases: dict[str, str] = {}
    kept = []
    for doc in docs:
        doc_id = unicodedata.normalize("NFC", doc["doc_id"])
        text = normalize_text(doc["text"])
        if not text:
            errors.append(InputError(doc["file"], doc["line"], "text", f"document {doc_id!r} is empty"))
            continue
        if doc_id in seen_ids:
            errors.append(
                InputError(
                    doc["file"], doc["line"], "id", f"duplicate document id {doc_id!r} (first at {seen_ids[doc_id]})"
                )
            )
            continue
        seen_ids[doc_id] = _where(doc)
        digest = content_hash(text)
        if digest in seen_hash:
            logger.debug("dropping %s: same content as %s", doc_id, seen_hash[digest])
            aliases[doc_id] = seen_hash[digest]
            continue
        seen_hash[digest] = doc_id
        kept.append(
            {**doc, "doc_id": doc_id, "title": normalize_text(doc["title"]), "text": text, "content_hash": digest}
        )
    return kept, aliases


def check_qa(qa: list[dict], doc_ids: set[str], aliases: dict[str, str], errors: list[InputError]) -> list[dict]:
    """Normalise questions and answers, refuse duplicate QA ids and references to unknown documents.

    References to a dropped duplicate document follow it to the kept copy.
    """
    seen: dict[str, str] = {}
    kept = []
    for row in qa:
        if row["qa_id"] in seen:
            errors.append(
                InputError(
                    row["file"], row["line"], "id", f"duplicate QA id {row['qa_id']!r} (first at {seen[row['qa_id']]})"
                )
            )
            continue
        seen[row["qa_id"]] = _where(row)
        question = normalize_text(row["question"])
        answers = [normalize_text(a) for a in row["answers"]]
        resolved = [aliases.get(d, d) for d in (unicodedata.normalize("NFC", d) for d in row["doc_ids"])]
        unknown = [d for d in resolved if d not in doc_ids]
        field_name = row.get("doc_ids_field", "doc_ids")
        if unknown:
            errors.append(InputError(row["file"], row["line"], field_name, f"unknown document id(s) {unknown}"))
            continue
        kept.append({**row, "question": question, "answers": answers, "doc_ids": list(dict.fromkeys(resolved))})
    return kept


def read_documents(doc_files: list[SourceFile], errors: list[InputError]) -> list[dict]:
    """Document records of every file, each parsed by the reader its suffix selects."""
    raw_docs: list[dict] = []
    for file in doc_files:
        reader = DOC_READERS.get(file.suffix)
        if reader is None:
            errors.append(InputError(file.name, None, None, f"unsupported file type {file.suffix!r}"))
            continue
        raw_docs += reader(file, errors)
    return raw_docs


DOCUMENT_COLUMNS = ["doc_id", "title", "text", "format", "content_hash"]


def ingest_documents(docs_dir: Path, max_file_mb: float, label: str = DOCS_DIR) -> pd.DataFrame:
    """The documents of a folder, read, checked, normalised and de-duplicated as :func:`ingest` does.

    Raises:
        DataValidationError: with every problem found.
    """
    errors: list[InputError] = []
    files = scan_documents(docs_dir, label, int(max_file_mb * 1e6), errors)
    docs, _ = check_documents(read_documents(files, errors), errors)
    if not errors and not docs:
        errors.append(InputError(label, None, None, "no documents found"))
    if errors:
        raise DataValidationError(errors)
    return pd.DataFrame(docs, columns=DOCUMENT_COLUMNS)


def ingest_files(
    doc_files: list[SourceFile],
    qa_file: SourceFile | None,
    split: SplitConfig,
    errors: list[InputError] | None = None,
    known_doc_ids: frozenset[str] = frozenset(),
    generated: SourceFile | None = None,
    require_questions: bool = True,
) -> IngestResult:
    """Parse, validate, normalise, de-duplicate and split already-read input files.

    Args:
        doc_files: document files; each is parsed by the reader its suffix selects.
        qa_file: the QA file (JSONL or CSV); None when it could not be read (an error says why).
        split: how questions are split.
        errors: problems already found while reading the files; reported with the rest.
        known_doc_ids: documents that exist elsewhere (the raw folder new data is merged into):
            questions may refer to them, and the documents may then be none.
        generated: questions the ``questions`` stage generated from the documents (origin ``generated``);
            in ``qa_file`` a question marked ``generated`` came back from review (origin ``reviewed``),
            one without origin was written by the team (``team``).
        require_questions: False: no question at all is no error (documents only: ``data check --docs``).

    Raises:
        DataValidationError: with every problem found, each naming file, line and field.
    """
    errors = list(errors or [])
    raw_docs = read_documents(doc_files, errors)
    team = read_qa(qa_file, errors) if qa_file else []
    qa_rows = [{**r, "origin": TEAM_ORIGINS.get(r["origin"], r["origin"])} for r in team]
    qa_rows += [{**r, "origin": "generated"} for r in read_qa(generated, errors)] if generated else []
    docs, aliases = check_documents(raw_docs, errors)
    qa_rows = check_qa(qa_rows, {d["doc_id"] for d in docs} | known_doc_ids, aliases, errors)
    if not errors and not docs and not known_doc_ids:
        errors.append(InputError(DOCS_DIR, None, None, "no documents found"))
    if not errors and not qa_rows and require_questions:
        where = qa_file.name if qa_file else generated.name if generated else "qa"
        more = " (and no question file: see the `questions` stage's report.json beside it)" if not qa_file else ""
        errors.append(InputError(where, None, None, f"no questions found{more}"))
    if errors:
        raise DataValidationError(errors)
    qa_files = [f for f in (qa_file, generated) if f is not None]
    documents = pd.DataFrame(docs, columns=DOCUMENT_COLUMNS)
    qa = pd.DataFrame(qa_rows, columns=[*QA_COLUMNS, "file"])[QA_COLUMNS]
    qa["leakage_group"] = leakage_groups(qa, split)  # one split each, resampled together by the bootstrap
    qa["split"] = split_questions(qa, split, qa["leakage_group"].tolist())
    counts = qa["split"].value_counts().reindex(list(SPLITS), fill_value=0)
    formats = Counter(documents["format"])
    report = {
        "input_files": len(doc_files) + len(qa_files),
        "input_bytes": sum(len(f.data) for f in [*doc_files, *qa_files]),
        "documents": len(documents),
        **{f"documents_{fmt}": formats[fmt] for fmt in sorted(formats)},
        "duplicate_documents_dropped": len(aliases),
        "questions": len(qa),
        **{f"questions_{o}": int((qa["origin"] == o).sum()) for o in sorted(set(qa["origin"]))},
        **{f"questions_{s}": int(counts[s]) for s in SPLITS},
        **{f"groups_{s}": int(qa.loc[qa["split"] == s, "leakage_group"].nunique()) for s in SPLITS},
        "corpus_chars": int(documents["text"].str.len().sum()),
    }
    if aliases:
        logger.info(
            "dropped %d documents whose text repeats another one's (e.g. %s)", len(aliases), next(iter(aliases.items()))
        )
    logger.debug("report %s", report)
    return IngestResult(documents=documents, qa=qa, report=report, duplicates=aliases)


def ingest_paths(
    docs_dir: Path | None,
    qa_path: Path | None,
    split: SplitConfig,
    max_file_mb: float,
    docs_label: str | None = None,
    qa_label: str | None = None,
    root: Path | None = None,
    known_doc_ids: frozenset[str] = frozenset(),
    generated: Path | None = None,
) -> IngestResult:
    """Read a documents folder and a QA file from anywhere, then :func:`ingest_files` them.

    Args:
        docs_dir: None: questions only (about ``known_doc_ids``).
        qa_path: None: documents only (no question is then no error).
        docs_label, qa_label: how errors name them (default: the paths as given).
        root: when given, a documents folder or QA file that is a link leaving it is refused
            (documents never may leave ``docs_dir``).
        known_doc_ids: as for :func:`ingest_files`.
        generated: the ``questions`` stage's generated questions (JSONL), read when the file exists.
    """
    errors: list[InputError] = []
    started = time.perf_counter()
    max_bytes = int(max_file_mb * 1e6)
    docs_label = docs_label or str(docs_dir).rstrip("/")
    qa_label = qa_label or str(qa_path)
    generated_file = None
    if generated is not None and generated.is_file():
        generated_file = read_source(generated, str(generated), "", max_bytes, None, errors)
    problem = link_problem(docs_dir, root) if root is not None and docs_dir and docs_dir.is_symlink() else None
    if problem and "outside" in problem:
        errors.append(InputError(docs_label, None, None, problem))
        doc_files = []
    else:
        doc_files = scan_documents(docs_dir, docs_label, max_bytes, errors) if docs_dir is not None else []
    qa_file = None
    if qa_path is None:
        pass
    elif qa_path.suffix.lower() not in QA_READERS:
        errors.append(
            InputError(qa_label, None, None, f"unsupported QA file type {qa_path.suffix!r} (use {sorted(QA_READERS)})")
        )
    else:
        qa_file = read_source(qa_path, qa_label, "", max_bytes, root, errors)
    n_bytes = sum(len(f.data) for f in doc_files)
    read_s = time.perf_counter() - started
    logger.info(
        "read %d files, %.1f MB in %.1f s (%.1f MB/s)",
        len(doc_files),
        n_bytes / 1e6,
        read_s,
        n_bytes / 1e6 / max(read_s, 1e-9),
    )
    wanted = qa_path is not None or generated is not None
    result = ingest_files(doc_files, qa_file, split, errors, known_doc_ids, generated_file, require_questions=wanted)
    total_s = time.perf_counter() - started
    logger.info(
        "ingested %d documents in %.1f s (%.0f documents/s)",
        len(result.documents),
        total_s,
        len(result.documents) / total_s,
    )
    return result


def find_qa_file(raw_dir: Path, required: bool = True) -> Path | None:
    """The QA file of a raw folder: qa.jsonl or qa.csv (exactly one of them; None if none and not ``required``).

    Raises:
        DataValidationError: when there is none (and one is required), or both.
    """
    present = [raw_dir / name for name in QA_FILES if (raw_dir / name).exists() or (raw_dir / name).is_symlink()]
    if len(present) == 1 or (not present and not required):
        return present[0] if present else None
    message = "QA file not found" if not present else "more than one QA file: keep one"
    raise DataValidationError([InputError(" or ".join(QA_FILES), None, None, f"{message} in {raw_dir}")])


def ingest(
    raw_dir: Path, split: SplitConfig, max_file_mb: float, generated: Path | None = None, require_questions: bool = True
) -> IngestResult:
    """Read, validate and split the raw folder (``docs/`` and ``qa.jsonl`` or ``qa.csv``).

    Args:
        generated: the ``questions`` stage's output (JSONL); with it the raw folder needs no QA file.
        require_questions: False: a raw folder of documents only is valid (its questions will be generated).

    Raises:
        DataValidationError: with every problem found, each naming file, line and field.
    """
    qa_path = find_qa_file(raw_dir, required=require_questions and generated is None)
    if qa_path is None and generated is not None and not generated.is_file() and require_questions:
        message = "QA file not found, and no generated questions (run `ragtune questions` first)"
        raise DataValidationError([InputError(" or ".join(QA_FILES), None, None, f"{message} in {raw_dir}")])
    label = qa_path.name if qa_path else None
    return ingest_paths(
        raw_dir / DOCS_DIR, qa_path, split, max_file_mb, DOCS_DIR, label, root=raw_dir, generated=generated
    )
