"""``ragtune select``: rank the cells with intervals and costs, recommend a mix, write the report, log it."""

from __future__ import annotations

import typer

from flows.common import stage


def write_report(decision, c) -> list:
    """Write the leaderboard, the HTML report, its charts and the complementarity table; return the files."""
    from components.io import atomic_path, write_text

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
    return files


def main() -> None:
    """Rank the cells with intervals and costs, recommend a mix, write the report; record it in MLflow."""
    from components import tracking
    from components.catalog import artifacts, table_name
    from components.catalog.artifacts import CellsFile, CurvesFile, FinetuneFile, IndexFile, RetrievalFile
    from components.decision.select import decide, run_metrics
    from components.io import read_parquet

    s = stage("select")
    p, c, cfg = s.params, s.catalog, s.params.evaluation
    cells = artifacts.read(CellsFile, c.cells)
    rows = read_parquet(c.predictions)
    train = {k: v.model_dump() for k, v in artifacts.read(FinetuneFile, c.metrics("finetune")).root.items()}
    tables = artifacts.read(IndexFile, c.metrics("index")).root
    index_time = {
        r.name: tables[t].full_build_s if (t := table_name(r.chunker, r.embedder)) in tables else 0.0
        for r in p.retrieval.retrievers
    }
    retrieval = {n: r.splits for n, r in artifacts.read(RetrievalFile, c.metrics("retrieval")).retrievers.items()}
    curves = artifacts.read(CurvesFile, c.curves_file).root
    groups = read_parquet(c.qa).set_index("qa_id")["leakage_group"]
    decision = decide(cells, rows, cfg, train, index_time, retrieval, curves, groups)

    files = write_report(decision, c)
    artifacts.write(decision.best, c.metrics("best"))

    tracking.setup(s.root, cfg.experiment)
    m, best, chosen = cfg.main_metric, decision.best.best, decision.best.recommended
    for table in (decision.table, decision.test):
        for run_id, metrics in run_metrics(table, m).items() if table is not None else ():
            tracking.log_to_run(run_id, metrics=metrics)
    tracking.mark_leaderboard(decision.table, m, chosen.cell, cells.experiment_id, decision.recommendation["text"])
    confirmed = decision.best.confirmation
    tracking.log_to_run(
        cells.parent_run_id,
        metrics={
            f"best_{m}": best.mean,
            f"recommended_{m}": chosen.mean,
            **({f"test_{m}": confirmed.mean} if confirmed.mean is not None else {}),
        },
        files=files,
        params={"evaluation.main_metric": m},
        tags={
            "ragtune.best_cell": best.cell,
            "ragtune.best_run_id": best.run_id,
            "ragtune.recommended_cell": chosen.cell,
            "ragtune.recommended_run_id": chosen.run_id,
            "ragtune.recommendation": decision.recommendation["text"][:5000],
            "ragtune.confirmation": confirmed.outcome,
        },
    )
    typer.echo(decision.markdown)
