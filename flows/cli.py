"""The ``ragtune`` command line: one command per pipeline stage, plus ``run`` and ``ui``.

Every stage command is what ``dvc.yaml`` runs; it resolves paths from ``params/``, calls the
component functions and writes its outputs atomically. ``ragtune run`` starts the Prefect flow
that drives the stages through DVC.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from flows.data_cli import data_app
from flows.ops_cli import ops_app, preflight

app = typer.Typer(help="ragtune: RAG or fine-tuning, or both? Settle it with measurements.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(ops_app)  # schedule, trigger, gate
logger = logging.getLogger("ragtune")

OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "RAY_USAGE_STATS_ENABLED": "0",
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "TOKENIZERS_PARALLELISM": "false",
}


@app.callback()
def main(verbose: bool = typer.Option(False, "--verbose", "-v", help="debug logging")) -> None:
    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    if not verbose:  # one INFO line per HTTP request to the Prefect/MLflow API drowns the stage logs
        logging.getLogger("httpx").setLevel(logging.WARNING)


def _root() -> Path:
    return Path.cwd()


def _params():
    from components.config import ConfigError, load_params

    try:
        return load_params(_root() / "params")
    except ConfigError as exc:
        typer.secho(str(exc), fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from exc


def _data_version(root: Path, raw: str) -> str:
    """DVC's hash of the raw data, as recorded by the last `ingest` in dvc.lock."""
    import yaml

    lock = root / "dvc.lock"
    if not lock.is_file():
        return "untracked"
    with lock.open(encoding="utf-8") as f:
        stages = (yaml.safe_load(f) or {}).get("stages", {})
    for dep in stages.get("ingest", {}).get("deps", []):
        if dep.get("path") == raw:
            return str(dep.get("md5", "untracked"))
    return "untracked"


# --- stages -------------------------------------------------------------------------------------


@app.command()
def ingest() -> None:
    """Validate data/raw, split the questions, chunk the documents into data/processed."""
    from components.chunking import chunk_documents
    from components.ingest import DataValidationError
    from components.ingest import ingest as run_ingest
    from components.io import atomic_path, write_json

    params = _params()
    paths = params.data.paths
    try:
        result = run_ingest(_root() / paths.raw, params.data.split, params.data.max_file_mb)
    except DataValidationError as exc:
        typer.secho(str(exc), fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from exc
    report = dict(result.report)
    with atomic_path(_root() / paths.processed) as out:
        out.mkdir()
        result.documents.to_parquet(out / "documents.parquet", index=False)
        result.qa.to_parquet(out / "qa.parquet", index=False)
        for name, chunker in params.data.chunkers.items():
            chunks = chunk_documents(result.documents, chunker)
            chunks.to_parquet(out / f"chunks-{name}.parquet", index=False)
            report[f"chunks_{name}"] = len(chunks)
    write_json(report, _root() / paths.metrics / "ingest.json")
    typer.echo(
        f"ingested {report['documents']} documents and {report['questions']} questions "
        f"(train {report['questions_train']}, dev {report['questions_dev']}, test {report['questions_test']})"
    )


@app.command()
def model() -> None:
    """Convert the base LLM once into plain safetensors under data/models/base."""
    from components.io import atomic_path, write_json
    from components.models import prepare_base_model

    params = _params()
    paths = params.data.paths
    with atomic_path(_root() / paths.models / "base") as out:
        info = prepare_base_model(params.finetune.base_model, out)
    write_json(info, _root() / paths.metrics / "model.json")
    typer.echo(f"base model {info['name']} ({info['parameters'] / 1e6:.0f} M parameters) ready")


def _embedder(params, name: str, cache: dict, for_corpus: bool = False):
    """The named embedder, loaded once per command.

    For the corpus (``for_corpus``) it embeds with Ray Data when many chunks are new or a Ray cluster
    is configured (``RAY_ADDRESS``); queries are always embedded in this process.
    """
    from components.embedding import Embedder

    if name not in cache:
        cache[name] = Embedder(
            params.retrieval.embedders[name],
            ray=params.retrieval.ray_embedding if for_corpus else None,
            ray_cluster=for_corpus and bool(os.environ.get("RAY_ADDRESS")),
        )
    return cache[name]


def _open_retrievers(params, db, versions: dict[str, int] | None = None) -> dict:
    """Every retriever of params/retrieval.yaml, bound to its table and embedder.

    Tables are opened at their latest version, or at ``versions[table]`` to reproduce a past run.
    """
    from components.index import open_table_at, table_name
    from components.retrieval import Retriever

    versions = versions or {}
    unknown = set(versions) - {table_name(r.chunker, r.embedder) for r in params.retrieval.retrievers}
    if unknown:
        raise typer.BadParameter(f"no retriever reads table(s) {sorted(unknown)}")
    embedders: dict = {}
    retrievers = {}
    for r in params.retrieval.retrievers:
        name = table_name(r.chunker, r.embedder)
        table = open_table_at(db, name, versions[name]) if name in versions else db.open_table(name)
        retrievers[r.name] = Retriever(r, table, _embedder(params, r.embedder, embedders))
    return retrievers


def _parse_versions(pins: list[str]) -> dict[str, int]:
    """``["table=4", ...]`` -> ``{"table": 4}``."""
    versions = {}
    for pin in pins:
        table, sep, version = pin.partition("=")
        if not sep or not version.isdigit():
            raise typer.BadParameter(f"expected TABLE=VERSION, got {pin!r}")
        versions[table] = int(version)
    return versions


def _retriever_params(params, retriever) -> dict:
    """What a retriever's MLflow run records: its config, its embedder, its index settings and table version."""
    from components.index import table_name

    cfg = retriever.cfg
    return {
        "retrieval": cfg.model_dump(),
        "embedder": params.retrieval.embedders[cfg.embedder].model_dump(),
        "chunker": params.data.chunkers[cfg.chunker].model_dump(),
        "index": params.retrieval.index.model_dump(),
        "index_table": table_name(cfg.chunker, cfg.embedder),
        "index_table_version": retriever.table_version,
    }


@app.command()
def index() -> None:
    """Embed the chunks into one LanceDB table per (chunker, embedder), incrementally."""
    import lancedb

    from components.index import sync_table, table_name
    from components.io import read_parquet, write_json
    from components.retrieval import NEEDS_FULLTEXT

    params = _params()
    paths = params.data.paths
    db = lancedb.connect(str(_root() / paths.index))
    reports = {}
    pairs = sorted({(r.chunker, r.embedder) for r in params.retrieval.retrievers})
    embedders: dict = {}
    for chunker, embedder_name in pairs:
        embedder = _embedder(params, embedder_name, embedders, for_corpus=True)
        fts = any(
            r.mode in NEEDS_FULLTEXT
            for r in params.retrieval.retrievers
            if (r.chunker, r.embedder) == (chunker, embedder_name)
        )
        chunks = read_parquet(_root() / paths.processed / f"chunks-{chunker}.parquet")
        started = time.perf_counter()
        report = sync_table(db, table_name(chunker, embedder_name), chunks, embedder, params.retrieval.index, fts=fts)
        reports[report.table] = {**report.as_dict(), "build_time_s": time.perf_counter() - started}
        typer.echo(
            f"{report.table}: {report.rows} rows ({report.added} embedded, {report.updated} moved, "
            f"{report.deleted} deleted), version {report.version}, ANN index {report.ann_index or 'none (exact)'}, "
            f"full-text index {'yes' if report.fts_index else 'no'}"
        )
    write_json(reports, _root() / paths.metrics / "index.json")


@app.command("retrieval-eval")
def retrieval_eval(
    table_version: Annotated[
        list[str] | None,
        typer.Option(help="TABLE=VERSION: search that table as it was, to reproduce a past run's index_table_version"),
    ] = None,
) -> None:
    """Score every retriever on the dev and test questions (no LLM); one MLflow run per retriever."""
    import lancedb
    import pandas as pd

    from components import tracking
    from components.io import read_parquet, write_json
    from components.retrieval_metrics import METRICS, score_retrieval, summarize_retrieval

    params = _params()
    paths, root = params.data.paths, _root()
    qa = read_parquet(root / paths.processed / "qa.parquet")
    from components.index import TableVersionError

    try:
        db = lancedb.connect(str(root / paths.index))
        retrievers = _open_retrievers(params, db, _parse_versions(table_version or []))
    except TableVersionError as exc:
        typer.secho(str(exc), fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from exc
    splits = params.retrieval.eval_splits
    tracking.setup(root, params.evaluation.experiment)
    tags = tracking.provenance_tags(root, _data_version(root, paths.raw))
    parent = tracking.start_parent(
        f"retrieval-{time.strftime('%Y%m%d-%H%M%S')}",
        {"splits": ",".join(splits), "retrievers": ",".join(retrievers)},
        tags,
        kind="retrieval",
    )
    results = {}
    for name, retriever in retrievers.items():
        metrics, tables, per_split = {}, [], {}
        for split in splits:
            questions = qa[qa["split"] == split].sort_values("qa_id").reset_index(drop=True)
            if questions.empty:
                logger.warning("%s: the %s split holds no questions, skipped", name, split)
                continue
            hits, latencies = retriever.search(questions["question"].tolist())
            retrieved = [[h.doc_id for h in row] for row in hits]
            gold = [list(g) for g in questions["doc_ids"]]
            scores = score_retrieval(retrieved, gold, retriever.cfg.top_k)
            per_split[split] = summarize_retrieval(scores, latencies)
            metrics.update({f"{split}_{key}": value for key, value in per_split[split].items()})
            tables.append(
                pd.DataFrame(
                    {
                        "split": split,
                        "qa_id": questions["qa_id"],
                        "question": questions["question"],
                        "gold_doc_ids": gold,
                        "retrieved_doc_ids": retrieved,
                        "latency_s": latencies,
                    }
                ).join(scores)
            )
        run_params = _retriever_params(params, retriever)
        run_id = tracking.log_cell(
            parent, name, run_params, metrics, pd.concat(tables, ignore_index=True), tags, kind="retrieval"
        )
        results[name] = {
            **per_split,
            "run_id": run_id,
            "index_table": run_params["index_table"],
            "index_table_version": run_params["index_table_version"],
        }
        typer.echo(
            f"{name:<28} "
            + "  ".join(
                f"{s}: "
                + " ".join(f"{m.removesuffix('_at_k')} {per_split[s][m]:.3f}" for m in METRICS)
                + f" p50 {per_split[s]['retrieval_latency_p50_s'] * 1e3:.1f} ms"
                for s in per_split
            )
        )
    write_json({"parent_run_id": parent, "retrievers": results}, root / paths.metrics / "retrieval.json")
    typer.echo(f"scored {len(results)} retrievers on {', '.join(splits)} (MLflow run {parent})")


def _training_inputs(params, root: Path):
    """Documents, QA pairs and, for each retriever a RAFT source names, its chunker's chunks."""
    from components.config import RaftSource
    from components.finetune import TrainingInputs
    from components.io import read_parquet

    paths = params.data.paths
    retrievers = {r.name: r for r in params.retrieval.retrievers}
    raft = {s.retriever for a in params.finetune.adapters for s in a.data if isinstance(s, RaftSource)}
    return TrainingInputs(
        documents=read_parquet(root / paths.processed / "documents.parquet"),
        qa=read_parquet(root / paths.processed / "qa.parquet"),
        chunks={n: read_parquet(root / paths.processed / f"chunks-{retrievers[n].chunker}.parquet") for n in raft},
        top_k={n: retrievers[n].top_k for n in raft},
    )


@app.command()
def finetune() -> None:
    """Train every LoRA adapter in params/finetune.yaml with Ray Train; one MLflow run per adapter.

    An interrupted run resumes: run it again with the same params and data, and each adapter
    continues from the latest checkpoint under data/models/ray/<adapter>-<fingerprint>.
    """
    from components import tracking
    from components.finetune import build_examples, train_adapter
    from components.io import atomic_path, write_json
    from components.models import load_tokenizer

    params = _params()
    root = _root()
    paths = params.data.paths
    base_dir = root / paths.models / "base"
    inputs = _training_inputs(params, root)
    tokenizer = load_tokenizer(base_dir)
    tracking.setup(root, params.evaluation.experiment)
    tags = tracking.provenance_tags(root, _data_version(root, paths.raw))
    results = {}
    with atomic_path(root / paths.models / "adapters") as out:
        out.mkdir()
        for adapter in params.finetune.adapters:
            examples = build_examples(inputs, tokenizer, adapter, params.evaluation.prompts)
            metrics = train_adapter(
                examples,
                base_dir,
                adapter,
                params.finetune.ray,
                out / adapter.name,
                root / paths.models / "ray",
                cluster_address=os.environ.get("RAY_ADDRESS"),
            )
            tokenizer.save_pretrained(out / adapter.name)
            history = metrics.pop("history", [])
            run_id = tracking.log_training(
                adapter.name,
                {
                    "adapter": adapter.model_dump(mode="json"),
                    "ray": params.finetune.ray.model_dump(),
                    "base_model": params.finetune.base_model.name,
                    "examples": len(examples),
                },
                history,
                metrics,
                tags,
            )
            results[adapter.name] = {**metrics, "mlflow_run_id": run_id}
            typer.echo(
                f"{adapter.name}: {metrics['step']} steps, loss {metrics['loss']:.3f}, "
                f"{metrics['tokens_per_s']:.0f} tokens/s, {metrics['wall_time_s']:.0f} s, "
                f"peak {metrics['peak_memory_mb']:.0f} MB (MLflow run {run_id})"
            )
    _register_adapters(params, [a.name for a in params.finetune.adapters])  # each adapter is a model version
    write_json(results, root / paths.metrics / "finetune.json")


def _register_adapters(params, names: list[str]) -> None:
    """Register each trained adapter (closed-book pyfunc) as a version of ``<registry.adapter_prefix><name>``."""
    from components import tracking
    from components.serving import dir_hash, make_bundle

    paths, cfg, root = params.data.paths, params.evaluation, _root()
    base_dir = root / paths.models / "base"
    tracking.setup(root, cfg.experiment)
    tags = tracking.provenance_tags(root, _data_version(root, paths.raw))
    base_hash = dir_hash(base_dir)
    for name in names:
        bundle = make_bundle(name, None, params.retrieval.embedders, None, None, cfg, base_hash)
        result = tracking.register_adapter(
            f"{cfg.registry.adapter_prefix}{name}", bundle, base_dir, root / paths.models / "adapters" / name, tags
        )
        typer.echo(
            f"adapter {name}: {result['name']} version {result['version']}"
            f"{'' if result['created'] else ' (unchanged, reused)'}"
        )


@app.command()
def sweep() -> None:
    """Ray Tune sweep (ASHA on dev loss) over one adapter's LoRA hyperparameters; proposes the best.

    Reads ``sweep:`` in params/finetune.yaml. Writes reports/sweep.md (trials, best first, and the
    proposed adapter entry) and data/metrics/sweep.json; one MLflow parent run with a child per
    trial. Not a pipeline stage: add the proposed adapter to params/finetune.yaml to train it.
    """
    import json

    from components import tracking
    from components.finetune import build_examples, held_out_examples
    from components.io import write_json, write_text
    from components.models import load_tokenizer
    from components.sweep import best_adapter, run_sweep, trials_markdown

    params = _params()
    cfg = params.finetune.sweep
    if cfg is None:
        typer.secho(
            "params/finetune.yaml has no `sweep:` section; add one to run a sweep "
            "(an example and every field: docs/finetuning.md, section 'Hyperparameter sweep')",
            fg=typer.colors.RED,
            err=True,
        )
        raise typer.Exit(2)
    root = _root()
    paths = params.data.paths
    base_dir = root / paths.models / "base"
    base = next(a for a in params.finetune.adapters if a.name == cfg.adapter)
    inputs = _training_inputs(params, root)
    tokenizer = load_tokenizer(base_dir)
    examples = build_examples(inputs, tokenizer, base, params.evaluation.prompts)
    try:
        held_out = held_out_examples(inputs, tokenizer, base, params.evaluation.prompts, cfg.dev_questions)
    except ValueError as exc:
        typer.secho(f"sweep: {exc} (params/data.yaml split.dev)", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from exc
    trials, curves = run_sweep(
        examples,
        held_out,
        base_dir,
        base,
        cfg,
        params.finetune.ray,
        root / paths.models / "sweep",
        cluster_address=os.environ.get("RAY_ADDRESS"),
    )
    best = best_adapter(trials, base, list(cfg.space))
    tracking.setup(root, params.evaluation.experiment)
    tags = tracking.provenance_tags(root, _data_version(root, paths.raw))
    parent = tracking.start_parent(
        f"sweep-{base.name}-{time.strftime('%Y%m%d-%H%M%S')}",
        {
            "sweep": cfg.model_dump(mode="json"),
            "adapter": base.model_dump(mode="json"),
            "held_out_examples": len(held_out),
        },
        tags,
        kind="sweep",
    )
    for row in trials.to_dict("records"):
        hyper = {name: row[name] for name in cfg.space}
        summary = {k: row[k] for k in ("steps", "loss", "dev_loss")} | {"stopped": float(row["stopped"])}
        tracking.log_sweep_trial(parent, row["trial"], hyper, curves[row["trial"]], summary, tags)
    report = trials_markdown(trials, best, base)
    write_text(report, root / "reports" / "sweep.md")
    write_json(
        {
            "adapter": base.name,
            "mlflow_run_id": parent,
            "trials": json.loads(trials.to_json(orient="records")),
            "best": None if best is None else best.model_dump(mode="json"),
        },
        root / paths.metrics / "sweep.json",
    )
    if best is not None:
        # trials are sorted best first: the proposed adapter's trial is the first row
        best_loss = float(trials.iloc[0]["dev_loss"])
        tracking.log_to_run(parent, {"best_dev_loss": best_loss}, [root / "reports" / "sweep.md"])
    typer.echo(report)


@app.command()
def evaluate() -> None:
    """Answer the held-out questions in every grid cell; log each cell to MLflow."""
    import lancedb
    import pandas as pd

    from components import tracking
    from components.evaluation import NO_RETRIEVAL, answer_cell, grid, select_questions, summarize
    from components.io import atomic_path, dir_hash, read_json, read_parquet, write_json
    from components.metrics import load_metric
    from components.models import load_model, load_tokenizer
    from components.prediction_cache import PredictionCache

    params = _params()
    paths, cfg = params.data.paths, params.evaluation
    root = _root()
    questions = select_questions(read_parquet(root / paths.processed / "qa.parquet"), cfg)
    base_dir = root / paths.models / "base"
    train_metrics = read_json(root / paths.metrics / "finetune.json")
    model_info = read_json(root / paths.metrics / "model.json")

    hits, retrieval_latency, retriever_params = {NO_RETRIEVAL: None}, {}, {}
    in_grid = params.grid_retrievers()
    for name, retriever in _open_retrievers(params, lancedb.connect(str(root / paths.index))).items():
        if name not in in_grid:
            continue
        hits[name], retrieval_latency[name] = retriever.search(questions["question"].tolist())
        retriever_params[name] = _retriever_params(params, retriever)

    experiment_id = tracking.setup(root, cfg.experiment)
    tags = tracking.provenance_tags(root, _data_version(root, paths.raw))
    parent = tracking.start_parent(
        f"pipeline-{time.strftime('%Y%m%d-%H%M%S')}",
        {"evaluation": cfg.model_dump(exclude={"prompts"}), "questions": len(questions)},
        tags,
    )
    metrics_modules = {name: load_metric(name) for name in ("qa_match", "rouge_l", "answer_support")}
    tokenizer = load_tokenizer(base_dir)
    retrievers = {r.name: r for r in params.retrieval.retrievers}
    adapters = {a.name: a for a in params.finetune.adapters}
    cells, all_rows, generated = [], [], 0
    for cell in grid(list(adapters), in_grid):
        if not cells or cells[-1]["model"] != cell.model:
            adapter_dir = None if cell.model == "base" else root / paths.models / "adapters" / cell.model
            model = load_model(base_dir, adapter_dir)
            adapter_hash = "none" if adapter_dir is None else dir_hash(adapter_dir)
        top_k = retrievers[cell.retriever].top_k if cell.retriever in retrievers else None
        cache = PredictionCache(
            root / paths.cache / "predictions",
            {
                "base_model": model_info,
                "adapter": adapter_hash,
                "retrieval": retriever_params.get(cell.retriever, "none"),
                "prompts": cfg.prompts.model_dump(),
                "generation": cfg.generation.model_dump(),
            },
        )
        rows = answer_cell(
            model, tokenizer, questions, hits[cell.retriever], cfg, metrics_modules, top_k=top_k, cache=cache
        )
        generated += cache.generated
        metrics = summarize(cell, rows, retrieval_latency.get(cell.retriever))
        cell_params = {
            "model": cell.model,
            "retriever": cell.retriever,
            "base_model": model_info["name"],
            "base_model_source": model_info["source"],
            "adapter": adapters[cell.model].model_dump() if cell.model in adapters else "none",
            "retrieval": retrievers[cell.retriever].model_dump() if cell.retriever in retrievers else "none",
            "top_k": retrievers[cell.retriever].top_k if cell.retriever in retrievers else 0,
            "prompt_system": cfg.prompts.system,
            "prompt_template": cfg.prompts.closed_book if cell.retriever == NO_RETRIEVAL else cfg.prompts.with_context,
            "generation": cfg.generation.model_dump(),
            "split": cfg.split,
        }
        if cell.retriever in retrievers:
            cell_params.update(retriever_params[cell.retriever])
        if cell.model in train_metrics:
            train = train_metrics[cell.model]
            metrics.update(
                {
                    "train_wall_time_s": train["wall_time_s"],
                    "train_tokens_per_s": train["tokens_per_s"],
                    "train_final_loss": train["loss"],
                    "train_steps": train["step"],
                }
            )
        run_id = tracking.log_cell(parent, cell.name, cell_params, metrics, rows, tags)
        cells.append({"cell": cell.name, "model": cell.model, "retriever": cell.retriever, "run_id": run_id, **metrics})
        all_rows.append(rows.assign(cell=cell.name))
    with atomic_path(root / paths.eval) as out:
        out.mkdir()
        pd.concat(all_rows, ignore_index=True).to_parquet(out / "predictions.parquet", index=False)
        write_json({"parent_run_id": parent, "experiment_id": experiment_id, "cells": cells}, out / "cells.json")
    write_json(
        {c["cell"]: {k: v for k, v in c.items() if isinstance(v, float)} for c in cells},
        root / paths.metrics / "eval.json",
    )
    typer.echo(
        f"evaluated {len(cells)} cells on {len(questions)} {cfg.split} questions, {generated} answers generated "
        f"(the rest from {paths.cache}/predictions) (MLflow run {parent})"
    )


@app.command()
def select() -> None:
    """Rank the cells with intervals and costs, recommend a mix, write the report; record it in MLflow."""
    from components import tracking
    from components.decision import break_even_table, complementarity, decision_table, recommend
    from components.index import table_name
    from components.io import atomic_path, read_json, read_parquet, write_json, write_text
    from components.report import html_report, markdown_report, plot_complementarity, plot_pareto
    from components.selection import RETRIEVAL_COLUMNS, retrieval_table, to_markdown

    params = _params()
    paths, cfg = params.data.paths, params.evaluation
    root = _root()
    evaluated = read_json(root / paths.eval / "cells.json")
    rows = read_parquet(root / paths.eval / "predictions.parquet")
    finetune_json, index_json = root / paths.metrics / "finetune.json", root / paths.metrics / "index.json"
    train = read_json(finetune_json) if finetune_json.is_file() else {}
    tables = read_json(index_json) if index_json.is_file() else {}
    index_time = {
        r.name: tables.get(table_name(r.chunker, r.embedder), {}).get("build_time_s", 0.0)
        for r in params.retrieval.retrievers
    }
    table = decision_table(evaluated["cells"], rows, cfg.main_metric, cfg.statistics, cfg.cost, train, index_time)
    rec = recommend(table, cfg.main_metric, cfg.statistics, cfg.cost, questions=int(rows["qa_id"].nunique()))
    pairs = break_even_table(table)
    comp = complementarity(rows, evaluated["cells"], cfg.main_metric, cfg.answered_threshold)

    reports = root / paths.reports
    charts = {
        "quality_vs_cost.png": lambda out: plot_pareto(table, "cost_per_1k_amortised", "$ per 1,000 queries", out),
        "quality_vs_latency.png": lambda out: plot_pareto(table, "latency_p50_s", "latency p50 (s)", out),
    }
    if not comp.empty:
        charts["complementarity.png"] = lambda out: plot_complementarity(comp, out)
    for name, draw in charts.items():
        with atomic_path(reports / name) as tmp:
            draw(tmp)
    header = {
        "main_metric": cfg.main_metric,
        "split": cfg.split,
        "questions": int(table.iloc[0]["questions"]),
        "parent_run_id": evaluated["parent_run_id"],
        "confidence": cfg.statistics.confidence,
        "resamples": cfg.statistics.resamples,
        "query_volume": cfg.cost.query_volume,
    }
    markdown = markdown_report(table, rec, pairs, comp, header, list(charts))
    retrieval_json = root / paths.metrics / "retrieval.json"
    if retrieval_json.is_file():
        scores = retrieval_table(read_json(retrieval_json)["retrievers"], cfg.split)
        markdown += f"\n## Retrieval alone ({cfg.split} split, every retriever)\n\n"
        markdown += to_markdown(scores, RETRIEVAL_COLUMNS)
    files = [reports / "leaderboard.md", reports / "report.html", *(reports / c for c in charts)]
    write_text(markdown, files[0])
    write_text(html_report(markdown, table, rec, list(charts)), files[1])
    if not comp.empty:
        with atomic_path(reports / "complementarity.csv") as tmp:
            comp.to_csv(tmp, index=False)
        files.append(reports / "complementarity.csv")

    best, chosen = table.iloc[0], table.set_index("cell").loc[rec["cell"]]
    write_json(
        {
            "cell": best["cell"],
            "model": best["model"],
            "retriever": best["retriever"],
            cfg.main_metric: float(best["mean"]),
            "run_id": best["run_id"],
            "recommended": {
                "cell": rec["cell"],
                "run_id": chosen["run_id"],
                cfg.main_metric: float(chosen["mean"]),
                "ci": [float(chosen["ci_low"]), float(chosen["ci_high"])],
                "cost_per_1k_amortised": float(chosen["cost_per_1k_amortised"]),
                "tied": rec["tied"],
                "few_questions": rec["few_questions"],
            },
        },
        root / paths.metrics / "best.json",
    )
    tracking.setup(root, cfg.experiment)
    m = cfg.main_metric
    for _, row in table.iterrows():
        tracking.log_to_run(
            row["run_id"],
            metrics={
                f"{m}_ci_low": row["ci_low"],
                f"{m}_ci_high": row["ci_high"],
                f"{m}_diff_to_best": row["diff"],
                f"{m}_diff_low": row["diff_low"],
                f"{m}_diff_high": row["diff_high"],
                **{k: row[k] for k in table if k.startswith("cost_")},
            },
        )
    tracking.log_to_run(
        evaluated["parent_run_id"],
        metrics={f"best_{m}": float(best["mean"]), f"recommended_{m}": float(chosen["mean"])},
        files=files,
        tags={
            "ragtune.best_cell": best["cell"],
            "ragtune.best_run_id": best["run_id"],
            "ragtune.recommended_cell": rec["cell"],
            "ragtune.recommended_run_id": chosen["run_id"],
            "ragtune.recommendation": rec["text"][:5000],
        },
    )
    typer.echo(markdown)


@app.command()
def compare(
    experiment: Annotated[str | None, typer.Option(help="MLflow experiment (default: params' experiment)")] = None,
    run: Annotated[str | None, typer.Option("--run", help="pipeline parent run id (default: the latest)")] = None,
) -> None:
    """Print the comparison of a past pipeline run from MLflow: cells, intervals, costs, recommendation."""
    from components import tracking
    from components.decision import from_runs
    from components.report import markdown_table

    params = _params()
    experiment = experiment or params.evaluation.experiment
    tracking.connect(_root())
    try:
        parent = run or tracking.latest_parent(experiment)
        info = tracking.run_info(parent)
    except LookupError as exc:
        typer.secho(str(exc), fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from exc
    main_metric = info["params"].get("evaluation.main_metric", params.evaluation.main_metric)
    try:
        table = from_runs(tracking.cell_runs(parent), main_metric)
    except ValueError as exc:
        typer.secho(f"run {parent}: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from exc
    tags = info["tags"]
    typer.echo(f"# ragtune comparison: run {parent} ({tags.get('mlflow.runName', '')}), sorted by {main_metric}\n")
    typer.echo(markdown_table(table))
    if "ragtune.recommendation" in tags:
        typer.echo(tags["ragtune.recommendation"])
    elif "ragtune.best_cell" in tags:
        typer.echo(f"Best: **{tags['ragtune.best_cell']}** (no recommendation recorded: run `ragtune select`)")


@app.command()
def register() -> None:
    """Register the winning cell (data/metrics/best.json) as one pyfunc model version with the champion alias."""
    from components import tracking
    from components.io import read_json, write_json
    from components.serving import dir_hash, make_bundle

    params = _params()
    paths, cfg, root = params.data.paths, params.evaluation, _root()
    best = read_json(root / paths.metrics / "best.json")
    retrievers = {r.name: r for r in params.retrieval.retrievers}
    if best["retriever"] not in retrievers and best["retriever"] != "none":
        raise typer.BadParameter(f"best.json names retriever {best['retriever']!r}, unknown to params/retrieval.yaml")
    base_dir = root / paths.models / "base"
    adapter_dir = None if best["model"] == "base" else root / paths.models / "adapters" / best["model"]
    tracking.setup(root, cfg.experiment)
    evaluated = tracking.run_params(best["run_id"])  # the index version the winner was scored on
    version = evaluated.get("index_table_version")
    bundle = make_bundle(
        best["model"],
        retrievers.get(best["retriever"]),
        params.retrieval.embedders,
        str((root / paths.index).resolve()),
        int(version) if version is not None else None,
        cfg,
        dir_hash(base_dir),
    )
    tags = {**tracking.provenance_tags(root, _data_version(root, paths.raw)), "ragtune.source_run_id": best["run_id"]}
    result = tracking.register_bundle(cfg.registry.name, bundle, base_dir, adapter_dir, cfg.registry.alias, tags)
    tracking.log_to_run(best["run_id"], tags={"ragtune.registered_as": f"{result['name']}/{result['version']}"})
    write_json({**result, "cell": best["cell"], "alias": cfg.registry.alias}, root / paths.metrics / "registry.json")
    typer.echo(
        f"{best['cell']} (run {best['run_id']}) is {result['name']} version {result['version']} "
        f"@{cfg.registry.alias} ({'new version' if result['created'] else 'same bundle, version reused'})"
    )


@app.command()
def drill() -> None:
    """Knowledge-update drill: hold documents back, add them as new data, time and score each mix absorbing them."""
    import shutil

    from components import tracking
    from components.drill import DrillSetup, hold_back, run_drill, to_markdown, to_table
    from components.io import read_parquet, write_json, write_text
    from components.metrics import load_metric

    params = _params()
    paths, cfg, root = params.data.paths, params.evaluation, _root()
    retrievers = {r.name: r for r in params.retrieval.retrievers}
    retriever = retrievers[cfg.drill.retriever or params.grid_retrievers()[0]]
    adapters = {a.name: a for a in params.finetune.adapters}
    adapter = adapters[cfg.drill.adapter or params.finetune.adapters[0].name]
    split = hold_back(
        read_parquet(root / paths.processed / "documents.parquet"),
        read_parquet(root / paths.processed / "qa.parquet"),
        cfg.drill,
    )
    setup = DrillSetup(
        params.data.chunkers[retriever.chunker],
        retriever,
        adapter.model_copy(update={"max_steps": cfg.drill.max_steps}),
        params.retrieval.index,
        params.finetune.ray,
        cfg,
    )
    work = root / "data" / "drill"  # scratch: its own index and adapters, never data/raw or data/index
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    results = run_drill(
        split,
        setup,
        root / paths.models / "base",
        _embedder(params, retriever.embedder, {}),
        load_metric("qa_match"),
        work,
    )
    markdown = to_markdown(results, split)
    table = to_table(results)
    report = {
        "arms": table.to_dict(orient="records"),
        "new_documents": sorted(split.new_documents["doc_id"]),
        "probes": len(split.probes),
        "retriever": retriever.name,
        "adapter": adapter.name,
    }
    write_text(markdown, root / paths.reports / "drill.md")
    write_json(report, root / paths.metrics / "drill.json")
    tracking.setup(root, cfg.experiment)
    run_id = tracking.start_parent(
        f"drill-{time.strftime('%Y%m%d-%H%M%S')}",
        {"drill": cfg.drill.model_dump(), "retriever": retriever.name, "adapter": adapter.name},
        tracking.provenance_tags(root, _data_version(root, paths.raw)),
        kind="drill",
    )
    metrics = {f"{row['arm']}_{key}": row[key] for row in report["arms"] for key in row if key != "arm"}
    tracking.log_to_run(
        run_id, metrics=metrics, files=[root / paths.reports / "drill.md", root / paths.metrics / "drill.json"]
    )
    typer.echo(markdown + f"\nMLflow run {run_id}")


# --- orchestration and tools --------------------------------------------------------------------


@app.command()
def run(
    force: bool = typer.Option(False, help="re-run every stage even if nothing changed"),
) -> None:
    """Run the whole pipeline as a Prefect flow; DVC skips the stages whose inputs did not change."""
    preflight()  # before the heavy imports: an unreachable server is reported in seconds
    from flows.pipeline import pipeline

    params = _params()
    summary = pipeline(root=str(_root()), force=force)
    board = _root() / params.data.paths.reports / "leaderboard.md"
    if board.is_file():
        typer.echo(board.read_text(encoding="utf-8"))
    typer.echo(f"stages run: {', '.join(summary['ran']) or 'none'}; skipped: {', '.join(summary['skipped']) or 'none'}")


@app.command()
def ui(port: int = typer.Option(5000, help="port on 127.0.0.1")) -> None:
    """Open the MLflow UI on the default store (or MLFLOW_TRACKING_URI) at http://127.0.0.1:PORT."""
    from components.tracking import DEFAULT_ARTIFACTS, default_tracking_uri

    uri = os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri(_root())
    cmd = [sys.executable, "-m", "mlflow", "ui", "--host", "127.0.0.1", "--port", str(port), "--backend-store-uri", uri]
    if not os.environ.get("MLFLOW_TRACKING_URI"):
        cmd += ["--default-artifact-root", str((_root() / DEFAULT_ARTIFACTS).resolve())]
    typer.echo(f"MLflow UI on http://127.0.0.1:{port} (store {uri}); Ctrl-C to stop")
    raise typer.Exit(subprocess.call(cmd))


if __name__ == "__main__":
    app()
