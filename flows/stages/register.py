"""``ragtune register``: each trained adapter as a model version, and the chosen cell as ``ragtune-qa@champion``."""

from __future__ import annotations

import typer

from flows.common import data_version, exits_on, stage


def main() -> None:
    """Register the trained adapters, then the chosen cell (data/metrics/best.json) with the champion alias."""
    from components import tracking
    from components.catalog import artifacts
    from components.catalog.artifacts import BestFile
    from components.io import write_json
    from components.serving.register import register_adapters, register_cell

    s = stage("register")
    p, c, cfg = s.params, s.catalog, s.params.evaluation
    best = artifacts.read(BestFile, c.metrics("best"))
    chosen = best.recommended  # the champion is the recommendation (cheapest of the cells as good as the best)
    generation = cfg.generation.model_copy(update={"max_new_tokens": best.max_new_tokens})
    tracking.setup_ops(s.root, cfg.experiment)
    tags = tracking.provenance_tags(s.root, data_version(s.root, p.data.paths.raw))
    names = [a.name for a in p.finetune.adapters]
    prefix = cfg.registry.adapter_prefix
    for result in register_adapters(names, c.adapters, c.base_model, prefix, cfg.prompts, generation, tags):
        typer.echo(
            f"adapter: {result['name']} version {result['version']}{'' if result['created'] else ' (unchanged)'}"
        )
    retrievers = {r.name: r for r in p.retrieval.retrievers}
    with exits_on(ValueError):
        result = register_cell(
            chosen,
            retrievers.get(chosen.retriever),
            p.retrieval.embedders,
            str(c.index.resolve()),
            c.base_model,
            c.adapters,
            cfg.prompts,
            generation,
            cfg.registry,
            tags,
            best.few_shot_examples,
        )
    write_json({**result, "cell": chosen.cell, "alias": cfg.registry.alias}, c.metrics("registry"))
    typer.echo(
        f"{chosen.cell} (run {chosen.run_id}) is {result['name']} version {result['version']} "
        f"@{cfg.registry.alias} ({'new version' if result['created'] else 'same bundle, version reused'})"
    )
