"""Reading input files (the I/O edge of ingestion): one file's bytes, or a documents folder's files.

Links that leave the folder, anything that is not a regular file and files above the size limit are
refused with an :class:`InputError` each; nothing is ever written.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from components.data.errors import InputError
from components.data.readers import DOC_READERS, SourceFile

logger = logging.getLogger(__name__)

DOC_SUFFIXES = frozenset(DOC_READERS)


def link_problem(path: Path, root: Path) -> str | None:
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
        problem = link_problem(path, root)
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
                    errors.append(InputError(name, None, None, link_problem(here / d, docs_dir) or "link to a folder"))
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
