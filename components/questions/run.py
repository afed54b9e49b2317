"""The ``questions`` stage's work: decide, read the documents, chunk them, generate, report.

:func:`questions_for_raw` is what ``ragtune questions`` calls. When ``questions.mode`` and the raw
folder say there is nothing to do (``auto`` and a question file present, or ``off``), it returns at
once without reading a document or loading a model: the stage then costs a process start.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from components.catalog.artifacts import FilterStep, QuestionsFile
from components.config import AnyChunkerConfig, QuestionsConfig
from components.questions.pipeline import generate_pairs, should_generate

logger = logging.getLogger(__name__)


def questions_for_raw(
    raw_dir: Path, base_dir: Path, cache_dir: Path, chunker: AnyChunkerConfig, max_file_mb: float, cfg: QuestionsConfig
) -> tuple[list[dict], QuestionsFile]:
    """The generated pairs (QA records) and the stage's report.

    Raises:
        DataValidationError: the raw documents (or the team's question file) are invalid.
        FileNotFoundError: the generator model is not there.
    """
    from components.data.ingest import DOCS_DIR, find_qa_file

    qa_path = find_qa_file(raw_dir, required=False)
    go, reason = should_generate(cfg.mode, qa_path is not None)
    if not go:
        logger.info("questions: nothing to do: %s", reason)
        return [], QuestionsFile(generated=False, reason=reason, mode=cfg.mode)
    from components.data.chunking import chunk_documents
    from components.data.ingest import ingest_documents
    from components.questions.generate import Generator, model_folder

    started = time.perf_counter()
    documents = ingest_documents(raw_dir / DOCS_DIR, max_file_mb)
    chunks = chunk_documents(documents, chunker)
    existing = _team_questions(qa_path) if qa_path is not None else []
    generator = Generator(model_folder(cfg.generator.model, base_dir), cfg, cache_dir)
    pairs, y = generate_pairs(chunks, cfg, generator.ask, generator.answer_back, existing)
    report = QuestionsFile(
        generated=True,
        reason=reason,
        mode=cfg.mode,
        generator=cfg.generator.model,
        engine=cfg.generator.engine,
        chunker=cfg.chunker,
        target=cfg.target,
        documents=len({c for c in chunks["doc_id"]}),
        documents_covered=len({p["doc_ids"][0] for p in pairs}),
        candidates=y.candidates,
        kept=len(pairs),
        steps=[FilterStep(**row) for row in y.steps()],
        completions_generated=generator.generated,
        seconds=round(time.perf_counter() - started, 1),
    )
    return pairs, report


def _team_questions(qa_path: Path) -> list[str]:
    from components.data.errors import DataValidationError, InputError
    from components.data.readers import SourceFile, read_qa

    errors: list[InputError] = []
    rows = read_qa(SourceFile(qa_path.name, "", qa_path.suffix.lower(), qa_path.read_bytes()), errors)
    if errors:
        raise DataValidationError(errors)
    return [r["question"] for r in rows]
