"""The knowledge-update drill: how fast, and how well, does each mix absorb new documents?

A seeded share of the documents is held back; the rest is "today's" knowledge. Each arm is set up
on it, then the held-back documents arrive as new data and each arm absorbs them its own way:

- ``rag``: base model + retriever; absorbing = an incremental index update (only new chunks embedded);
- ``finetune``: an adapter, closed-book; absorbing = retraining on the corpus + train questions with
  the new documents' text;
- ``both``: that adapter with the retriever; absorbing = both of the above.

The probes are the dev/test questions about the new documents (never trained on). Each arm is
scored on them before and after, with the same answer and metric code as the evaluation grid.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from components.catalog import table_name
from components.config import (
    AdapterConfig,
    AnyChunkerConfig,
    DrillConfig,
    GenerationConfig,
    IndexSettings,
    PromptConfig,
    RayConfig,
    RetrieverConfig,
)
from components.data.chunking import chunk_documents
from components.evaluation.answer import answer_cell
from components.llm.models import load_model, load_tokenizer
from components.retrieval.index import sync_table
from components.retrieval.search import NEEDS_FULLTEXT, Retriever
from components.training.examples import TrainingInputs, build_examples
from components.training.trainer import train_adapter

logger = logging.getLogger(__name__)

ARMS = ("rag", "finetune", "both")


@dataclass(frozen=True)
class DrillSplit:
    """Documents and questions before and after the update."""

    old_documents: pd.DataFrame
    new_documents: pd.DataFrame
    old_train: pd.DataFrame  # train questions about old documents only
    all_train: pd.DataFrame  # every train question, the new documents' included
    probes: pd.DataFrame  # dev/test questions that touch a new document


@dataclass(frozen=True)
class DrillSetup:
    """The pieces of the pipeline the drill runs: which retriever, which adapter, how to train and answer."""

    chunker: AnyChunkerConfig
    retriever: RetrieverConfig
    adapter: AdapterConfig
    index: IndexSettings
    ray: RayConfig
    prompts: PromptConfig
    generation: GenerationConfig


@dataclass(frozen=True)
class ArmResult:
    arm: str
    absorb_s: float  # wall time to take in the new documents
    exact_match_before: float
    f1_before: float
    exact_match_after: float
    f1_after: float


def choose_arms(
    drill: DrillConfig, grid_retrievers: list[str], adapters: list[AdapterConfig]
) -> tuple[str, AdapterConfig]:
    """The drill's retriever and adapter: the configured ones, else the first grid retriever and adapter.

    The adapter's ``max_steps`` becomes the drill's (each drill training run is short).
    """
    retriever = drill.retriever or grid_retrievers[0]
    adapter = next(a for a in adapters if a.name == drill.adapter) if drill.adapter else adapters[0]
    return retriever, adapter.model_copy(update={"max_steps": drill.max_steps})


def hold_back(documents: pd.DataFrame, qa: pd.DataFrame, cfg: DrillConfig) -> DrillSplit:
    """Hold back a seeded ``cfg.share`` of the documents (at least one) and find the questions about them.

    The documents are drawn among those that some dev/test question is about: a held-back document
    without a probe question would add nothing the drill can measure.

    Raises:
        ValueError: no document would be left, or no dev/test question is about any document.
    """
    ids = sorted(documents["doc_id"])
    n_new = max(1, round(cfg.share * len(ids)))
    if n_new >= len(ids):
        raise ValueError(f"drill.share {cfg.share} holds back all {len(ids)} documents; lower it")
    train = qa["split"] == "train"
    probed = sorted({d for doc_ids in qa.loc[~train, "doc_ids"] for d in doc_ids} & set(ids))
    if not probed:
        raise ValueError("no dev/test question is about any document: the drill has nothing to probe")
    rng = np.random.default_rng(cfg.seed)
    new_ids = set(rng.choice(probed, size=min(n_new, len(probed)), replace=False).tolist())
    touches_new = qa["doc_ids"].map(lambda doc_ids: bool(set(doc_ids) & new_ids))
    probes = qa[touches_new & ~train].sort_values("qa_id").reset_index(drop=True)
    if cfg.max_questions:
        probes = probes.head(cfg.max_questions)
    held = documents["doc_id"].isin(new_ids)
    logger.info("drill: %d of %d documents held back, %d probe questions", len(new_ids), len(ids), len(probes))
    return DrillSplit(documents[~held], documents[held], qa[train & ~touches_new], qa[train], probes)


def _train(documents, qa_train, tokenizer, setup: DrillSetup, base_dir: Path, out_dir: Path) -> float:
    """Train the drill adapter into ``out_dir``; its wall time in seconds."""
    inputs = TrainingInputs(
        documents=documents,
        qa=qa_train.assign(split="train"),
        chunks={setup.retriever.name: chunk_documents(documents, setup.chunker)},
        top_k={setup.retriever.name: setup.retriever.top_k},
    )
    examples = build_examples(inputs, tokenizer, setup.adapter, setup.prompts)
    start = time.perf_counter()
    train_adapter(examples, base_dir, setup.adapter, setup.ray, out_dir, out_dir.parent / "ray")
    tokenizer.save_pretrained(out_dir)
    return time.perf_counter() - start


def _index(db, documents: pd.DataFrame, embedder, setup: DrillSetup) -> float:
    """Sync the drill table to ``documents``' chunks (incremental); its wall time in seconds."""
    r = setup.retriever
    start = time.perf_counter()
    sync_table(
        db,
        table_name(r.chunker, r.embedder),
        chunk_documents(documents, setup.chunker),
        embedder,
        setup.index,
        fts=r.mode in NEEDS_FULLTEXT,
    )
    return time.perf_counter() - start


def run_drill(
    split: DrillSplit, setup: DrillSetup, base_dir: Path, embedder, metric, work_dir: Path
) -> list[ArmResult]:
    """Set every arm up on the old documents, add the new ones, score the probes before and after.

    ``work_dir`` receives the drill's own LanceDB folder and adapters; nothing else is written.
    """
    import lancedb

    tokenizer = load_tokenizer(base_dir)
    db = lancedb.connect(str(work_dir / "index"))
    r = setup.retriever
    questions = split.probes["question"].tolist()

    def search():
        return Retriever(r, db.open_table(table_name(r.chunker, r.embedder)), embedder).search(questions)[0]

    def score(model, hits) -> tuple[float, float]:
        rows = answer_cell(
            model, tokenizer, split.probes, hits, setup.prompts, setup.generation, {"qa_match": metric}, top_k=r.top_k
        )
        return float(rows["exact_match"].mean()), float(rows["f1"].mean())

    _index(db, split.old_documents, embedder, setup)
    hits_before = search()
    _train(split.old_documents, split.old_train, tokenizer, setup, base_dir, work_dir / "adapter-before")
    base = load_model(base_dir)
    before = {"rag": score(base, hits_before)}
    adapter = load_model(base_dir, work_dir / "adapter-before")
    before["finetune"], before["both"] = score(adapter, None), score(adapter, hits_before)

    all_documents = pd.concat([split.old_documents, split.new_documents], ignore_index=True)
    index_s = _index(db, all_documents, embedder, setup)
    hits_after = search()
    train_s = _train(all_documents, split.all_train, tokenizer, setup, base_dir, work_dir / "adapter-after")
    after = {"rag": score(base, hits_after)}
    adapter = load_model(base_dir, work_dir / "adapter-after")
    after["finetune"], after["both"] = score(adapter, None), score(adapter, hits_after)

    absorb = {"rag": index_s, "finetune": train_s, "both": index_s + train_s}
    return [ArmResult(arm, absorb[arm], *before[arm], *after[arm]) for arm in ARMS]


def to_table(results: list[ArmResult]) -> pd.DataFrame:
    return pd.DataFrame([asdict(r) for r in results])


def to_markdown(results: list[ArmResult], split: DrillSplit) -> str:
    """The knowledge-update table."""
    lines = [
        "# Knowledge-update drill",
        "",
        f"{len(split.new_documents)} of {len(split.old_documents) + len(split.new_documents)} documents held back "
        f"and added as new data; {len(split.probes)} probe questions about them (dev/test, never trained on).",
        "",
        "| arm | time to absorb (s) | EM before | F1 before | EM after | F1 after |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        lines.append(
            f"| {r.arm} | {r.absorb_s:.1f} | {r.exact_match_before:.3f} | {r.f1_before:.3f} "
            f"| {r.exact_match_after:.3f} | {r.f1_after:.3f} |"
        )
    return "\n".join(lines) + "\n"


def drill_report(params, catalog) -> tuple[str, dict[str, float], list]:
    """``ragtune drill`` on the project: hold back, absorb, score; write the report and metrics files.

    Returns:
        The markdown report, the metrics for MLflow (``<arm>_<measure>``), and the files written.
    """
    import shutil

    from components.evaluation.grid import grid_retrievers
    from components.evaluation.metrics import load_metric
    from components.io import read_parquet, write_json, write_text
    from components.retrieval.embedding import Embedder

    p = params
    names = grid_retrievers(p.evaluation.grid_retrievers, p.retrieval.retrievers)
    retriever_name, adapter = choose_arms(p.evaluation.drill, names, p.finetune.adapters)
    retriever = p.retrieval.retriever(retriever_name)
    split = hold_back(read_parquet(catalog.documents), read_parquet(catalog.qa), p.evaluation.drill)
    setup = DrillSetup(
        p.data.chunkers[retriever.chunker],
        retriever,
        adapter,
        p.retrieval.index,
        p.finetune.ray,
        p.evaluation.prompts,
        p.evaluation.generation,
    )
    work = catalog.scratch("drill")  # its own index and adapters, never data/raw or data/index
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    embedder = Embedder(p.retrieval.embedders[retriever.embedder])
    results = run_drill(split, setup, catalog.base_model, embedder, load_metric("qa_match"), work)
    markdown = to_markdown(results, split)
    arms = to_table(results).to_dict(orient="records")
    report = {
        "arms": arms,
        "new_documents": sorted(split.new_documents["doc_id"]),
        "probes": len(split.probes),
        "retriever": retriever.name,
        "adapter": adapter.name,
    }
    files = [catalog.drill_report, catalog.metrics("drill")]
    write_text(markdown, files[0])
    write_json(report, files[1])
    metrics = {f"{row['arm']}_{key}": row[key] for row in arms for key in row if key != "arm"}
    return markdown, metrics, files
