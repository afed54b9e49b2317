"""The knowledge-update drill: how fast, and how well, does each mix absorb new documents?

A seeded share of the documents is held back; the rest is "today's" knowledge. Each arm is set up
on it, then the held-back documents arrive as new data and each arm absorbs them its own way:

- ``rag``: base model + retriever; absorbing = an incremental index update (only new chunks embedded);
- ``finetune``: an adapter, closed-book; absorbing = retraining on the corpus + train questions with
  the new documents' text;
- ``both``: that adapter with the retriever; absorbing = both of the above.

The arms drill the recommended mix (``best.json``): its retriever and its adapter (when it has no
adapter or no retriever, the best dev cell that has one lends it), each adapter trained with its
own budget and the pipeline's snapshot selection (the best snapshot by the held-out loss on tune
questions, early stopping), any adapter kind: a RAFT adapter gets its own retriever's passages;
a few-shot recommendation answers with its few-shot turns. The probes are the *dev* questions
about the new documents (never trained on; the drill never reads test). Each arm is scored on
them before and after with the same answer and metric code as the grid; the share of probes
answered carries a grouped bootstrap interval.
"""

from __future__ import annotations

import logging
import time
import uuid
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
from components.storage import ObjectStore
from components.training.examples import TrainingInputs, examples_and_dev
from components.training.trainer import train_adapter

logger = logging.getLogger(__name__)

ARMS = ("rag", "finetune", "both")


@dataclass(frozen=True)
class DrillSplit:
    """Documents and questions before and after the update."""

    before_documents: pd.DataFrame  # today's knowledge
    after_documents: pd.DataFrame  # after the update
    new_documents: pd.DataFrame  # what the update brings: documents added, or documents whose facts changed
    before_train: pd.DataFrame  # train questions the arms learn from before the update
    after_train: pd.DataFrame  # ... and after it
    probes: pd.DataFrame  # dev questions about the new documents, with the answers after the update
    tune: pd.DataFrame  # tune questions about the other documents: the held-out loss that picks the snapshot


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
    raft_chunkers: dict[str, AnyChunkerConfig]  # retriever -> chunker, for the adapter's RAFT sources' passages
    raft_top_k: dict[str, int]  # retriever -> passages per RAFT prompt
    examples: list[tuple[str, str]]  # the recommended cell's few-shot turns ([] when it has none)
    store: ObjectStore | None = None  # the object store its training runs go through (docs/scale-out.md)


@dataclass(frozen=True)
class ArmResult:
    arm: str
    absorb_s: float  # wall time to take in the new documents
    answered_before: float  # share of probes whose main metric reaches the answered threshold
    answered_after: float
    answered_after_low: float  # bootstrap interval of answered_after (probe groups resampled together)
    answered_after_high: float
    f1_before: float
    f1_after: float


def choose_arms(drill: DrillConfig, ranking: list[dict], retrievers: list[str], adapters: list[str]) -> tuple[str, str]:
    """The drill's retriever and adapter: the configured ones, else the recommended mix's.

    Args:
        ranking: the dev cells, recommended first, then by mean (``model``, ``retriever`` each).
        retrievers, adapters: the names params know; the first of each stands in when no cell has one.

    When the recommended cell has no retriever (or no adapter), the best-ranked cell that has one lends it.
    """
    with_retriever = [c["retriever"] for c in ranking if c["retriever"] != "none"]
    with_adapter = [c["model"] for c in ranking if c["model"] != "base"]
    retriever = drill.retriever or (with_retriever or retrievers)[0]
    adapter = drill.adapter or (with_adapter or adapters)[0]
    return retriever, adapter


def hold_back(documents: pd.DataFrame, qa: pd.DataFrame, cfg: DrillConfig) -> DrillSplit:
    """Hold back a seeded ``cfg.share`` of the documents (at least one) and find the dev questions about them.

    The documents are drawn among those that some dev question is about: a held-back document
    without a probe question would add nothing the drill can measure. Test questions are never read.

    Raises:
        ValueError: no document would be left, or no dev question is about any document.
    """
    ids = sorted(documents["doc_id"])
    n_new = max(1, round(cfg.share * len(ids)))
    if n_new >= len(ids):
        raise ValueError(f"drill.share {cfg.share} holds back all {len(ids)} documents; lower it")
    train, dev = qa["split"] == "train", qa["split"] == "dev"
    probed = sorted({d for doc_ids in qa.loc[dev, "doc_ids"] for d in doc_ids} & set(ids))
    if not probed:
        raise ValueError("no dev question is about any document: the drill has nothing to probe")
    rng = np.random.default_rng(cfg.seed)
    new_ids = set(rng.choice(probed, size=min(n_new, len(probed)), replace=False).tolist())
    touches_new = qa["doc_ids"].map(lambda doc_ids: bool(set(doc_ids) & new_ids))
    probes = qa[touches_new & dev].sort_values("qa_id").reset_index(drop=True)
    if cfg.max_questions:
        probes = probes.head(cfg.max_questions)
    held = documents["doc_id"].isin(new_ids)
    tune = qa[(qa["split"] == "tune") & ~touches_new]
    logger.info("drill: %d of %d documents held back, %d probe questions", len(new_ids), len(ids), len(probes))
    return DrillSplit(documents[~held], documents, documents[held], qa[train & ~touches_new], qa[train], probes, tune)


def change_facts(split: DrillSplit, changed_documents: pd.DataFrame, changed_qa: pd.DataFrame) -> DrillSplit:
    """The drill on changed facts: every document is known today, and the update rewrites the held-back
    ones (same ids, new text); probes and train questions about them take the changed answers.

    Args:
        changed_documents, changed_qa: the changed versions (``doc_id``/``text``; ``qa_id``/``answers``).

    Raises:
        ValueError: a held-back document or a probe has no changed version.
    """
    held = set(split.new_documents["doc_id"])
    new = changed_documents[changed_documents["doc_id"].isin(held)]
    if set(new["doc_id"]) != held:
        raise ValueError(f"drill.changed has no changed version of {sorted(held - set(new['doc_id']))[:5]}")
    answers = changed_qa.set_index("qa_id")["answers"]
    missing = sorted(set(split.probes["qa_id"]) - set(answers.index))
    if missing:
        raise ValueError(f"drill.changed has no changed answer for the probe(s) {missing[:5]}")

    def changed(qa: pd.DataFrame) -> pd.DataFrame:
        about = qa["doc_ids"].map(lambda doc_ids: bool(set(doc_ids) & held)) & qa["qa_id"].isin(answers.index)
        return qa.assign(
            answers=[answers[q] if a else old for q, a, old in zip(qa["qa_id"], about, qa["answers"], strict=True)]
        )

    today = split.after_documents
    after = pd.concat(
        [today[~today["doc_id"].isin(held)], today[today["doc_id"].isin(held)][["doc_id"]].merge(new, on="doc_id")]
    )
    before_train = pd.concat(
        [split.before_train, split.after_train[~split.after_train["qa_id"].isin(split.before_train["qa_id"])]]
    )
    return DrillSplit(
        today,
        after.reset_index(drop=True),
        new,
        before_train,
        changed(split.after_train),
        changed(split.probes),
        split.tune,
    )


def training_inputs(documents: pd.DataFrame, qa_train: pd.DataFrame, tune: pd.DataFrame, setup: DrillSetup):
    """What the drill adapter trains on: ``documents``, the train questions, the tune questions (held out for the
    snapshot choice), and the passages of the drill retriever and of every retriever its RAFT sources read."""
    chunkers = {setup.retriever.name: setup.chunker, **setup.raft_chunkers}
    top_k = {setup.retriever.name: setup.retriever.top_k, **setup.raft_top_k}
    return TrainingInputs(
        documents=documents,
        qa=pd.concat([qa_train.assign(split="train"), tune.assign(split="tune")], ignore_index=True),
        chunks={name: chunk_documents(documents, chunker) for name, chunker in chunkers.items()},
        top_k=top_k,
    )


def _train(documents, qa_train, tune, tokenizer, setup: DrillSetup, base_dir: Path, out_dir: Path) -> float:
    """Train the drill adapter into ``out_dir`` as ``finetune`` would (its budget, its snapshot choice); seconds."""
    inputs = training_inputs(documents, qa_train, tune, setup)
    examples, held_out = examples_and_dev(inputs, tokenizer, setup.adapter, setup.prompts)
    start = time.perf_counter()
    salt = uuid.uuid4().hex  # a fresh run, timed: never one a bucket kept from an earlier drill
    train_adapter(examples, base_dir, setup.adapter, setup.ray, out_dir, out_dir.parent / "ray", eval_examples=held_out,
                  store=setup.store, run_salt=salt)  # fmt: skip
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
    split: DrillSplit, setup: DrillSetup, base_dir: Path, embedder, scorers: dict, scoring: dict, work_dir: Path
) -> list[ArmResult]:
    """Set every arm up on the old documents, add the new ones, score the probes before and after.

    Args:
        scoring: ``metric`` (the main metric), ``threshold`` (answered at or above it), ``statistics``
            (the bootstrap config) and ``groups`` (qa_id -> leakage group).

    ``work_dir`` receives the drill's own LanceDB folder and adapters; nothing else is written.
    """
    import lancedb

    tokenizer = load_tokenizer(base_dir)
    db = lancedb.connect(str(work_dir / "index"))
    r = setup.retriever
    questions = split.probes["question"].tolist()

    def search():
        return Retriever(r, db.open_table(table_name(r.chunker, r.embedder)), embedder).search(questions)[0]

    def score(model, hits) -> pd.DataFrame:
        top_k = r.top_k if hits is not None else None
        return answer_cell(
            model, tokenizer, split.probes, hits, setup.prompts, setup.generation, scorers, top_k, None, setup.examples
        )

    _index(db, split.before_documents, embedder, setup)
    hits_before = search()
    _train(
        split.before_documents, split.before_train, split.tune, tokenizer, setup, base_dir, work_dir / "adapter-before"
    )
    base = load_model(base_dir)
    before = {"rag": score(base, hits_before)}
    adapter = load_model(base_dir, work_dir / "adapter-before")
    before["finetune"], before["both"] = score(adapter, None), score(adapter, hits_before)

    index_s = _index(db, split.after_documents, embedder, setup)
    hits_after = search()
    after_dir = work_dir / "adapter-after"
    train_s = _train(split.after_documents, split.after_train, split.tune, tokenizer, setup, base_dir, after_dir)
    after = {"rag": score(base, hits_after)}
    adapter = load_model(base_dir, work_dir / "adapter-after")
    after["finetune"], after["both"] = score(adapter, None), score(adapter, hits_after)

    absorb = {"rag": index_s, "finetune": train_s, "both": index_s + train_s}
    return [_result(arm, absorb[arm], before[arm], after[arm], scoring) for arm in ARMS]


def _result(arm: str, absorb_s: float, before: pd.DataFrame, after: pd.DataFrame, scoring: dict) -> ArmResult:
    from components.decision.statistics import bootstrap

    metric, threshold = scoring["metric"], scoring["threshold"]
    answered = (after.set_index("qa_id")[metric] >= threshold).astype(float).to_frame(arm)
    interval = bootstrap(answered, scoring["statistics"], scoring["groups"]).iloc[0]
    return ArmResult(
        arm=arm,
        absorb_s=absorb_s,
        answered_before=float((before[metric] >= threshold).mean()),
        answered_after=float(interval["mean"]),
        answered_after_low=float(interval["ci_low"]),
        answered_after_high=float(interval["ci_high"]),
        f1_before=float(before["f1"].mean()),
        f1_after=float(after["f1"].mean()),
    )


def to_table(results: list[ArmResult]) -> pd.DataFrame:
    return pd.DataFrame([asdict(r) for r in results])


def to_markdown(results: list[ArmResult], split: DrillSplit, setup: DrillSetup, confidence: float) -> str:
    """The knowledge-update table."""
    pct = round(confidence * 100)
    lines = [
        "# Knowledge-update drill",
        "",
        f"{len(split.new_documents)} of {len(split.after_documents)} documents "
        + (
            "changed their facts"
            if len(split.before_documents) == len(split.after_documents)
            else "held back and added as new data"
        )
        + f"; {len(split.probes)} dev questions about them probe each arm (never trained on; test is not read). "
        f"Retriever {setup.retriever.name}, adapter {setup.adapter.name} (its own budget).",
        "",
        f"| arm | time to absorb (s) | answered before | answered after ({pct}% CI) | F1 before | F1 after |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        lines.append(
            f"| {r.arm} | {r.absorb_s:.1f} | {r.answered_before:.3f} | {r.answered_after:.3f} "
            f"({r.answered_after_low:.3f}-{r.answered_after_high:.3f}) | {r.f1_before:.3f} | {r.f1_after:.3f} |"
        )
    return "\n".join(lines) + "\n"
