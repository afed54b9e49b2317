"""Everything the ``evaluate`` stage needs before it answers: questions, cells, retrievers, the grid setup."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from components.catalog import Catalog, artifacts
from components.catalog.artifacts import FinetuneFile, ModelInfo, RetrievalFile
from components.evaluation.curves import home_retriever
from components.evaluation.grid import NO_RETRIEVAL, Cell, choose_retrievers, grid, select_questions
from components.evaluation.run import GridSetup
from components.io import read_parquet
from components.llm.generation import answer_cap, few_shot_turns
from components.llm.models import load_tokenizer
from components.retrieval.embedding import embedder_path
from components.retrieval.open import Embedders, open_retrievers, run_params_of
from components.retrieval.search import Retriever
from components.storage import ObjectStore

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Grid:
    splits: dict[str, pd.DataFrame]  # "dev", "test" -> their questions
    tune: pd.DataFrame  # the tuning slice's questions (the learning curves'); may be empty
    groups: pd.Series  # qa_id -> leakage group
    cells: list[Cell]
    retrievers: dict[str, Retriever]  # the grid's and the adapters' home retrievers, opened
    run_params: dict[str, dict]
    setup: GridSetup


def long_answers(answers: pd.Series, min_words: int) -> bool:
    """Whether the median first answer has at least ``min_words`` words (then semantic similarity is scored)."""
    lengths = [len(str(a[0]).split()) for a in answers if len(a)]
    return bool(lengths) and float(np.median(lengths)) >= min_words


def prepare_grid(p, catalog: Catalog, store: ObjectStore | None) -> Grid:
    """Read the questions and the earlier stages' outputs; choose the grid's retrievers by their dev scores.

    ``store``: the object store the Ray actors fetch the models from (None: they read the catalog's paths).
    """
    import lancedb

    cfg = p.evaluation
    qa = read_parquet(catalog.qa)
    splits = {split: select_questions(qa, split, cfg.max_questions) for split in ("dev", "test")}
    retrieval = artifacts.read(RetrievalFile, catalog.metrics("retrieval"))
    tune_scores = {n: r.splits["tune"] for n, r in retrieval.retrievers.items() if "tune" in r.splits}
    chosen = choose_retrievers(tune_scores, p.retrieval.retrievers, cfg.grid)
    logger.info("grid retrievers (by tune %s): %s", cfg.grid.metric, ", ".join(chosen))
    adapters = {a.name: a for a in p.finetune.adapters}
    needed = sorted(({home_retriever(a) for a in adapters.values()} | set(chosen)) - {NO_RETRIEVAL})
    db = lancedb.connect(str(catalog.index))
    opened = open_retrievers([p.retrieval.retriever(n) for n in needed], db, Embedders(p.retrieval.embedders))
    tokenizer = load_tokenizer(catalog.base_model)
    train = qa[qa["split"] == "train"]
    cap = answer_cap([str(a[0]) for a in train["answers"] if len(a)], tokenizer, cfg.generation)
    first_embedder = next(iter(p.retrieval.embedders.values()))
    setup = GridSetup(
        base_dir=catalog.base_model,
        adapter_dirs={name: catalog.adapter(name) for name in adapters},
        adapters=adapters,
        prompts=cfg.prompts,
        generation=cfg.generation.model_copy(update={"max_new_tokens": cap}),
        examples=few_shot_turns(cfg.prompts, train, cfg.few_shot.k, cfg.few_shot.seed) if cfg.few_shot.models else [],
        model_info=artifacts.read(ModelInfo, catalog.metrics("model")).model_dump(),
        training={k: v.model_dump() for k, v in artifacts.read(FinetuneFile, catalog.metrics("finetune")).root.items()},
        cache_dir=catalog.prediction_cache,
        similarity_model=embedder_path(first_embedder)
        if long_answers(train["answers"], cfg.long_answer_words)
        else None,
        latency_questions=cfg.latency_questions,
        parallel=cfg.parallel,
        store=store,
    )
    logger.info(
        "answer cap: %d new tokens (the %g-th percentile of the train answers)", cap, cfg.generation.cap_percentile
    )
    return Grid(
        splits=splits,
        tune=qa[qa["split"] == "tune"].sort_values("qa_id").reset_index(drop=True),
        groups=qa.set_index("qa_id")["leakage_group"],
        cells=grid(list(adapters), chosen, cfg.few_shot.models, cfg.few_shot.k),
        retrievers=opened,
        run_params=run_params_of(opened, p.retrieval, p.data.chunkers),
        setup=setup,
    )
