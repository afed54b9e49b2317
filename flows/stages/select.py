"""``ragtune select``: rank the cells with intervals and costs, recommend a mix, write the report, log it."""

from __future__ import annotations

import typer

from flows.common import stage


def main() -> None:
    """Rank the cells with intervals and costs, recommend a mix, write the report; record it in MLflow."""
    from components import tracking
    from components.catalog import artifacts, table_name
    from components.catalog.artifacts import CellsFile, FinetuneFile, IndexFile, RetrievalFile
    from components.decision.select import decide, run_metrics
    from components.io import atomic_path, read_parquet, write_text

    s = stage("select")
    p, c, cfg = s.params, s.catalog, s.params.evaluation
    cells = artifacts.read(CellsFile, c.cells)
    rows = read_parquet(c.predictions)
    train = {k: v.model_dump() for k, v in artifacts.read(FinetuneFile, c.metrics("finetune")).root.items()}
    tables = artifacts.read(IndexFile, c.metrics("index")).root
    index_time = {
        r.name: tables[t].build_time_s if (t := table_name(r.chunker, r.embedder)) in tables else 0.0
        for r in p.retrieval.retrievers
    }
    retrieval = artifacts.read(RetrievalFile, c.metrics("retrieval"))
    decision = decide(cells, rows, cfg, train, index_time, {n: r.splits for n, r in retrieval.retrievers.items()})

    files = [c.leaderboard, c.report_html]
    for name, draw in decision.charts.items():
        with atomic_path(c.report(name)) as tmp:
            draw(tmp)
        files.append(c.report(name))
    write_text(decision.markdown, files[0])
    write_text(decision.html, files[1])
    if not decision.complementarity.empty:
        with atomic_path(c.complementarity) as tmp:
            decision.complementarity.to_csv(tmp, index=False)
        files.append(c.complementarity)
    artifacts.write(decision.best, c.metrics("best"))

    tracking.setup(s.root, cfg.experiment)
    m, best, chosen = cfg.main_metric, decision.best.best, decision.best.recommended
    for run_id, metrics in run_metrics(decision.table, m).items():
        tracking.log_to_run(run_id, metrics=metrics)
    tracking.mark_leaderboard(decision.table, m, chosen.cell, cells.experiment_id, decision.recommendation["text"])
    tracking.log_to_run(
        cells.parent_run_id,
        metrics={f"best_{m}": best.mean, f"recommended_{m}": chosen.mean},
        files=files,
        params={"evaluation.main_metric": m},
        tags={
            "ragtune.best_cell": best.cell,
            "ragtune.best_run_id": best.run_id,
            "ragtune.recommended_cell": chosen.cell,
            "ragtune.recommended_run_id": chosen.run_id,
            "ragtune.recommendation": decision.recommendation["text"][:5000],
        },
    )
    typer.echo(decision.markdown)
