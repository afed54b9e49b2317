"""A grid cell as an MLflow GenAI evaluation run: one trace per question, its assessments, the split's dataset.

Over the rows a cell already answered (no second generation), each question becomes a trace written
through MLflow's public tracing API (``mlflow.start_span``, ``mlflow.start_span_no_context``): a root
span ``answer`` (the question in, the answer out), a retriever span (RAG cells: the query and the
retrieved chunks with their ids, documents, scores and texts) and an LLM span (prompt, answer,
tokens), tagged with its cell, split and question id. The code-based scores of :mod:`.scorers`
score the answer; their feedback and the question's expectation (accepted answers, gold documents)
are logged with ``mlflow.log_feedback`` / ``mlflow.log_expectation`` while the trace is open, so
they travel with it. The scores' means are logged as ``<column>/mean``; the run's input is the
split's managed evaluation dataset ``qa-<split>`` (:func:`split_dataset`; the Datasets page lists it).

Times: a trace starts when it is logged and lasts what its question took. The retriever span is the
retrieval measured for that query; the LLM span is the generation measured for that question answered
alone (span attribute ``ragtune.latency: measured``, the ``latency_questions`` of each cell's timed
pass) or else its share of its batch's wall time (``ragtune.latency: batch share``).

Requests: MLflow's tracer sends finished spans in the background, in batches of at most
``span_batch`` spans (``evaluation.tracing.span_batch``), and each trace's info with its assessments
in one request; the links to the run go by 100 ids. ``bench/tracing.py`` measures the cost beside
answering the same questions.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass

import mlflow
import numpy as np
import pandas as pd
from mlflow.entities import AssessmentSource, SpanType
from mlflow.environment_variables import (
    MLFLOW_ASYNC_TRACE_LOGGING_MAX_QUEUE_SIZE,
    MLFLOW_ASYNC_TRACE_LOGGING_MAX_SPAN_BATCH_SIZE,
)
from mlflow.genai.datasets import create_dataset, get_dataset, search_datasets, set_dataset_tags
from mlflow.tracing.constant import AssessmentMetadataKey, SpanAttributeKey
from mlflow.tracking import MlflowClient

from components.tracking import scorers as scoring
from components.tracking.runs import log_cell as log_cell_run

logger = logging.getLogger(__name__)

ROOT = "answer"  # the root span of a question's trace
TRACE_TAGS = ("ragtune.cell", "ragtune.split", "ragtune.qa_id")
EXPECTATION_SOURCE = AssessmentSource(source_type="HUMAN", source_id="ragtune-qa")  # the gold set a team wrote
DIGEST_TAG = "ragtune.digest"  # a managed dataset's content digest: set once its records are all in
LINK_BATCH = 100  # trace ids per link_traces_to_run request (MLflow's limit)


@dataclass(frozen=True)
class SplitDataset:
    """The questions of one split as a managed MLflow evaluation dataset, the input of every cell scored on it."""

    split: str
    dataset: object  # mlflow.genai.datasets.EvaluationDataset
    gold_doc_ids: dict[str, list[str]]  # qa_id -> its gold documents (the rows do not carry them)

    @property
    def name(self) -> str:
        return self.dataset.name

    @property
    def digest(self) -> str:
        return self.dataset.digest


def dataset_records(questions: pd.DataFrame) -> list[dict]:
    """One record per question: inputs (question and its id: two questions may share a text) and the
    ``expected`` expectation (accepted answers, gold documents), as the traces carry it."""
    return [
        {
            "inputs": {"question": str(q), "qa_id": str(i)},
            "expectations": {scoring.EXPECTED: {"answers": [str(a) for a in answers], "doc_ids": list(map(str, docs))}},
        }
        for i, q, answers, docs in zip(
            questions["qa_id"], questions["question"], questions["answers"], questions["doc_ids"], strict=True
        )
    ]


def content_digest(records: list[dict]) -> str:
    """A hash of the records' content: the same questions give the same digest."""
    return hashlib.sha256(json.dumps(records, sort_keys=True).encode()).hexdigest()[:16]


def split_dataset(questions: pd.DataFrame, split: str, experiment_id: str, source: str) -> SplitDataset:
    """The split's questions as the managed evaluation dataset ``qa-<split>`` of the experiment.

    The same questions reuse the dataset made for them (found by name and content digest, tag
    ``ragtune.digest``); changed questions make a new dataset of the same name, so the digest MLflow
    shows for a run's input changes with the questions. The digest tag is set only after every record
    is in: a dataset whose records did not all arrive is never reused.

    Args:
        source: where the questions come from (``qa.parquet``), kept as a dataset tag.
    """
    records, name = dataset_records(questions), f"qa-{split}"
    digest = content_digest(records)
    found = search_datasets(experiment_ids=[experiment_id], filter_string=f"name = '{name}'")
    same = [d for d in found if (d.tags or {}).get(DIGEST_TAG) == digest]
    if same:
        dataset = same[0]
    else:
        tags = {"ragtune.split": split, "ragtune.source": source}
        made = create_dataset(name=name, experiment_id=experiment_id, tags=tags)
        made.merge_records(records)
        set_dataset_tags(dataset_id=made.dataset_id, tags={DIGEST_TAG: digest})
        dataset = get_dataset(dataset_id=made.dataset_id)  # its digest after the records went in
        logger.info("managed evaluation dataset %s (%s): %d questions", name, dataset.dataset_id, len(records))
    gold = {str(q): [str(d) for d in docs] for q, docs in zip(questions["qa_id"], questions["doc_ids"], strict=True)}
    return SplitDataset(split, dataset, gold)


def _retrieved(row: pd.Series) -> list[dict] | None:
    """The retriever span's documents (MLflow's Document shape), or None for a closed-book row."""
    if not isinstance(row.get("retrieved_chunk_ids"), list | tuple | np.ndarray):
        return None
    return [
        {"page_content": text, "metadata": {"doc_uri": doc, "chunk_id": chunk, "score": float(score)}, "id": chunk}
        for chunk, doc, score, text in zip(
            row["retrieved_chunk_ids"],
            row["retrieved_doc_ids"],
            row["retrieved_scores"],
            row["retrieved_texts"],
            strict=True,
        )
    ]


def generation_time(row: pd.Series) -> tuple[float, str]:
    """The seconds of the question's LLM span and how they were measured: alone (the timed pass) or as a batch share."""
    alone = row.get("query_latency_s")
    if alone is not None and pd.notna(alone):
        return float(alone), "measured"
    return float(row["latency_s"]), "batch share"


def _ns(seconds: float) -> int:
    return int(round(seconds * 1e9))


@contextlib.contextmanager
def _ended_root_warning_dropped() -> Iterator[None]:
    """Drop OpenTelemetry's warning when ``mlflow.start_span`` ends a root span already ended at its measured time."""

    class Drop(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            return "on an ended span" not in record.getMessage()

    otel, drop = logging.getLogger("opentelemetry.sdk.trace"), Drop()
    otel.addFilter(drop)
    try:
        yield
    finally:
        otel.removeFilter(drop)


def _child(parent, name: str, kind: str, inputs: dict, outputs, start_ns: int, end_ns: int, attributes: dict) -> None:
    span = mlflow.start_span_no_context(
        name, span_type=kind, parent_span=parent, inputs=inputs, attributes=attributes, start_time_ns=start_ns
    )
    span.end(outputs=outputs, end_time_ns=end_ns)


def expectations_of(row: pd.Series, questions: SplitDataset) -> dict:
    """The question's expectations: its accepted answers and gold documents."""
    gold = questions.gold_doc_ids[str(row["qa_id"])]
    return {scoring.EXPECTED: {"answers": [str(a) for a in row["answers"]], "doc_ids": gold}}


def log_question(row: pd.Series, cell, questions: SplitDataset, scores: dict, run_id: str) -> tuple[str, dict]:
    """One answered question as a trace (root, retriever span for RAG cells, LLM span) with its scores'
    feedback and its expectation; returns the trace id and the scores (None: not scored)."""
    question, answer = str(row["question"]), str(row["prediction"])
    documents = _retrieved(row)
    latency = row.get("retrieval_latency_s")
    retrieval_ns = _ns(float(latency)) if documents is not None and pd.notna(latency) else 0
    generation_s, how = generation_time(row)
    usage = {
        "input_tokens": int(row["prompt_tokens"]),
        "output_tokens": int(row["completion_tokens"]),
        "total_tokens": int(row["prompt_tokens"] + row["completion_tokens"]),
    }
    expected = expectations_of(row, questions)
    fields = scoring.fields(answer, expected, documents)
    values = {name: score(**fields) for name, score in scores.items()}
    with mlflow.start_span(ROOT, span_type=SpanType.CHAIN) as root:
        start = root.start_time_ns
        end = start + retrieval_ns + _ns(generation_s)
        root.set_inputs({"question": question})
        mlflow.update_current_trace(
            tags=dict(zip(TRACE_TAGS, (cell.name, questions.split, str(row["qa_id"])), strict=True)),
            client_request_id=f"{cell.name}/{questions.split}/{row['qa_id']}",
            request_preview=question,
            response_preview=answer,
        )
        if documents is not None:
            _child(root, f"retrieve:{cell.retriever}", SpanType.RETRIEVER, {"query": question}, documents,
                   start, start + retrieval_ns, {"ragtune.latency": "measured"})  # fmt: skip
        llm = {SpanAttributeKey.CHAT_USAGE: usage, SpanAttributeKey.MODEL: cell.model, "ragtune.latency": how}
        _child(root, f"generate:{cell.model}", SpanType.LLM, {"prompt": str(row.get("prompt", question))}, answer,
               start + retrieval_ns, end, llm)  # fmt: skip
        for name, value in values.items():
            if value is not None:
                mlflow.log_feedback(
                    trace_id=root.trace_id,
                    name=name,
                    value=value,
                    source=AssessmentSource(source_type="CODE", source_id=name),
                    metadata={AssessmentMetadataKey.SOURCE_RUN_ID: run_id},
                    span_id=root.span_id,
                )
        for name, value in expected.items():
            mlflow.log_expectation(
                trace_id=root.trace_id, name=name, value=value, source=EXPECTATION_SOURCE, span_id=root.span_id
            )
        root.end(outputs=answer, end_time_ns=end)  # its measured end; leaving the block finds it ended
    return root.trace_id, values


@contextlib.contextmanager
def span_batches(size: int) -> Iterator[None]:
    """MLflow's tracer, sending finished spans in batches of at most ``size`` spans per request.

    Its batch size (``MLFLOW_ASYNC_TRACE_LOGGING_MAX_SPAN_BATCH_SIZE``) is read when the tracer
    starts: the tracer restarts with ``size``, and after the block (everything sent) with what was set before.
    """
    key = MLFLOW_ASYNC_TRACE_LOGGING_MAX_SPAN_BATCH_SIZE.name
    before = os.environ.get(key)
    os.environ[key] = str(size)
    mlflow.tracing.reset()
    try:
        with _ended_root_warning_dropped():
            yield
        mlflow.flush_trace_async_logging()
    finally:
        if before is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = before
        mlflow.tracing.reset()


def log_evaluation(
    run_id: str, rows: pd.DataFrame, cell, questions: SplitDataset, scores: dict, span_batch: int
) -> dict[str, float]:
    """Make the finished cell run ``run_id`` a GenAI evaluation run over its ``rows`` (one per question).

    Args:
        cell: the grid cell (``name``, ``model``, ``retriever``).
        questions: the split the rows answer; logged as the run's dataset input.
        scores: metric column -> its per-question score function (``components.evaluation.scores.scored``).
        span_batch: the most spans MLflow sends in one request.

    Returns:
        The score means logged as ``<column>/mean`` (a column with no scored question is left out).

    Raises:
        RuntimeError: a question's trace did not reach the store with its info and assessments (MLflow's
            tracer drops what it cannot send, and only logs it).
    """
    client = MlflowClient()
    experiment_id = client.get_run(run_id).info.experiment_id
    values: dict[str, list[float]] = {c: [] for c in scores}
    flush_every = max(1, MLFLOW_ASYNC_TRACE_LOGGING_MAX_QUEUE_SIZE.get() // 4)  # its queue drops what does not fit
    ids = []
    with span_batches(span_batch), mlflow.start_run(run_id=run_id):
        for n, (_, row) in enumerate(rows.iterrows(), start=1):
            trace_id, scored = log_question(row, cell, questions, scores, run_id)
            ids.append(trace_id)
            for column, value in scored.items():
                if value is not None:
                    values[column].append(value)
            if n % flush_every == 0:
                mlflow.flush_trace_async_logging()
        means = {f"{c}/mean": float(np.mean(v)) for c, v in values.items() if v}
        mlflow.log_input(questions.dataset, context=questions.split)
        mlflow.log_metrics(means)
    for i in range(0, len(ids), LINK_BATCH):
        client.link_traces_to_run(ids[i : i + LINK_BATCH], run_id)
    stored = mlflow.search_traces(locations=[experiment_id], run_id=run_id, include_spans=False, return_type="list")
    whole = {t.info.tags.get("ragtune.qa_id") for t in stored}  # the tags come with the info and the assessments
    missing = [str(q) for q in rows["qa_id"] if str(q) not in whole]
    if missing:
        raise RuntimeError(
            f"{cell.name}: {len(ids) - len(missing)} of {len(ids)} traces reached the store whole (run {run_id}); "
            f"missing questions {missing[:5]}"
        )
    logger.info("%s: %d traces on %s, %s", cell.name, len(ids), questions.name, means)
    return means


def log_cell(
    parent_id: str, result, tags: dict[str, str], questions: SplitDataset, scores: dict, span_batch: int
) -> str:
    """A grid cell's run under ``parent_id`` (:func:`components.tracking.runs.log_cell`: params, metrics,
    predictions table), made a GenAI evaluation run by :func:`log_evaluation`; returns its id.

    Args:
        result: the cell's result (``cell``, ``params``, ``metrics``, ``rows``; ``components.evaluation.run``).
    """
    run_id = log_cell_run(parent_id, result.cell.name, result.params, result.metrics, result.rows, tags)
    log_evaluation(run_id, result.rows, result.cell, questions, scores, span_batch)
    return run_id
