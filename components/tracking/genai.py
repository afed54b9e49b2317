"""A grid cell as an MLflow GenAI evaluation run: one trace per question, its assessments, the split's dataset.

Over the rows a cell already answered (no second generation), each question becomes a trace with a
retriever span (query; retrieved chunk ids, document ids, scores and texts) and an LLM span
(prompt, answer, tokens, latency), tagged with its cell, split and question id. The code-based
scorers of :mod:`.scorers` score it; their feedback and the question's expectations (gold answers,
gold documents) are attached as assessments, and their means are logged as ``<column>/mean``. The
run gets the split's questions as a dataset input (name ``qa-<split>``, content digest) and the
``genai_evaluate`` run type: the Evaluation runs view lists it, its Dataset column is filled, and two
cells compare question by question.

What ``mlflow.genai.evaluate(data=traces, scorers=...)`` writes, written in a few requests: each
trace with its assessments in one call, every span of the cell in one call, the links to the run in
one call. ``evaluate`` logs each assessment in a request of its own, which on the sqlite store costs
about as much as answering the questions (``bench/tracing.py`` measures both, side by side).
"""

from __future__ import annotations

import base64
import json
import logging
import os
import time
import warnings
from dataclasses import dataclass

import mlflow
import numpy as np
import pandas as pd
from mlflow.entities import (
    AssessmentSource,
    Expectation,
    Feedback,
    SpanType,
    Trace,
    TraceData,
    TraceInfo,
    TraceLocation,
    TraceState,
)
from mlflow.entities.span import Span
from mlflow.tracing.client import TracingClient
from mlflow.tracing.constant import AssessmentMetadataKey, SpanAttributeKey, TraceMetadataKey
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_RUN_TYPE, MLFLOW_RUN_TYPE_GENAI_EVALUATE

from components.tracking import scorers as scoring
from components.tracking.runs import log_cell as log_cell_run

logger = logging.getLogger(__name__)

TRACE_TAGS = ("ragtune.cell", "ragtune.split", "ragtune.qa_id")
EXPECTATION_SOURCE = AssessmentSource(source_type="HUMAN", source_id="ragtune-qa")  # the gold set a team wrote


@dataclass(frozen=True)
class SplitDataset:
    """The questions of one split as an MLflow dataset, logged as an input of every cell scored on it."""

    split: str
    dataset: object  # mlflow.data.pandas_dataset.PandasDataset
    gold_doc_ids: dict[str, list[str]]  # qa_id -> its gold documents (the rows do not carry them)

    @property
    def name(self) -> str:
        return self.dataset.name

    @property
    def digest(self) -> str:
        return self.dataset.digest


def split_dataset(questions: pd.DataFrame, split: str, source: str) -> SplitDataset:
    """The split's questions (id, question, answers, gold documents) as dataset ``qa-<split>``.

    Its digest is MLflow's hash of the content, so a changed question set shows as a new digest.
    """
    table = pd.DataFrame(
        {
            "qa_id": questions["qa_id"].astype(str),
            "question": questions["question"].astype(str),
            "answers": [json.dumps(list(a)) for a in questions["answers"]],
            "doc_ids": [json.dumps(list(d)) for d in questions["doc_ids"]],
        }
    )
    with warnings.catch_warnings():  # MLflow registers its local-file source class twice and says so
        warnings.simplefilter("ignore", UserWarning)
        dataset = mlflow.data.from_pandas(table, source=source, name=f"qa-{split}", targets="answers")
    gold = {str(q): [str(d) for d in docs] for q, docs in zip(questions["qa_id"], questions["doc_ids"], strict=True)}
    return SplitDataset(split, dataset, gold)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _span(trace: tuple[bytes, str], span_id: bytes, parent: bytes | None, name: str, kind: str, **fields) -> Span:
    """A finished span in MLflow's span format (its JSON form, as ``Span.to_dict`` writes it)."""
    raw_trace, trace_id = trace
    attributes = {
        SpanAttributeKey.REQUEST_ID: json.dumps(trace_id),
        SpanAttributeKey.SPAN_TYPE: json.dumps(kind),
        SpanAttributeKey.INPUTS: json.dumps(fields["inputs"]),
        SpanAttributeKey.OUTPUTS: json.dumps(fields["outputs"]),
        **{k: json.dumps(v) for k, v in fields.get("attributes", {}).items()},
    }
    return Span.from_dict(
        {
            "trace_id": _b64(raw_trace),
            "span_id": _b64(span_id),
            "parent_span_id": _b64(parent) if parent else None,
            "name": name,
            "start_time_unix_nano": fields["start_ns"],
            "end_time_unix_nano": fields["end_ns"],
            "events": [],
            "status": {"code": "STATUS_CODE_OK", "message": ""},
            "attributes": attributes,
        }
    )


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


def question_trace(row: pd.Series, cell, split: str, run_id: str, experiment_id: str, start_ns: int) -> Trace:
    """One answered question as a trace: root span, retriever span (RAG cells), LLM span. No assessments yet."""
    raw = os.urandom(16)
    trace_id = "tr-" + raw.hex()
    root, retrieve, generate = os.urandom(8), os.urandom(8), os.urandom(8)
    documents = _retrieved(row)
    latency = row.get("retrieval_latency_s")
    retrieval_ns = int(float(latency) * 1e9) if documents is not None and pd.notna(latency) else 0
    end_ns = start_ns + retrieval_ns + int(float(row["latency_s"]) * 1e9)
    question, answer = str(row["question"]), str(row["prediction"])
    usage = {
        "input_tokens": int(row["prompt_tokens"]),
        "output_tokens": int(row["completion_tokens"]),
        "total_tokens": int(row["prompt_tokens"] + row["completion_tokens"]),
    }
    ids = (raw, trace_id)
    spans = [_span(ids, root, None, "answer", SpanType.CHAIN, inputs={"question": question}, outputs=answer,
                   start_ns=start_ns, end_ns=end_ns)]  # fmt: skip
    if documents is not None:
        spans.append(_span(ids, retrieve, root, f"retrieve:{cell.retriever}", SpanType.RETRIEVER,
                           inputs={"query": question}, outputs=documents,
                           start_ns=start_ns, end_ns=start_ns + retrieval_ns))  # fmt: skip
    spans.append(_span(ids, generate, root, f"generate:{cell.model}", SpanType.LLM,
                       inputs={"prompt": str(row.get("prompt", question))}, outputs=answer,
                       attributes={SpanAttributeKey.CHAT_USAGE: usage, SpanAttributeKey.MODEL: cell.model},
                       start_ns=start_ns + retrieval_ns, end_ns=end_ns))  # fmt: skip
    info = TraceInfo(
        trace_id=trace_id,
        trace_location=TraceLocation.from_experiment_id(experiment_id),
        request_time=start_ns // 1_000_000,
        execution_duration=(end_ns - start_ns) // 1_000_000,
        state=TraceState.OK,
        request_preview=question,
        response_preview=answer,
        client_request_id=f"{cell.name}/{split}/{row['qa_id']}",
        trace_metadata={
            TraceMetadataKey.SOURCE_RUN: run_id,
            TraceMetadataKey.INPUTS: json.dumps({"question": question}),
            TraceMetadataKey.OUTPUTS: json.dumps(answer),
            TraceMetadataKey.TOKEN_USAGE: json.dumps(usage),
            "mlflow.trace_schema.version": "3",
        },
        tags=dict(zip(TRACE_TAGS, (cell.name, split, str(row["qa_id"])), strict=True)),
    )
    return Trace(info, TraceData(spans=spans))


def expectations_of(row: pd.Series, questions: SplitDataset) -> dict:
    """The question's expectations: its accepted answers and gold documents."""
    gold = questions.gold_doc_ids[str(row["qa_id"])]
    return {scoring.EXPECTED: {"answers": [str(a) for a in row["answers"]], "doc_ids": gold}}


def assess(trace: Trace, expectations: dict, scorers: list, run_id: str) -> list[float | None]:
    """Run ``scorers`` on the trace; attach their feedback and the expectations to it; return the values."""
    info = trace.info
    root = trace.data.spans[0].span_id
    values = []
    for scorer in scorers:
        value = scorer.run(outputs=info.response_preview, expectations=expectations, trace=trace)
        values.append(value)
        if value is not None:
            info.assessments.append(
                Feedback(
                    name=scorer.name,
                    value=value,
                    source=AssessmentSource(source_type="CODE", source_id=scorer.name),
                    trace_id=info.trace_id,
                    span_id=root,
                    metadata={AssessmentMetadataKey.SOURCE_RUN_ID: run_id},
                )
            )
    for name, value in expectations.items():
        info.assessments.append(
            Expectation(name=name, value=value, source=EXPECTATION_SOURCE, trace_id=info.trace_id, span_id=root)
        )
    return values


def write_traces(traces: list[Trace], run_id: str, experiment_id: str, batch: int = 100) -> None:
    """Store finished traces with their assessments: one request per trace, one for all spans, links by 100."""
    client = TracingClient()
    for trace in traces:
        client.start_trace(trace.info)
    client.log_spans(experiment_id, [span for trace in traces for span in trace.data.spans])
    ids = [trace.info.trace_id for trace in traces]
    for i in range(0, len(ids), batch):
        MlflowClient().link_traces_to_run(ids[i : i + batch], run_id)


def log_evaluation(run_id: str, rows: pd.DataFrame, cell, questions: SplitDataset, scores: dict) -> dict[str, float]:
    """Make the finished cell run ``run_id`` a GenAI evaluation run over its ``rows`` (one per question).

    Args:
        cell: the grid cell (``name``, ``model``, ``retriever``).
        questions: the split the rows answer; logged as the run's dataset input.
        scores: metric column -> its per-question score function (``components.evaluation.scores.scored``),
            each run as a ``@scorer`` on every trace.

    Returns:
        The scorer means logged as ``<column>/mean`` (a column with no scored question is left out).
    """
    experiment_id = MlflowClient().get_run(run_id).info.experiment_id
    scorers = scoring.scorers(scores)
    columns = [s.name for s in scorers]
    retrieval = rows["retrieval_latency_s"] if "retrieval_latency_s" in rows else pd.Series(0.0, index=rows.index)
    start = time.time_ns() - int((rows["latency_s"].sum() + retrieval.fillna(0).sum()) * 1e9)
    traces, scores = [], {c: [] for c in columns}
    for _, row in rows.iterrows():
        trace = question_trace(row, cell, questions.split, run_id, experiment_id, start)
        for column, value in zip(columns, assess(trace, expectations_of(row, questions), scorers, run_id), strict=True):
            if value is not None:
                scores[column].append(value)
        start += trace.info.execution_duration * 1_000_000
        traces.append(trace)
    write_traces(traces, run_id, experiment_id)
    means = {f"{c}/mean": float(np.mean(v)) for c, v in scores.items() if v}
    with mlflow.start_run(run_id=run_id):
        mlflow.log_input(questions.dataset, context=questions.split)
        mlflow.set_tag(MLFLOW_RUN_TYPE, MLFLOW_RUN_TYPE_GENAI_EVALUATE)
        mlflow.log_metrics(means)
    logger.info("%s: %d traces on %s, %s", cell.name, len(traces), questions.name, means)
    return means


def log_cell(parent_id: str, result, tags: dict[str, str], questions: SplitDataset, scores: dict) -> str:
    """A grid cell's run under ``parent_id`` (:func:`components.tracking.runs.log_cell`: params, metrics,
    predictions table), made a GenAI evaluation run by :func:`log_evaluation`; returns its id.

    Args:
        result: the cell's result (``cell``, ``params``, ``metrics``, ``rows``; ``components.evaluation.run``).
    """
    run_id = log_cell_run(parent_id, result.cell.name, result.params, result.metrics, result.rows, tags)
    log_evaluation(run_id, result.rows, result.cell, questions, scores)
    return run_id
