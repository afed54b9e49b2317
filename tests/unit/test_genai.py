"""A grid cell as an MLflow GenAI evaluation run, on a real sqlite store: traces, spans, assessments, dataset.

The rows are built the way ``answer_cell`` builds them (the same local evaluate modules, the same
retrieval metrics, the same trace columns) from fixed answers: no model is loaded.
"""

from __future__ import annotations

import math

import mlflow
import pandas as pd
import pytest
from mlflow.entities import SpanType
from mlflow.genai.datasets import search_datasets
from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

from components import tracking
from components.evaluation.answer import trace_columns
from components.evaluation.grid import Cell
from components.evaluation.metrics import load_metric
from components.evaluation.scores import SCORED, scored
from components.retrieval.metrics import METRICS, score_retrieval
from components.retrieval.search import Hit
from components.tracking import genai, scorers

QUESTIONS = pd.DataFrame(
    {
        "qa_id": ["q1", "q2", "q3"],
        "question": ["What is the code of the Boliviano?", "What is the capital of Peru?", "What is the euro's code?"],
        "answers": [["BOB"], ["Lima"], ["EUR", "eur"]],
        "doc_ids": [["bolivia"], ["peru"], ["eu"]],
    }
)
ANSWERS = ["BOB", "The capital is Lima.", ""]  # right; right in a sentence; empty
HITS = [
    [Hit("bolivia#0", "bolivia", "The Boliviano (BOB).", 0.91), Hit("peru#0", "peru", "Sol.", 0.4)],
    [Hit("chile#1", "chile", "Santiago is in Chile.", 0.8), Hit("peru#2", "peru", "Lima is the capital.", 0.7)],
    [Hit("chile#0", "chile", "The peso.", 0.5), Hit("peru#0", "peru", "Sol.", 0.3)],  # gold document missed
]


def cell_rows(hits: list[list[Hit]] | None) -> pd.DataFrame:
    """A cell's rows as ``answer_cell`` makes them, for the fixed answers (``None``: closed book)."""
    references = [list(a) for a in QUESTIONS["answers"]]
    match = load_metric("qa_match").compute(predictions=ANSWERS, references=references)
    rows = pd.DataFrame(
        {
            "qa_id": QUESTIONS["qa_id"],
            "question": QUESTIONS["question"],
            "answers": references,
            "prediction": ANSWERS,
            "exact_match": match["exact_match_per_example"],
            "f1": match["f1_per_example"],
            "prompt_tokens": [40, 42, 39],
            "completion_tokens": [3, 6, 0],
            "latency_s": [0.25, 0.5, 0.125],
        }
    ).assign(**trace_columns([f"prompt {q}" for q in QUESTIONS["qa_id"]], hits))
    rows["rouge_l"] = load_metric("rouge_l").compute(predictions=ANSWERS, references=references)["rouge_l_per_example"]
    rows["answer_support"] = (
        math.nan
        if hits is None
        else load_metric("answer_support").compute(predictions=ANSWERS, contexts=[[h.text for h in r] for r in hits])[
            "answer_support_per_example"
        ]
    )
    if hits is not None:
        scores = score_retrieval(rows["retrieved_doc_ids"].tolist(), [list(d) for d in QUESTIONS["doc_ids"]], 2)
        for name in METRICS:
            rows[name] = scores[name].to_numpy()
        rows["retrieval_latency_s"] = [0.01, 0.02, 0.03]
    rows["query_latency_s"] = [0.2, math.nan, math.nan]  # q1 was in the timed pass (answered alone)
    return rows


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One sqlite store for the module (creating one takes seconds); each test logs its own runs in it."""
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        yield tracking.setup(tmp_path_factory.mktemp("store"), "unit")
    mlflow.set_tracking_uri(None)


def log(cell: Cell, rows: pd.DataFrame, span_batch: int = 64) -> str:
    parent = tracking.start_parent("pipeline", {}, {})
    result = type("Result", (), {"cell": cell, "params": {"model": cell.model}, "metrics": {"f1": 0.5}, "rows": rows})
    experiment_id = mlflow.get_run(parent).info.experiment_id
    dataset = genai.split_dataset(QUESTIONS, "test", experiment_id, "data/processed/qa.parquet")
    return genai.log_cell(parent, result, {}, dataset, scored(rows.columns), span_batch)


def test_each_scored_column_comes_from_the_module_that_made_it():
    rows = cell_rows(HITS)
    for (_, row), hits in zip(rows.iterrows(), HITS, strict=True):
        fields = {
            "answer": row["prediction"],
            "answers": row["answers"],
            "gold_doc_ids": QUESTIONS.set_index("qa_id").loc[row["qa_id"], "doc_ids"],
            "passages": [h.text for h in hits],
            "doc_ids": [h.doc_id for h in hits],
        }
        for column, score in scored(rows.columns).items():
            expected = row[column]
            value = score(**fields)
            assert (value is None and math.isnan(expected)) or value == pytest.approx(expected), column
    assert list(scored(rows.columns)) == ["exact_match", "f1", "rouge_l", "answer_support", "hit_rate_at_k"]


def test_a_metric_column_is_scored_where_the_rows_carry_it_and_adding_one_is_one_entry(monkeypatch):
    assert "hit_rate_at_k" not in scored(cell_rows(None).columns)
    assert list(scored(["f1", "answer_contained", "latency_s"])) == ["f1", "answer_contained"]
    monkeypatch.setitem(SCORED, "answer_tokens", lambda *, answer, **_: float(len(answer.split())))
    assert [s.name for s in scorers.scorers(scored(["f1", "answer_tokens"]))] == ["f1", "answer_tokens"]


def test_a_rag_cell_becomes_an_evaluation_run_with_a_trace_per_question(store):
    rows = cell_rows(HITS)
    run_id = log(Cell("base", "vector-k2", 0), rows)
    run = mlflow.get_run(run_id)
    assert run.data.tags["ragtune.cell"] == "base+vector-k2" and "mlflow.runType" not in run.data.tags
    (used,) = run.inputs.dataset_inputs
    (managed,) = search_datasets(experiment_ids=[store], filter_string="name = 'qa-test'")
    assert (used.dataset.name, used.dataset.digest) == ("qa-test", managed.digest)  # the managed dataset
    assert {t.key: t.value for t in used.tags} == {"mlflow.data.context": "test"}
    for column in ("exact_match", "f1", "rouge_l", "hit_rate_at_k"):
        assert run.data.metrics[f"{column}/mean"] == pytest.approx(rows[column].mean())
    assert run.data.metrics["answer_support/mean"] == pytest.approx(rows["answer_support"].dropna().mean())

    traces = {t.info.tags["ragtune.qa_id"]: t for t in mlflow.search_traces(run_id=run_id, return_type="list")}
    assert sorted(traces) == ["q1", "q2", "q3"]
    trace = mlflow.get_trace(traces["q2"].info.trace_id)
    assert trace.info.tags["ragtune.cell"] == "base+vector-k2" and trace.info.tags["ragtune.split"] == "test"
    assert trace.info.request_preview == "What is the capital of Peru?"
    assert trace.info.response_preview == "The capital is Lima."
    (retriever,) = trace.search_spans(span_type=SpanType.RETRIEVER)
    assert retriever.inputs == {"query": "What is the capital of Peru?"}
    assert [(d["id"], d["metadata"]["doc_uri"], d["metadata"]["score"]) for d in retriever.outputs] == [
        ("chile#1", "chile", 0.8),
        ("peru#2", "peru", 0.7),
    ]
    assert retriever.outputs[1]["page_content"] == "Lima is the capital."
    (llm,) = trace.search_spans(span_type=SpanType.LLM)
    assert llm.inputs == {"prompt": "prompt q2"} and llm.outputs == "The capital is Lima."
    assert trace.info.token_usage == {"input_tokens": 42, "output_tokens": 6, "total_tokens": 48}
    # the measured times, not the logging time: retrieval, then generation (q2: its batch share)
    assert retriever.end_time_ns - retriever.start_time_ns == 20_000_000 and llm.start_time_ns == retriever.end_time_ns
    assert (llm.end_time_ns - llm.start_time_ns, llm.attributes["ragtune.latency"]) == (500_000_000, "batch share")
    assert trace.info.execution_duration == 520
    timed = mlflow.get_trace(traces["q1"].info.trace_id).search_spans(span_type=SpanType.LLM)[0]
    assert (timed.end_time_ns - timed.start_time_ns, timed.attributes["ragtune.latency"]) == (200_000_000, "measured")

    values = {a.name: a.value for a in trace.info.assessments}
    assert values["expected"] == {"answers": ["Lima"], "doc_ids": ["peru"]}
    for column in ("exact_match", "f1", "rouge_l", "answer_support", "hit_rate_at_k"):
        assert values[column] == pytest.approx(rows.set_index("qa_id").loc["q2", column]), column
    empty = {a.name for a in mlflow.get_trace(traces["q3"].info.trace_id).info.assessments}
    assert "answer_support" not in empty and "f1" in empty  # an empty answer has nothing to support


def test_spans_go_to_the_store_in_batches_of_at_most_span_batch(store, monkeypatch):
    sent = []
    log_spans = SqlAlchemyStore.log_spans

    def counted(self, location, spans, *args, **kwargs):
        sent.append(len(spans))
        return log_spans(self, location, spans, *args, **kwargs)

    monkeypatch.setattr(SqlAlchemyStore, "log_spans", counted)
    run_id = log(Cell("base", "vector-k2", 0), cell_rows(HITS), span_batch=2)
    assert sum(sent) == 9 and max(sent) <= 2, sent  # 3 questions x (root, retriever, LLM)
    assert len(mlflow.search_traces(run_id=run_id, return_type="list")) == 3


def test_a_trace_the_store_refused_fails_the_cell(store, monkeypatch):
    """MLflow's tracer only logs a trace it could not send; the cell fails instead of showing fewer questions."""
    start_trace, calls = SqlAlchemyStore.start_trace, []

    def refuses_the_second(self, trace_info, *args, **kwargs):
        calls.append(trace_info)
        if len(calls) == 2:
            raise OSError("disk full")
        return start_trace(self, trace_info, *args, **kwargs)

    monkeypatch.setattr(SqlAlchemyStore, "start_trace", refuses_the_second)
    with pytest.raises(RuntimeError, match=r"base\+vector-k2: 2 of 3 traces reached the store"):
        log(Cell("base", "vector-k2", 0), cell_rows(HITS))


def test_a_closed_book_cell_has_no_retriever_span_and_no_retrieval_scores(store):
    run_id = log(Cell("base", "none", 0), cell_rows(None))
    trace = mlflow.search_traces(run_id=run_id, return_type="list")[0]
    trace = mlflow.get_trace(trace.info.trace_id)
    assert [s.span_type for s in trace.data.spans] == [SpanType.CHAIN, SpanType.LLM]
    assert {a.name for a in trace.info.assessments} == {"exact_match", "f1", "rouge_l", "expected"}
    assert "hit_rate_at_k/mean" not in mlflow.get_run(run_id).data.metrics


def test_each_split_is_a_managed_dataset_reused_while_its_questions_stay_the_same(store):
    first = genai.split_dataset(QUESTIONS, "dev", store, "qa.parquet")
    again = genai.split_dataset(QUESTIONS.copy(), "dev", store, "qa.parquet")
    assert first.name == "qa-dev" and again.dataset.dataset_id == first.dataset.dataset_id
    assert again.digest == first.digest
    records = first.dataset.to_df().sort_values("inputs", key=lambda s: s.map(lambda i: i["qa_id"]))
    assert [r["qa_id"] for r in records["inputs"]] == ["q1", "q2", "q3"]
    assert records["expectations"].iloc[2] == {"expected": {"answers": ["EUR", "eur"], "doc_ids": ["eu"]}}
    changed = genai.split_dataset(QUESTIONS.assign(answers=[["BOB"], ["Lima"], ["EUR"]]), "dev", store, "qa.parquet")
    assert changed.name == "qa-dev" and changed.digest != first.digest
    assert changed.dataset.dataset_id != first.dataset.dataset_id  # the runs scored on the old questions keep theirs
    listed = search_datasets(experiment_ids=[store], filter_string="name = 'qa-dev'")
    assert {d.dataset_id for d in listed} == {first.dataset.dataset_id, changed.dataset.dataset_id}


def test_mlflow_genai_evaluate_with_the_same_scorers_gives_the_same_means(store):
    """The scorers are plain ``@scorer``s: MLflow's own harness, re-scoring the stored traces, agrees."""
    rows = cell_rows(HITS)
    run_id = log(Cell("base", "vector-k2", 0), rows)
    traces = mlflow.search_traces(run_id=run_id)
    with mlflow.start_run(run_name="re-scored"):
        result = mlflow.genai.evaluate(data=traces, scorers=scorers.scorers(scored(rows.columns)))
    ours = {k: v for k, v in mlflow.get_run(run_id).data.metrics.items() if k.endswith("/mean")}
    assert ours == pytest.approx(result.metrics) and len(ours) == 5
