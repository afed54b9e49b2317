"""Ingestion: read the raw corpus and QA pairs, validate, normalise, de-duplicate and split.

Raw layout (under ``paths.raw``)::

    docs/   documents: *.jsonl (one {"id", "text", "title"?} per line), *.md, *.markdown, *.txt
            (a file's path relative to docs/, without suffix, is its id)
    qa.jsonl  one {"question", "answers" | "answer", "doc_ids" | "doc_id", "id"?, "group"?} per line

Every problem is collected as an :class:`InputError` naming the file, the line and the field, and
all of them are raised together; nothing under the raw folder is ever written.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from components.config import SplitConfig

logger = logging.getLogger(__name__)

DOC_SUFFIXES = {".jsonl", ".md", ".markdown", ".txt"}
QA_FILE = "qa.jsonl"
DOCS_DIR = "docs"
SPLITS = ("train", "dev", "test")


@dataclass(frozen=True)
class InputError:
    """One problem in the input, precise enough to fix without a debugger."""

    file: str
    line: int | None
    field: str | None
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


class DataValidationError(ValueError):
    """The input has problems; ``errors`` lists every one of them."""

    def __init__(self, errors: list[InputError]):
        self.errors = errors
        shown = "\n".join(f"  {e}" for e in errors[:50])
        more = f"\n  ... and {len(errors) - 50} more" if len(errors) > 50 else ""
        super().__init__(f"{len(errors)} problem(s) in the input:\n{shown}{more}")


@dataclass(frozen=True)
class IngestResult:
    documents: pd.DataFrame  # doc_id, title, text, source, content_hash
    qa: pd.DataFrame  # qa_id, question, answers, doc_ids, group, split
    report: dict


def normalize_text(text: str) -> str:
    """Unicode NFC, unified newlines, trailing spaces and runs of blank lines removed."""
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    lines = [re.sub(r"[ \t\f\v]+", " ", line).strip() for line in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def normalize_question(question: str) -> str:
    """The key under which two questions count as the same question (for leakage checks)."""
    return re.sub(r"\s+", " ", unicodedata.normalize("NFKC", question).casefold()).strip(" ?.!")


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _read_text(path: Path, rel: str, max_bytes: int, errors: list[InputError]) -> str | None:
    size = path.stat().st_size
    if size > max_bytes:
        errors.append(InputError(rel, None, None, f"file is {size / 1e6:.1f} MB, above the {max_bytes / 1e6:.1f} MB limit"))
        return None
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        errors.append(InputError(rel, line, None, f"not valid UTF-8 (byte {exc.start})"))
        return None


def _jsonl_records(text: str, rel: str, errors: list[InputError]):
    """Yield (line number, record) for each non-blank line that parses as a JSON object."""
    for lineno, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            errors.append(InputError(rel, lineno, None, f"not valid JSON: {exc.msg}"))
            continue
        if not isinstance(record, dict):
            errors.append(InputError(rel, lineno, None, "expected a JSON object"))
            continue
        yield lineno, record


def _string_field(record: dict, name: str, rel: str, lineno: int, errors: list[InputError], required: bool = True):
    value = record.get(name)
    if value is None:
        if required:
            errors.append(InputError(rel, lineno, name, "missing"))
        return None
    if not isinstance(value, str):
        errors.append(InputError(rel, lineno, name, f"expected a string, got {type(value).__name__}"))
        return None
    return value


def _string_list(record: dict, many: str, one: str, rel: str, lineno: int, errors: list[InputError]):
    """Read ``many`` (a list of strings) or ``one`` (a string); report under the name used."""
    if many in record:
        value, name = record[many], many
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            errors.append(InputError(rel, lineno, name, "expected a list of strings"))
            return None
    elif one in record:
        value, name = record[one], one
        if not isinstance(value, str):
            errors.append(InputError(rel, lineno, name, f"expected a string, got {type(value).__name__}"))
            return None
        value = [value]
    else:
        errors.append(InputError(rel, lineno, many, f"missing (give {many!r} or {one!r})"))
        return None
    value = [v.strip() for v in value]
    if not value or not all(value):
        errors.append(InputError(rel, lineno, name, "must hold at least one non-empty string"))
        return None
    return value


def read_documents(docs_dir: Path, max_bytes: int, errors: list[InputError]) -> list[dict]:
    """Read every supported file under ``docs_dir`` into {doc_id, title, text, source} records."""
    docs: list[dict] = []
    if not docs_dir.is_dir():
        errors.append(InputError(str(docs_dir), None, None, "documents folder not found"))
        return docs
    for path in sorted(p for p in docs_dir.rglob("*") if p.is_file()):
        rel = str(path.relative_to(docs_dir.parent))
        if path.suffix.lower() not in DOC_SUFFIXES:
            errors.append(InputError(rel, None, None, f"unsupported file type {path.suffix!r} (use {sorted(DOC_SUFFIXES)})"))
            continue
        text = _read_text(path, rel, max_bytes, errors)
        if text is None:
            continue
        if path.suffix.lower() == ".jsonl":
            for lineno, record in _jsonl_records(text, rel, errors):
                doc_id = _string_field(record, "id", rel, lineno, errors)
                body = _string_field(record, "text", rel, lineno, errors)
                title = _string_field(record, "title", rel, lineno, errors, required=False)
                if doc_id is not None and not doc_id.strip():
                    errors.append(InputError(rel, lineno, "id", "empty"))
                    continue
                if doc_id is None or body is None:
                    continue
                docs.append({"doc_id": doc_id.strip(), "title": title or "", "text": body, "source": f"{rel}:{lineno}"})
        else:
            doc_id = str(path.relative_to(docs_dir).with_suffix(""))
            heading = re.search(r"^#\s+(.+)$", text, flags=re.MULTILINE)
            docs.append({"doc_id": doc_id, "title": heading.group(1).strip() if heading else "", "text": text, "source": rel})
    return docs


def read_qa(path: Path, rel: str, max_bytes: int, errors: list[InputError]) -> list[dict]:
    """Read the QA file into {qa_id, question, answers, doc_ids, group, source} records."""
    if not path.is_file():
        errors.append(InputError(rel, None, None, "QA file not found"))
        return []
    text = _read_text(path, rel, max_bytes, errors)
    if text is None:
        return []
    rows = []
    for lineno, record in _jsonl_records(text, rel, errors):
        question = _string_field(record, "question", rel, lineno, errors)
        if question is not None and not question.strip():
            errors.append(InputError(rel, lineno, "question", "empty"))
            question = None
        answers = _string_list(record, "answers", "answer", rel, lineno, errors)
        doc_ids = _string_list(record, "doc_ids", "doc_id", rel, lineno, errors)
        qa_id = _string_field(record, "id", rel, lineno, errors, required=False)
        group = _string_field(record, "group", rel, lineno, errors, required=False)
        if question is None or answers is None or doc_ids is None:
            continue
        rows.append({
            "qa_id": qa_id or f"line-{lineno}",
            "question": normalize_text(question),
            "answers": [normalize_text(a) for a in answers],
            "doc_ids": doc_ids,
            "group": group or "",
            "source": f"{rel}:{lineno}",
        })
    return rows


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
        file, _, line = doc["source"].rpartition(":")
        file, line = (file, int(line)) if line.isdigit() else (doc["source"], None)
        text = normalize_text(doc["text"])
        if not text:
            errors.append(InputError(file, line, "text", f"document {doc['doc_id']!r} is empty"))
            continue
        if doc["doc_id"] in seen_ids:
            errors.append(InputError(file, line, "id", f"duplicate document id {doc['doc_id']!r} (first at {seen_ids[doc['doc_id']]})"))
            continue
        seen_ids[doc["doc_id"]] = doc["source"]
        digest = content_hash(text)
        if digest in seen_hash:
            logger.info("dropping %s: same content as %s", doc["doc_id"], seen_hash[digest])
            aliases[doc["doc_id"]] = seen_hash[digest]
            continue
        seen_hash[digest] = doc["doc_id"]
        kept.append({**doc, "title": normalize_text(doc["title"]), "text": text, "content_hash": digest})
    return kept, aliases


def check_qa(qa: list[dict], doc_ids: set[str], aliases: dict[str, str], errors: list[InputError]) -> list[dict]:
    """Refuse duplicate QA ids and references to unknown documents; follow de-duplication aliases."""
    seen: dict[str, str] = {}
    kept = []
    for row in qa:
        file, _, line = row["source"].rpartition(":")
        if row["qa_id"] in seen:
            errors.append(InputError(file, int(line), "id", f"duplicate QA id {row['qa_id']!r} (first at {seen[row['qa_id']]})"))
            continue
        seen[row["qa_id"]] = row["source"]
        resolved = [aliases.get(d, d) for d in row["doc_ids"]]
        unknown = [d for d in resolved if d not in doc_ids]
        if unknown:
            errors.append(InputError(file, int(line), "doc_ids", f"unknown document id(s) {unknown}"))
            continue
        kept.append({**row, "doc_ids": list(dict.fromkeys(resolved))})
    return kept


def _leakage_groups(qa: pd.DataFrame) -> list[str]:
    """Union questions that share a ``group`` or a normalised question text into one key."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    keys = []
    for group, question in zip(qa["group"], qa["question"]):
        q_key = "q:" + normalize_question(question)
        g_key = "g:" + group if group else q_key
        ra, rb = find(g_key), find(q_key)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
        keys.append(g_key)
    return [find(k) for k in keys]


def split_questions(qa: pd.DataFrame, cfg: SplitConfig) -> pd.Series:
    """Assign train/dev/test per leakage group by a seeded hash: deterministic and stable.

    Adding new questions never moves an existing question to another split.
    """
    def bucket(key: str) -> str:
        u = int(hashlib.sha256(f"{cfg.seed}:{key}".encode()).hexdigest()[:12], 16) / 16**12
        return "test" if u < cfg.test else "dev" if u < cfg.test + cfg.dev else "train"

    return pd.Series([bucket(k) for k in _leakage_groups(qa)], index=qa.index, name="split")


def ingest(raw_dir: Path, split: SplitConfig, max_file_mb: float) -> IngestResult:
    """Read, validate and split the raw data.

    Raises:
        DataValidationError: with every problem found, each naming file, line and field.
    """
    errors: list[InputError] = []
    max_bytes = int(max_file_mb * 1e6)
    raw_docs = read_documents(raw_dir / DOCS_DIR, max_bytes, errors)
    qa_rows = read_qa(raw_dir / QA_FILE, QA_FILE, max_bytes, errors)
    docs, aliases = check_documents(raw_docs, errors)
    qa_rows = check_qa(qa_rows, {d["doc_id"] for d in docs}, aliases, errors)
    if not errors and not docs:
        errors.append(InputError(DOCS_DIR, None, None, "no documents found"))
    if not errors and not qa_rows:
        errors.append(InputError(QA_FILE, None, None, "no questions found"))
    if errors:
        raise DataValidationError(errors)
    documents = pd.DataFrame(docs).drop(columns=["source"])
    qa = pd.DataFrame(qa_rows)
    qa["split"] = split_questions(qa, split)
    counts = qa["split"].value_counts().reindex(list(SPLITS), fill_value=0)
    report = {
        "documents": len(documents),
        "duplicate_documents_dropped": len(aliases),
        "questions": len(qa),
        **{f"questions_{s}": int(counts[s]) for s in SPLITS},
        "corpus_chars": int(documents["text"].str.len().sum()),
    }
    logger.info("ingested %s", report)
    return IngestResult(documents=documents, qa=qa.drop(columns=["source"]), report=report)


def seed_from_demo(demo_dir: Path, raw_dir: Path) -> bool:
    """Copy the bundled demo set into an absent raw folder (a fresh clone has no DVC remote).

    Returns:
        True when the raw folder was created; an existing raw folder is never touched.
    """
    import shutil

    if raw_dir.exists():
        return False
    if not (demo_dir / QA_FILE).is_file() or not (demo_dir / DOCS_DIR).is_dir():
        raise FileNotFoundError(f"{raw_dir} is absent and {demo_dir} holds no demo set to seed it with")
    tmp = raw_dir.with_name(f".{raw_dir.name}.seed")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    shutil.copytree(demo_dir / DOCS_DIR, tmp / DOCS_DIR)
    shutil.copy2(demo_dir / QA_FILE, tmp / QA_FILE)
    tmp.rename(raw_dir)
    logger.info("seeded %s from the bundled demo set in %s", raw_dir, demo_dir)
    return True
