"""``ragtune finetune``: train every LoRA adapter with Ray Train; one MLflow training run per adapter.

An interrupted run resumes: run it again with the same params and data, and each adapter continues
from the latest checkpoint under data/models/ray/<adapter>-<fingerprint>. Registering the adapters
in the model registry is the ``register`` stage's work. ``RAGTUNE_STORAGE_URI`` (s3://bucket/prefix,
with ``AWS_ENDPOINT_URL`` and the AWS credentials) keeps the runs and the base model in object
storage instead, for a Ray cluster that shares no disk with this machine (docs/scale-out.md).
"""

from __future__ import annotations

import typer

from flows.common import EXIT_CONFIG, data_version, exits_on, stage


def main() -> None:
    """Train every LoRA adapter in params/finetune.yaml with Ray Train; one MLflow run per adapter."""
    import os

    from components import tracking
    from components.catalog import artifacts
    from components.catalog.artifacts import AdapterTraining, FinetuneFile
    from components.io import atomic_path
    from components.llm.models import load_tokenizer
    from components.storage import ObjectStore
    from components.training.examples import examples_and_dev
    from components.training.inputs import load_inputs
    from components.training.trainer import train_adapter

    s = stage("finetune")
    with exits_on(ValueError, code=EXIT_CONFIG):
        store = ObjectStore.from_env(os.environ)
    p, c = s.params, s.catalog
    inputs = load_inputs(c, p.finetune.adapters, p.retrieval)
    tokenizer = load_tokenizer(c.base_model)
    tracking.setup_ops(s.root, p.evaluation.experiment)
    tags = tracking.provenance_tags(s.root, data_version(s.root, p.data.paths.raw))
    results = {}
    with atomic_path(c.adapters) as out, atomic_path(c.curves) as curves:
        out.mkdir()
        curves.mkdir()
        for adapter in p.finetune.adapters:
            examples, dev = examples_and_dev(inputs, tokenizer, adapter, p.evaluation.prompts)
            metrics = train_adapter(
                examples,
                c.base_model,
                adapter,
                p.finetune.ray,
                out / adapter.name,
                c.ray_storage,
                cluster_address=os.environ.get("RAY_ADDRESS"),
                eval_examples=dev,
                curve_dir=curves / adapter.name,
                store=store,
            )
            tokenizer.save_pretrained(out / adapter.name)
            run_params = {
                "adapter": adapter.model_dump(mode="json"),
                "ray": p.finetune.ray.model_dump(),
                "base_model": p.finetune.base_model.name,
                "examples": len(examples),
                "dev_examples": len(dev),
            }
            history = metrics.pop("history", [])
            run_id = tracking.log_training(adapter.name, run_params, history, metrics, tags)
            results[adapter.name] = AdapterTraining.from_run(metrics, run_id)
            typer.echo(
                f"{adapter.name}: {metrics['step']} steps, loss {metrics['loss']:.3f}, "
                f"{metrics['tokens_per_s']:.0f} tokens/s, {metrics['compute_s']:.0f} s of compute, "
                f"peak {metrics['peak_memory_mb']:.0f} MB (MLflow run {run_id})"
            )
    artifacts.write(FinetuneFile(results), c.metrics("finetune"))
