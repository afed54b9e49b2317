"""``ragtune register``: the gate, then, on a pass only, the adapters and the recommended cell as ``@champion``.

The recommended cell of data/metrics/best.json (the cheapest cell tied with the best) is judged
against the current champion on the same dev questions (``components.serving.champion.judge``).
A recommendation made on fewer than ``statistics.min_groups`` dev question groups is refused
unless ``gate.allow_few_groups``. A fail leaves the registry as it was and exits 1 with the figures. The verdict goes to
data/metrics/gate.json either way (what ``ragtune ci`` summarises) and onto the pipeline's run.
"""

from __future__ import annotations

import typer

from flows.common import EXIT_FAILED, EXIT_TRANSIENT, data_version, exits_on, fail, is_transient_error, stage


def main() -> None:
    """Judge the recommended cell against @champion; on a pass register the adapters and move the alias to it."""
    from components import tracking
    from components.catalog import artifacts
    from components.catalog.artifacts import BestFile
    from components.decision.gate import size_guard
    from components.io import read_parquet, write_json
    from components.serving.champion import ChampionUnavailableError, judge
    from components.serving.register import plan_cell, register_adapters, register_cell

    s = stage("register")
    p, c, cfg = s.params, s.catalog, s.params.evaluation
    best = artifacts.read(BestFile, c.metrics("best"))
    generation = cfg.generation.model_copy(update={"max_new_tokens": best.max_new_tokens})  # the grid's cap
    tracking.setup_ops(s.root, cfg.experiment)
    tags = tracking.provenance_tags(s.root, data_version(s.root, p.data.paths.raw))
    retrievers = {r.name: r for r in p.retrieval.retrievers}
    chosen = best.recommended
    with exits_on(ValueError):
        plan = plan_cell(
            chosen,
            retrievers.get(chosen.retriever),
            p.retrieval.embedders,
            str(c.index.resolve()),
            c.base_model,
            c.adapters,
            cfg.prompts,
            generation,
            best.few_shot_examples,
        )

    def evaluation():  # read only when there is a champion to compare with
        return read_parquet(c.qa), read_parquet(c.predictions)

    m, gate = cfg.main_metric, cfg.gate
    refused = size_guard(chosen.cell, m, best.split, gate.margin, best.groups, best.few_groups, gate.allow_few_groups)
    try:
        verdict = refused or judge(plan, c.base_model, evaluation, m, gate, cfg.statistics, cfg.registry)
    except (ChampionUnavailableError, ValueError, FileNotFoundError) as exc:
        code = EXIT_TRANSIENT if is_transient_error(exc) else EXIT_FAILED
        raise fail(f"gate: cannot judge {chosen.cell}: {exc}\n@{cfg.registry.alias} stays where it was", code) from exc
    write_json(verdict.as_dict(), c.metrics("gate"))
    figures = {f"gate_{k}": v for k, v in verdict.as_dict().items() if isinstance(v, float) and k != "margin"}
    tracking.log_to_run(best.parent_run_id, metrics=figures, tags={"ragtune.gate": verdict.summary()[:5000]})
    typer.echo(verdict.summary())
    if not verdict.passed:
        raise fail(f"gate refused {chosen.cell}: {cfg.registry.name}@{cfg.registry.alias} stays", EXIT_FAILED)
    if cfg.gate.judge_only:
        write_json({"registered": False, "cell": chosen.cell, "alias": cfg.registry.alias}, c.metrics("registry"))
        typer.echo("gate.judge_only: nothing registered, the alias stays")
        return
    names, prefix = [a.name for a in p.finetune.adapters], cfg.registry.adapter_prefix
    for result in register_adapters(names, c.adapters, c.base_model, prefix, cfg.prompts, generation, tags):
        typer.echo(f"adapter: {result['name']} version {result['version']}{'' if result['created'] else ' (same)'}")
    result = register_cell(plan, c.base_model, cfg.registry, tags)
    write_json({**result, "registered": True, "cell": chosen.cell, "alias": cfg.registry.alias}, c.metrics("registry"))
    typer.echo(
        f"{chosen.cell} (run {chosen.run_id}) is {result['name']} version {result['version']} "
        f"@{cfg.registry.alias} ({'new version' if result['created'] else 'same bundle, version reused'})"
    )
