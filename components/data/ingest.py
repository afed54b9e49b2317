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
import os
import re
import time
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from components.config import SplitConfig
from components.data.errors import DataValidationError, InputError
from components.data.readers import DOC_READERS, QA_READERS, SourceFile, read_qa
from components.data.split import SPLITS, leakage_groups, split_questions

__all__ = ["DataValidationError", "InputError", "IngestResult", "ingest", "ingest_files", "ingest_paths"]

logger = logging.getLogger(__name__)

DOC_SUFFIXES = frozenset(DOC_READERS)
QA_FILES = tuple(f"qa{suffix}" for suffix in QA_READERS)  # qa.jsonl, qa.csv
DOCS_DIR = "docs"


@dataclass(frozen=True)
class IngestResult:
    documents: pd.DataFrame  # doc_id, title, text, format, content_hash
    qa: pd.DataFrame  # qa_id, question, answers, doc_ids, group, split
    report: dict  # flat counts, written to data/metrics/ingest.json
    duplicates: dict[str, str] = field(default_factory=dict)  # dropped doc id -> id of the kept copy


def normalize_text(text: str) -> str:
    """Unicode NFC, unified newlines, trailing spaces and runs of blank lines removed."""
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    lines = [re.sub(r"[ \t\f\v\u00a0]+", " ", line).strip() for line in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


# --- reading files (the I/O edge) ---------------------------------------------------------------


def _link_problem(path: Path, root: Path) -> str | None:
    """Why a symbolic link may not be followed, or None for a link to a file inside ``root``."""
    target = path.resolve()
    if not target.is_relative_to(root.resolve()):
        return f"link to {target}, outside {root}: copy the file in instead"
    if target.is_dir():
        return "link to a folder: links to folders are not followed"
    if not target.exists():
        return f"broken link to {target}"
    return None


def read_source(
    path: Path, name: str, doc_id: str, max_bytes: int, root: Path | None, errors: list[InputError]
) -> SourceFile | None:
    """The bytes of one input file as a :class:`SourceFile`, or None with the problem recorded.

    Refuses links that leave ``root`` (when given), anything that is not a regular file and files
    above ``max_bytes`` (checked before reading).
    """
    if path.is_symlink() and root is not None:
        problem = _link_problem(path, root)
        if problem:
            errors.append(InputError(name, None, None, problem))
            return None
    if not path.exists():
        errors.append(InputError(name, None, None, "file not found"))
        return None
    if not path.is_file():
        errors.append(InputError(name, None, None, "not a regular file"))
        return None
    size = path.stat().st_size
    if size > max_bytes:
        errors.append(
            InputError(name, None, None, f"file is {size / 1e6:.1f} MB, above the {max_bytes / 1e6:.1f} MB limit")
        )
        return None
    return SourceFile(name=name, doc_id=doc_id, suffix=path.suffix.lower(), data=path.read_bytes())


def scan_documents(docs_dir: Path, label: str, max_bytes: int, errors: list[InputError]) -> list[SourceFile]:
    """Read every document file under ``docs_dir`` (sorted, so ids and de-duplication are stable).

    Errors name files as ``<label>/<path under docs_dir>``.
    """
    if not docs_dir.is_dir():
        errors.append(InputError(label, None, None, "documents folder not found"))
        return []
    files: list[SourceFile] = []
    for dirpath, dirnames, filenames in os.walk(docs_dir, followlinks=False):
        here = Path(dirpath)
        for d in list(dirnames):
            if d.startswith(".") or (here / d).is_symlink():
                dirnames.remove(d)
                if not d.startswith("."):
                    name = f"{label}/{(here / d).relative_to(docs_dir).as_posix()}"
                    errors.append(InputError(name, None, None, _link_problem(here / d, docs_dir) or "link to a folder"))
        dirnames.sort()
        for fname in sorted(filenames):
            if fname.startswith("."):
                logger.debug("ignoring hidden file %s", here / fname)
                continue
            path = here / fname
            rel = path.relative_to(docs_dir)
            name = f"{label}/{rel.as_posix()}"
            if path.suffix.lower() not in DOC_SUFFIXES:
                errors.append(
                    InputError(name, None, None, f"unsupported file type {path.suffix!r} (use {sorted(DOC_SUFFIXES)})")
                )
                continue
            source = read_source(path, name, rel.with_suffix("").as_posix(), max_bytes, docs_dir, errors)
            if source is not None:
                files.append(source)
    return files


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


def ingest_files(
    doc_files: list[SourceFile],
    qa_file: SourceFile | None,
    split: SplitConfig,
    errors: list[InputError] | None = None,
    known_doc_ids: frozenset[str] = frozenset(),
) -> IngestResult:
    """Parse, validate, normalise, de-duplicate and split already-read input files.

    Args:
        doc_files: document files; each is parsed by the reader its suffix selects.
        qa_file: the QA file (JSONL or CSV); None when it could not be read (an error says why).
        split: how questions are split.
        errors: problems already found while reading the files; reported with the rest.
        known_doc_ids: documents that exist elsewhere (the raw folder new data is merged into):
            questions may refer to them, and the documents may then be none.

    Raises:
        DataValidationError: with every problem found, each naming file, line and field.
    """
    errors = list(errors or [])
    raw_docs: list[dict] = []
    for file in doc_files:
        reader = DOC_READERS.get(file.suffix)
        if reader is None:
            errors.append(InputError(file.name, None, None, f"unsupported file type {file.suffix!r}"))
            continue
        raw_docs += reader(file, errors)
    qa_rows = read_qa(qa_file, errors) if qa_file is not None else []
    docs, aliases = check_documents(raw_docs, errors)
    qa_rows = check_qa(qa_rows, {d["doc_id"] for d in docs} | known_doc_ids, aliases, errors)
    if not errors and not docs and not known_doc_ids:
        errors.append(InputError(DOCS_DIR, None, None, "no documents found"))
    if not errors and not qa_rows:
        errors.append(InputError(qa_file.name if qa_file else "qa", None, None, "no questions found"))
    if errors:
        raise DataValidationError(errors)
    columns = ["doc_id", "title", "text", "format", "content_hash"]
    documents = pd.DataFrame(docs, columns=columns)
    qa = pd.DataFrame(qa_rows)[["qa_id", "question", "answers", "doc_ids", "group"]]
    qa["split"] = split_questions(qa, split)
    qa["leakage_group"] = leakage_groups(qa)  # paraphrases of one fact: resampled together by the bootstrap
    counts = qa["split"].value_counts().reindex(list(SPLITS), fill_value=0)
    formats = Counter(documents["format"])
    report = {
        "input_files": len(doc_files) + (qa_file is not None),
        "input_bytes": sum(len(f.data) for f in doc_files) + (len(qa_file.data) if qa_file else 0),
        "documents": len(documents),
        **{f"documents_{fmt}": formats[fmt] for fmt in sorted(formats)},
        "duplicate_documents_dropped": len(aliases),
        "questions": len(qa),
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
    docs_dir: Path,
    qa_path: Path,
    split: SplitConfig,
    max_file_mb: float,
    docs_label: str | None = None,
    qa_label: str | None = None,
    root: Path | None = None,
    known_doc_ids: frozenset[str] = frozenset(),
) -> IngestResult:
    """Read a documents folder and a QA file from anywhere, then :func:`ingest_files` them.

    Args:
        docs_label, qa_label: how errors name them (default: the paths as given).
        root: when given, a documents folder or QA file that is a link leaving it is refused
            (documents never may leave ``docs_dir``).
        known_doc_ids: as for :func:`ingest_files`.
    """
    errors: list[InputError] = []
    started = time.perf_counter()
    max_bytes = int(max_file_mb * 1e6)
    docs_label = docs_label or str(docs_dir).rstrip("/")
    qa_label = qa_label or str(qa_path)
    problem = _link_problem(docs_dir, root) if root is not None and docs_dir.is_symlink() else None
    if problem and "outside" in problem:
        errors.append(InputError(docs_label, None, None, problem))
        doc_files = []
    else:
        doc_files = scan_documents(docs_dir, docs_label, max_bytes, errors)
    qa_file = None
    if qa_path.suffix.lower() not in QA_READERS:
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
    result = ingest_files(doc_files, qa_file, split, errors, known_doc_ids)
    total_s = time.perf_counter() - started
    logger.info(
        "ingested %d documents in %.1f s (%.0f documents/s)",
        len(result.documents),
        total_s,
        len(result.documents) / total_s,
    )
    return result


def find_qa_file(raw_dir: Path) -> Path:
    """The QA file of a raw folder: qa.jsonl or qa.csv (exactly one of them).

    Raises:
        DataValidationError: when there is none, or both.
    """
    present = [raw_dir / name for name in QA_FILES if (raw_dir / name).exists() or (raw_dir / name).is_symlink()]
    if len(present) == 1:
        return present[0]
    message = "QA file not found" if not present else "more than one QA file: keep one"
    raise DataValidationError([InputError(" or ".join(QA_FILES), None, None, f"{message} in {raw_dir}")])


def ingest(raw_dir: Path, split: SplitConfig, max_file_mb: float) -> IngestResult:
    """Read, validate and split the raw folder (``docs/`` and ``qa.jsonl`` or ``qa.csv``).

    Raises:
        DataValidationError: with every problem found, each naming file, line and field.
    """
    qa_path = find_qa_file(raw_dir)
    return ingest_paths(raw_dir / DOCS_DIR, qa_path, split, max_file_mb, DOCS_DIR, qa_path.name, root=raw_dir)
