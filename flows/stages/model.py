"""``ragtune model``: convert the base LLM once into plain safetensors under data/models/base."""

from __future__ import annotations

import typer

from flows.common import stage


def main() -> None:
    """Convert the base LLM once into plain safetensors under data/models/base."""
    from components.catalog import artifacts
    from components.catalog.artifacts import ModelInfo
    from components.io import atomic_path
    from components.llm.models import prepare_base_model

    s = stage("model")
    with atomic_path(s.catalog.base_model) as out:
        info = ModelInfo(**prepare_base_model(s.params.finetune.base_model, out))
    artifacts.write(info, s.catalog.metrics("model"))
    typer.echo(f"base model {info.name} ({info.parameters / 1e6:.0f} M parameters) ready")
