"""``ragtune drill`` on a project: choose the arms from the recommendation, run the drill, write its report."""

from __future__ import annotations

import shutil

from components.catalog import Catalog, artifacts
from components.catalog.artifacts import BestFile
from components.evaluation.drill import (
    DrillSetup,
    change_facts,
    choose_arms,
    hold_back,
    run_drill,
    to_markdown,
    to_table,
)
from components.io import read_parquet, write_json, write_text


def drill_setup(params, best: BestFile, store=None) -> DrillSetup:
    """The drill's pieces for the recommended mix of ``best``: its retriever and adapter (or the best dev cell's
    that has one), the adapter's RAFT retrievers' chunkers, and the few-shot turns of a few-shot recommendation."""
    from components.config import RaftSource

    p, cfg = params, params.evaluation
    ranking = [c.model_dump() for c in [best.recommended, *best.ranking]]
    names = ([r.name for r in p.retrieval.retrievers], [a.name for a in p.finetune.adapters])
    retriever_name, adapter_name = choose_arms(cfg.drill, ranking, *names)
    retriever = p.retrieval.retriever(retriever_name)
    adapter = p.finetune.adapter(adapter_name)
    raft = {s.retriever: p.retrieval.retriever(s.retriever) for s in adapter.data if isinstance(s, RaftSource)}
    return DrillSetup(
        chunker=p.data.chunkers[retriever.chunker],
        retriever=retriever,
        adapter=adapter,
        index=p.retrieval.index,
        ray=p.finetune.ray,
        prompts=cfg.prompts,
        generation=cfg.generation.model_copy(update={"max_new_tokens": best.max_new_tokens}),
        raft_chunkers={name: p.data.chunkers[r.chunker] for name, r in raft.items()},
        raft_top_k={name: r.top_k for name, r in raft.items()},
        examples=list(best.few_shot_examples),
        store=store,
    )


def drill_report(params, catalog: Catalog, store=None) -> tuple[str, dict[str, float], list]:
    """Hold back, absorb, score; write the report and metrics files. ``store``: the object store the drill's
    training runs go through (None: local folders).

    Returns:
        The markdown report, the metrics for MLflow (``<arm>_<measure>``), and the files written.
    """
    from components.evaluation.run import scorers
    from components.retrieval.embedding import Embedder

    p, cfg = params, params.evaluation
    best = artifacts.read(BestFile, catalog.metrics("best"))
    setup = drill_setup(p, best, store)
    retriever, adapter = setup.retriever, setup.adapter
    qa = read_parquet(catalog.qa)
    split = hold_back(read_parquet(catalog.documents), qa, cfg.drill)
    if cfg.drill.changed is not None:
        from components.data.ingest import ingest

        changed = ingest(catalog.root / cfg.drill.changed, p.data.split, p.data.max_file_mb)
        split = change_facts(split, changed.documents, changed.qa)
    work = catalog.scratch("drill")  # its own index and adapters, never data/raw or data/index
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    scoring = {
        "metric": cfg.main_metric,
        "threshold": cfg.answered_threshold,
        "statistics": cfg.statistics,
        "groups": qa.set_index("qa_id")["leakage_group"],
    }
    embedder = Embedder(p.retrieval.embedders[retriever.embedder])
    results = run_drill(split, setup, catalog.base_model, embedder, scorers(None), scoring, work)
    markdown = to_markdown(results, split, setup, cfg.statistics.confidence)
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
