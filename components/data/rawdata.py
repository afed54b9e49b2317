"""Adding data to the raw folder: merge or replace, build the new folder beside it, swap, diff.

:func:`update_raw` (what ``ragtune data add`` calls) checks the inputs, :func:`stage_raw` builds the
complete new raw folder next to the old one (the old one is not touched), it is checked as a whole,
:func:`swap_raw` renames it into place keeping the old one as a backup, the caller's ``record``
(``dvc add`` in the CLI: this module never runs DVC) versions it, and the backup is deleted, or put
back by :func:`restore_raw` if recording failed. :func:`diff` says what changed, document by
document and question by question.

Merge (the default): the new documents folder is copied over the old one, so a file at the same
relative path replaces the old file and every other old file stays; questions are merged by id (a
new question with the id of an old one replaces it), an exact repeat of an old question (same
question, answers and documents) is skipped, and the merged set is written as ``qa.jsonl`` with an
explicit id on every question (old ids are kept; a new question without id gets ``q-<hash>``).
Replace: the new raw folder holds exactly the given documents and QA file (copied byte for byte).

Old files enter the staged folder as hard links (fast, and DVC recognises them by inode without
hashing them again); a new file is always written to a fresh inode, after unlinking the link at
its path, so nothing written while staging can reach the old raw folder.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from components.config import SplitConfig
from components.data.errors import DataValidationError, InputError
from components.data.ingest import (
    DOCS_DIR,
    TEAM_ORIGINS,
    IngestResult,
    content_hash,
    find_qa_file,
    ingest,
    ingest_paths,
    normalize_text,
)
from components.data.readers import SourceFile, read_qa

logger = logging.getLogger(__name__)

_HIDDEN = shutil.ignore_patterns(".*")


def _link_or_copy(src: str, dst: str) -> None:
    """Hard-link an old raw file into the staged folder (no copy, and DVC knows its hash already)."""
    try:
        os.link(src, dst)
    except OSError:  # a file system without hard links
        shutil.copy2(src, dst)


def _copy_fresh(src: str, dst: str) -> None:
    """Copy a new file, first unlinking what is there: it may be a hard link to the old raw file."""
    if os.path.lexists(dst):
        os.unlink(dst)
    shutil.copy2(src, dst)


@dataclass(frozen=True)
class RawChange:
    """What an update does to the raw data, by document id and question id."""

    docs_added: list[str] = field(default_factory=list)
    docs_removed: list[str] = field(default_factory=list)
    docs_modified: list[str] = field(default_factory=list)
    questions_added: list[str] = field(default_factory=list)
    questions_removed: list[str] = field(default_factory=list)
    questions_modified: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not any(getattr(self, name) for name in self.__dataclass_fields__)

    def counts(self) -> dict[str, int]:
        return {name: len(getattr(self, name)) for name in self.__dataclass_fields__}

    def summary(self, show: int = 10) -> str:
        """One line per non-empty category, naming the first ``show`` ids."""
        lines = []
        for name in self.__dataclass_fields__:
            ids = getattr(self, name)
            if ids:
                more = f", ... (+{len(ids) - show})" if len(ids) > show else ""
                lines.append(f"{name.replace('_', ' ')}: {len(ids)} ({', '.join(ids[:show])}{more})")
        return "\n".join(lines) or "nothing changed"


def _keyed(result: IngestResult | None) -> tuple[dict[str, str], dict[str, tuple]]:
    if result is None:
        return {}, {}
    docs = dict(zip(result.documents["doc_id"], result.documents["content_hash"], strict=True))
    qa = {
        row.qa_id: (row.question, tuple(row.answers), tuple(row.doc_ids), row.group)
        for row in result.qa.itertuples(index=False)
    }
    return docs, qa


def diff(old: IngestResult | None, new: IngestResult) -> RawChange:
    """Documents and questions added, removed and modified from ``old`` to ``new`` (sorted ids)."""
    old_docs, old_qa = _keyed(old)
    new_docs, new_qa = _keyed(new)

    def compare(a: dict, b: dict) -> tuple[list[str], list[str], list[str]]:
        return (
            sorted(b.keys() - a.keys()),
            sorted(a.keys() - b.keys()),
            sorted(k for k in a.keys() & b.keys() if a[k] != b[k]),
        )

    d_add, d_rm, d_mod = compare(old_docs, new_docs)
    q_add, q_rm, q_mod = compare(old_qa, new_qa)
    return RawChange(d_add, d_rm, d_mod, q_add, q_rm, q_mod)


def _qa_key(row: dict) -> tuple:
    return (
        normalize_text(row["question"]),
        tuple(normalize_text(a) for a in row["answers"]),
        tuple(row["doc_ids"]),
    )


def merge_qa(old: list[dict], new: list[dict]) -> list[dict]:
    """Merge QA records (as :func:`components.data.readers.read_qa` returns them) into JSONL objects.

    Old questions keep their place and id; a new question with an old id replaces it in place;
    a new question equal to an old one is skipped; the rest are appended. A question marked
    ``origin: generated`` (an exported generated question, back from review) is written as ``reviewed``.
    """
    merged: dict[str, dict] = {}
    seen: set[tuple] = set()
    for row in old:
        merged[row["qa_id"]] = row
        seen.add(_qa_key(row))
    for row in new:
        key = _qa_key(row)
        if row.get("id_given") and row["qa_id"] in merged:
            merged[row["qa_id"]] = row
        elif key not in seen:
            qa_id = row["qa_id"] if row.get("id_given") else "q-" + content_hash("\n".join(map(str, key)))[:12]
            merged[qa_id] = {**row, "qa_id": qa_id}
        seen.add(key)
    out = []
    for qa_id, row in merged.items():
        record = {"id": qa_id, "question": row["question"], "answers": row["answers"], "doc_ids": row["doc_ids"]}
        origin = TEAM_ORIGINS.get(row.get("origin", ""), row.get("origin"))
        for key, value in (("group", row.get("group")), ("origin", origin), ("chunk_id", row.get("chunk_id"))):
            if value and not (key == "origin" and value == "team"):
                record[key] = value
        out.append(record)
    return out


def _qa_rows(path: Path) -> list[dict]:
    errors: list[InputError] = []
    source = SourceFile(name=path.name, doc_id="", suffix=path.suffix.lower(), data=path.read_bytes())
    rows = read_qa(source, errors)
    if errors:
        raise DataValidationError(errors)
    return rows


def stage_raw(raw_dir: Path, docs_dir: Path | None, qa_path: Path | None, replace: bool) -> Path:
    """Build the complete new raw folder beside ``raw_dir`` and return its path.

    The inputs must have been validated already; the old raw folder is only read. The caller
    removes the staged folder (:func:`discard`) if it does not swap it in. Without ``qa_path``
    the old questions are kept (merge) or there are none (replace: the ``questions`` stage then
    generates them); without ``docs_dir`` the old documents are.
    """
    raw_dir.parent.mkdir(parents=True, exist_ok=True)
    staged = raw_dir.with_name(f".{raw_dir.name}.new-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    staged.mkdir()  # not mkdtemp: that makes it private (0700), and it becomes data/raw
    try:
        merge = not replace and raw_dir.is_dir()
        if merge and (raw_dir / DOCS_DIR).is_dir():
            shutil.copytree(raw_dir / DOCS_DIR, staged / DOCS_DIR, ignore=_HIDDEN, copy_function=_link_or_copy)
        if docs_dir is not None:
            shutil.copytree(docs_dir, staged / DOCS_DIR, ignore=_HIDDEN, dirs_exist_ok=True, copy_function=_copy_fresh)
        old_qa = find_qa_file(raw_dir, required=False) if merge else None
        if old_qa is not None or (merge and qa_path is not None):
            old_rows = _qa_rows(old_qa) if old_qa is not None else []
            records = merge_qa(old_rows, _qa_rows(qa_path) if qa_path is not None else [])
            text = "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in records)
            (staged / "qa.jsonl").write_text(text, encoding="utf-8")
        elif qa_path is not None:
            shutil.copyfile(qa_path, staged / f"qa{qa_path.suffix.lower()}")
    except BaseException:
        discard(staged)
        raise
    return staged


@dataclass(frozen=True)
class RawUpdate:
    """The outcome of :func:`update_raw`: the checked new raw data and what changed."""

    result: IngestResult
    change: RawChange
    written: bool  # False when nothing changed and the raw folder was left alone


def update_raw(
    raw_dir: Path,
    docs_dir: Path | None,
    qa_path: Path | None,
    split: SplitConfig,
    max_file_mb: float,
    replace: bool,
    record: Callable[[], None],
) -> RawUpdate:
    """Check new inputs, merge them into ``raw_dir`` (or replace it) atomically, and record it.

    Args:
        docs_dir, qa_path: the new documents and questions; either may be None (not both): a raw
            folder without questions is valid (the ``questions`` stage generates them).
        record: called once the new folder is in place (the CLI runs ``dvc add``); if it raises,
            the old folder is put back and the exception propagates.

    Raises:
        DataValidationError: the inputs, the existing raw folder (when merging) or the merged set
            is invalid; ``raw_dir`` is untouched.
    """
    old = None
    if raw_dir.exists():
        try:
            old = ingest(raw_dir, split, max_file_mb, require_questions=False)
        except DataValidationError as exc:
            if not replace:
                raise DataValidationError(exc.errors, f"the existing {raw_dir} (fix it, or replace it)") from exc
    known = frozenset(old.documents["doc_id"]) if old is not None and not replace else frozenset()
    ingest_paths(docs_dir, qa_path, split, max_file_mb, known_doc_ids=known)  # the inputs alone
    staged = stage_raw(raw_dir, docs_dir, qa_path, replace)
    try:
        new = ingest(staged, split, max_file_mb, require_questions=False)
    except DataValidationError as exc:
        discard(staged)
        raise DataValidationError(exc.errors, f"the merge of {raw_dir} and the inputs") from exc
    change = diff(old, new)
    if change.empty and old is not None:
        discard(staged)
        return RawUpdate(new, change, written=False)
    backup = swap_raw(staged, raw_dir)
    try:
        record()
    except BaseException:
        restore_raw(backup, raw_dir)
        raise
    if backup is not None:
        discard(backup)
    return RawUpdate(new, change, written=True)


def discard(path: Path) -> None:
    """Remove a staged or backup folder."""
    shutil.rmtree(path, ignore_errors=True)


def swap_raw(staged: Path, raw_dir: Path) -> Path | None:
    """Rename ``staged`` onto ``raw_dir``; return where the old raw folder now is (None if absent)."""
    backup = None
    if raw_dir.exists():
        backup = raw_dir.with_name(f".{raw_dir.name}.old-{os.getpid()}")
        discard(backup)
        raw_dir.rename(backup)
    staged.rename(raw_dir)
    logger.info("swapped the new raw folder into %s", raw_dir)
    return backup


def restore_raw(backup: Path | None, raw_dir: Path) -> None:
    """Undo :func:`swap_raw`: put the old raw folder back (or remove the new one if there was none)."""
    discard(raw_dir)
    if backup is not None:
        backup.rename(raw_dir)
    logger.warning("restored the previous raw folder in %s", raw_dir)


def _pid_of(path: Path, kind: str) -> int | None:
    """The process id in a ``.<raw>.new-<pid>-<random>`` or ``.<raw>.old-<pid>`` name."""
    head = path.name.rpartition(f".{kind}-")[2].split("-")[0]
    return int(head) if head.isdigit() else None


def _abandoned(raw_dir: Path, kind: str) -> list[Path]:
    """Staged (``new``) or backup (``old``) folders beside ``raw_dir`` whose process is gone."""
    import psutil

    found = sorted(raw_dir.parent.glob(f".{raw_dir.name}.{kind}-*")) if raw_dir.parent.is_dir() else []
    return [p for p in found if (pid := _pid_of(p, kind)) is None or pid == os.getpid() or not psutil.pid_exists(pid)]


def recover_raw(raw_dir: Path, recorded: Callable[[], bool]) -> list[str]:
    """Finish or undo what an interrupted :func:`update_raw` left beside ``raw_dir``; one line per repair.

    A staged folder is removed (the update never reached its swap). A backup means the update
    stopped after its first rename: with no raw folder, the backup is put back (the update stopped
    between the two renames); with one, it is kept if ``recorded()`` (the new folder is what DVC
    records: only the backup's removal was missed) and put back otherwise. Folders of a process
    still running (another update) are left alone.
    """
    notes = []
    for staged in _abandoned(raw_dir, "new"):
        discard(staged)
        notes.append(f"removed {staged.name}: the staged folder of an interrupted update")
    for backup in _abandoned(raw_dir, "old"):
        if not raw_dir.exists():
            backup.rename(raw_dir)
            notes.append(f"put {backup.name} back as {raw_dir.name}: an update stopped between its two renames")
        elif recorded():
            discard(backup)
            notes.append(f"removed {backup.name}: the update was complete and recorded, only its backup was left")
        else:
            restore_raw(backup, raw_dir)
            notes.append(f"put {backup.name} back as {raw_dir.name}: the update was never recorded")
    for note in notes:
        logger.warning(note)
    return notes
