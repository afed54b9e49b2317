"""Registering grid cells: the champion (``ragtune-qa@champion``) and each trained adapter.

The bundle (:mod:`.bundle`) and the pyfunc class (:mod:`.model`, logged from code by
:mod:`.pyfunc_code`, never pickled) are ragtune's; the registry calls go through ``components.tracking``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from components import tracking
from components.catalog.artifacts import Choice
from components.config import EmbedderConfig, GenerationConfig, PromptConfig, RegistryConfig, RetrieverConfig
from components.io import dir_hash
from components.serving.bundle import NO_RETRIEVAL, Bundle, bundle_files, bundle_hash, make_bundle

logger = logging.getLogger(__name__)

CODE_PATH = Path(__file__).resolve().parents[1]  # the `components` package travels with every version
MODEL_CODE = Path(__file__).with_name("pyfunc_code.py")  # what MLflow runs to load a version (models from code)


def register_bundle(
    name: str,
    bundle: Bundle,
    base_dir: Path,
    adapter_dir: Path | None,
    alias: str | None = None,
    tags: dict[str, str] | None = None,
    expected: str | None = None,
) -> dict:
    """Register ``bundle`` as a version of ``name`` (a :class:`~components.serving.model.RagtuneModel`).

    A version whose content hash (tag ``ragtune.bundle_hash``) matches is reused, not duplicated;
    ``alias`` is (re)pointed at the resulting version either way, by compare-and-set from
    ``expected`` (the version the gate judged against; None: none): call it only for a cell that
    passed the gate (:func:`components.serving.champion.judge`).

    Raises:
        components.tracking.AliasMovedError: the alias no longer points at ``expected``.

    Returns:
        ``name``, ``version``, ``run_id``, ``bundle_hash``, ``created`` (False when reused), ``model_uri``.
    """
    digest = bundle_hash(bundle, adapter_dir)
    version = tracking.find_version(name, digest)
    created = version is None
    if version is None:
        bundle = bundle.model_copy(
            update={"base_model_uri": tracking.ensure_base_model(base_dir, bundle.base_model_hash, tags)}
        )
        version_tags = {
            "ragtune.cell": bundle.cell,
            "ragtune.model": bundle.model,
            "ragtune.retriever": bundle.retrieval,
            "ragtune.base_model_uri": bundle.base_model_uri,
        }
        if bundle.index_table is not None:
            version_tags.update(
                {"ragtune.index_table": bundle.index_table, "ragtune.index_version": str(bundle.index_version)}
            )
        version, created = tracking.register_pyfunc(
            name,
            digest,
            MODEL_CODE,
            lambda tmp: bundle_files(bundle, adapter_dir, tmp),
            [str(CODE_PATH)],
            bundle.model_dump(mode="json"),
            version_tags,
            tags or {},
        )
    if alias is not None:
        tracking.move_alias(name, alias, str(version.version), expected)
    logger.info(
        "%s version %s (%s)%s",
        name,
        version.version,
        "new" if created else "unchanged, reused",
        f" is now @{alias}" if alias else "",
    )
    return {
        "name": name,
        "version": str(version.version),
        "run_id": version.run_id,
        "bundle_hash": digest,
        "created": created,
        "model_uri": f"models:/{name}/{version.version}",
    }


def register_adapter(
    name: str, bundle: Bundle, base_dir: Path, adapter_dir: Path, tags: dict[str, str] | None = None
) -> dict:
    """Register a trained adapter, closed-book, as a version of ``name`` (see :func:`register_bundle`)."""
    if bundle.retriever is not None:
        raise ValueError("an adapter is registered closed-book: its bundle must have no retriever")
    return register_bundle(name, bundle, base_dir, adapter_dir, alias=None, tags=tags)


def register_adapters(
    names: list[str],
    adapters_dir: Path,
    base_dir: Path,
    prefix: str,
    prompts: PromptConfig,
    generation: GenerationConfig,
    tags: dict[str, str],
) -> list[dict]:
    """Register each trained adapter (closed-book pyfunc) as a version of ``<prefix><name>``."""
    base_hash = dir_hash(base_dir)
    results = []
    for name in names:
        bundle = make_bundle(name, None, {}, None, None, prompts, generation, base_hash)
        results.append(register_adapter(f"{prefix}{name}", bundle, base_dir, adapters_dir / name, tags))
    return results


@dataclass(frozen=True)
class CellPlan:
    """What registering a grid cell would store: its bundle, its adapter folder and their content hash."""

    choice: Choice
    bundle: Bundle
    adapter_dir: Path | None
    digest: str  # the version's ``ragtune.bundle_hash``: equal digests, the very same model


def plan_cell(
    choice: Choice,
    retriever: RetrieverConfig | None,
    embedders: dict[str, EmbedderConfig],
    index_uri: str,
    base_dir: Path,
    adapters_dir: Path,
    prompts: PromptConfig,
    generation: GenerationConfig,
    examples: list[tuple[str, str]] = (),
) -> CellPlan:
    """The bundle of the cell ``choice`` names, its retriever pinned to the LanceDB table version it was evaluated on.

    ``examples`` are the few-shot pairs of a few-shot cell, served with its prompts.

    Raises:
        ValueError: ``choice`` names a retriever but ``retriever`` is None (unknown to params).
    """
    if retriever is None and choice.retriever != NO_RETRIEVAL:
        raise ValueError(f"the chosen cell names retriever {choice.retriever!r}, unknown to params/retrieval.yaml")
    version = tracking.run_params(choice.run_id).get("index_table_version")
    bundle = make_bundle(
        choice.model,
        retriever,
        embedders,
        index_uri,
        int(version) if version is not None else None,
        prompts,
        generation,
        dir_hash(base_dir),
        examples,
    )
    adapter_dir = None if choice.model == "base" else adapters_dir / choice.model
    return CellPlan(choice, bundle, adapter_dir, bundle_hash(bundle, adapter_dir))


def register_cell(
    plan: CellPlan, base_dir: Path, registry: RegistryConfig, tags: dict[str, str], expected: str | None
) -> dict:
    """Register the planned cell as a version of ``registry.name`` and point ``registry.alias`` at it.

    Only for a cell that passed the gate: this moves the alias, and only from ``expected``, the
    version the gate judged against (compare-and-set).
    """
    choice = plan.choice
    run_tags = {**tags, "ragtune.source_run_id": choice.run_id}
    result = register_bundle(registry.name, plan.bundle, base_dir, plan.adapter_dir, None, run_tags)
    tracking.log_to_run(choice.run_id, tags={"ragtune.registered_as": f"{result['name']}/{result['version']}"})
    tracking.move_alias(registry.name, registry.alias, result["version"], expected)  # last: a failure before leaves it
    logger.info("%s version %s is now @%s", registry.name, result["version"], registry.alias)
    return result
