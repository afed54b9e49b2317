"""The bundled demo set, copied into ``data/raw`` only when asked for (``make run``, ``ragtune run --demo``)."""

from __future__ import annotations

import logging
from pathlib import Path

from components.data.ingest import DOCS_DIR

logger = logging.getLogger(__name__)


def seed_from_demo(demo_dir: Path, raw_dir: Path) -> bool:
    """Copy the bundled demo set into an absent raw folder (a fresh clone has no DVC remote).

    Returns:
        True when the raw folder was created; an existing raw folder is never touched.
    """
    import shutil

    if raw_dir.exists():
        return False
    if not (demo_dir / "qa.jsonl").is_file() or not (demo_dir / DOCS_DIR).is_dir():
        raise FileNotFoundError(f"{raw_dir} is absent and {demo_dir} holds no demo set to seed it with")
    tmp = raw_dir.with_name(f".{raw_dir.name}.seed")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    shutil.copytree(demo_dir / DOCS_DIR, tmp / DOCS_DIR)
    shutil.copy2(demo_dir / "qa.jsonl", tmp / "qa.jsonl")
    tmp.rename(raw_dir)
    logger.info("seeded %s from the bundled demo set in %s", raw_dir, demo_dir)
    return True
