"""``ragtune select``: rank the cells with intervals and costs, recommend a mix, write the report, log it."""

from __future__ import annotations

from dataclasses import replace

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
    from components.catalog import artifacts
    from components.decision.inputs import read_inputs
    from components.decision.leaderboard import for_dashboard
    from components.decision.select import decide, run_metrics
    from components.questions.report import question_section

    s = stage("select")
    p, c, cfg = s.params, s.catalog, s.params.evaluation
    inputs = replace(read_inputs(c, p.retrieval.retrievers), question_set=question_section(c))
    cells = inputs.cells
    decision = decide(inputs, cfg)

    files = write_report(decision, c)
    artifacts.write(decision.best, c.metrics("best"))
    tracking.setup(s.root, cfg.experiment)
    m, best, chosen = cfg.main_metric, decision.best.best, decision.best.recommended
    for table in (decision.table, decision.test):
        for run_id, metrics in run_metrics(table, m).items() if table is not None else ():
            tracking.log_to_run(run_id, metrics=metrics)
    tracking.mark_leaderboard(for_dashboard(decision, m), cells.parent_run_id, cells.experiment_id)
    confirmed = decision.best.confirmation
    tracking.log_to_run(
        cells.parent_run_id,
        metrics={
            f"best_{m}": best.mean,
            f"recommended_{m}": chosen.mean,
            **({f"test_{m}": confirmed.mean} if confirmed.mean is not None else {}),
            **{f"retention_{model}": value for model, value in decision.best.retention.items()},
        },
        files=files,
        params={"evaluation.main_metric": m},
        tags={
            "ragtune.best_cell": best.cell,
            "ragtune.best_run_id": best.run_id,
            "ragtune.recommended_cell": chosen.cell,
            "ragtune.recommended_run_id": chosen.run_id,
            "ragtune.recommendation": decision.recommendation["text"][:5000],  # + confirmation: recommendation.md
            "ragtune.confirmation": confirmed.choice,
            "ragtune.estimate": confirmed.estimate,
        },
    )
    typer.echo(decision.markdown)
