"""``ragtune register``: the gate, then, on a pass only, the adapters and the recommended cell as ``@champion``.

The recommended cell of data/metrics/best.json is judged against the current champion on the same
test questions (``components.serving.promote``). A refusal, or a registry that gives no definite
answer, leaves the registry as it was and exits 1 (75 when a rerun may succeed) with one line. The
verdict goes to data/metrics/gate.json (what ``ragtune ci`` summarises) and onto the pipeline's run.
"""

from __future__ import annotations

import typer

from flows.common import EXIT_FAILED, data_version, exits_classified, exits_on, fail, stage


def main() -> None:
    """Judge the recommended cell against @champion; on a pass register the adapters and move the alias to it."""
    from components import tracking
    from components.catalog import artifacts
    from components.catalog.artifacts import BestFile
    from components.io import read_parquet, write_json
    from components.serving.champion import ChampionUnavailableError
    from components.serving.index_bundle import IndexIntegrityError
    from components.serving.promote import AnchorNotMovedError, promote, verdict_for
    from components.serving.register import plan_cell

    s = stage("register")
    p, c, cfg = s.params, s.catalog, s.params.evaluation
    best = artifacts.read(BestFile, c.metrics("best"))
    generation = cfg.generation.model_copy(update={"max_new_tokens": best.max_new_tokens})  # the grid's cap
    chosen, alias = best.recommended, f"{cfg.registry.name}@{cfg.registry.alias}"
    expected = (ChampionUnavailableError, IndexIntegrityError, LookupError, OSError, ValueError, AnchorNotMovedError)
    ours = lambda exc: isinstance(exc, expected) or tracking.is_tracking_error(exc)  # noqa: E731
    with exits_classified(f"gate: cannot judge {chosen.cell}", ours, outcome=f"{alias} stays where it was"):
        tracking.setup_ops(s.root, cfg.experiment)
        tags = tracking.provenance_tags(s.root, data_version(s.root, p.data.paths.raw))
        retriever = {r.name: r for r in p.retrieval.retrievers}.get(chosen.retriever)
        with exits_on(ValueError):
            plan = plan_cell(chosen, retriever, p.retrieval.embedders, str(c.index.resolve()), c.base_model,
                             c.adapters, cfg.prompts, generation, best.few_shot_examples)  # fmt: skip
        evaluation = lambda: (read_parquet(c.qa), read_parquet(c.predictions))  # noqa: E731 (read only when judged)
        verdict = verdict_for(best, plan, c.base_model, evaluation, cfg, p.retrieval.embedders)
        write_json(verdict.as_dict(), c.metrics("gate"))
        figures = {f"gate_{k}": v for k, v in verdict.as_dict().items() if isinstance(v, float) and k != "margin"}
        tracking.log_to_run(best.parent_run_id, metrics=figures, tags={"ragtune.gate": verdict.summary()[:5000]})
    typer.echo(verdict.summary())
    if not verdict.passed:
        raise fail(f"gate refused {chosen.cell}: {alias} stays", EXIT_FAILED)
    if cfg.gate.judge_only:
        write_json({"registered": False, "cell": chosen.cell, "alias": cfg.registry.alias}, c.metrics("registry"))
        typer.echo("gate.judge_only: nothing registered, the alias stays")
        return
    names = [a.name for a in p.finetune.adapters]
    with exits_classified(f"register: {chosen.cell} passed the gate, registering it failed", ours):
        adapters, result = promote(plan, verdict, c.base_model, c.adapters, names, cfg, generation, tags)
    for a in adapters:
        typer.echo(f"adapter: {a['name']} version {a['version']}{'' if a['created'] else ' (same)'}")
    write_json({**result, "registered": True, "cell": chosen.cell, "alias": cfg.registry.alias}, c.metrics("registry"))
    typer.echo(
        f"{chosen.cell} (run {chosen.run_id}) is {result['name']} version {result['version']} "
        f"@{cfg.registry.alias} ({'new version' if result['created'] else 'same bundle, version reused'})"
    )
