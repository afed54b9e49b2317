"""Questions from documents with the real generator (the packaged SmolLM2), and the leak check on training data.

The generator test runs the whole ``questions`` work on four real passages: the pairs it keeps
record their document, chunk and group, each filter's yield adds up, and a second run is served
by the cache. The leak test builds the training examples of every shipped adapter source from a
generated set split by ingest, and finds no dev or test answer in what the adapters learn to say.
"""

from __future__ import annotations

import json

import pandas as pd
from typer.testing import CliRunner

from components.config import QASource
from components.data.chunking import chunk_documents
from components.data.ingest import ingest_files
from components.data.readers import SourceFile
from components.questions.pipeline import pair_record
from components.questions.run import questions_for_raw
from components.questions.spans import Candidate
from tests.conftest import PARAMS, REPO, like, params_project, write_jsonl

NQ = [json.loads(line) for line in (REPO / "data/demo-nq/docs/passages.jsonl").read_text().splitlines()]


def test_the_generator_writes_filtered_pairs_with_their_source_and_a_rerun_costs_nothing(tmp_path, base_model_dir):
    raw = tmp_path / "raw"
    write_jsonl(raw / "docs" / "passages.jsonl", NQ[:4])
    cfg = like(PARAMS.questions, target=3, max_candidates=8)
    chunker = PARAMS.data.chunkers[cfg.chunker]
    args = (raw, base_model_dir, tmp_path / "cache", chunker, 10, cfg)
    pairs, report = questions_for_raw(*args)
    assert report.generated and report.candidates == 8 and report.generator == "base"
    kept = [s.kept for s in report.steps]
    assert [s.step for s in report.steps] == ["written", "form", "give_away", "round_trip", "near_duplicate"]
    assert kept == sorted(kept, reverse=True) and kept[-1] == report.kept == len(pairs) <= 3
    assert all(s.kept + s.dropped == before for s, before in zip(report.steps, [8, *kept], strict=False))
    chunks = set(chunk_documents(pd.DataFrame(NQ[:4]).rename(columns={"id": "doc_id"}), chunker)["chunk_id"])
    for p in pairs:
        assert p["origin"] == "generated" and p["chunk_id"] in chunks and p["group"] == f"gen:{p['doc_ids'][0]}"
        assert p["answers"][0] in p["passage"]
    again, second = questions_for_raw(*args)
    assert again == pairs and second.completions_generated == 0 < report.completions_generated


def _generated_set(n_docs: int) -> tuple[pd.DataFrame, list[dict]]:
    """Documents and what a generator writes from them: per document two wordings of one answer, and another."""
    docs = pd.DataFrame(
        {"doc_id": [f"d{i:03d}" for i in range(n_docs)],
         "text": [f"Person{i:03d} founded the village of Town{i:03d} in {1700 + i}." for i in range(n_docs)]}
    )  # fmt: skip
    pairs = []
    for doc_id, text in zip(docs["doc_id"], docs["text"], strict=True):
        i = doc_id[1:]
        who, when = Candidate(doc_id, f"{doc_id}#0", text, text, f"Person{i}"), text.split()[-1].rstrip(".")
        pairs += [
            pair_record(who, f"Who founded Town{i}?"),
            pair_record(who, f"Which person started the village of Town{i}?"),
            pair_record(Candidate(doc_id, f"{doc_id}#0", text, text, when), f"In what year was Town{i} founded?"),
        ]
    return docs, pairs


def test_no_dev_or_test_answer_reaches_the_training_examples(base_model_dir):
    from components.llm.models import load_tokenizer
    from components.training.augment import PAIR_FORMS, augmented_texts
    from components.training.examples import TrainingInputs, build_examples
    from components.training.train_step import IGNORE_INDEX

    docs, pairs = _generated_set(30)
    jsonl = "".join(json.dumps(d) + "\n" for d in docs.rename(columns={"doc_id": "id"}).to_dict("records"))
    result = ingest_files(
        [SourceFile("docs/d.jsonl", "d", ".jsonl", jsonl.encode())], None, PARAMS.data.split,
        generated=SourceFile("generated.jsonl", "", ".jsonl", "".join(json.dumps(p) + "\n" for p in pairs).encode()),
    )  # fmt: skip
    qa = result.qa
    held_out = qa[qa["split"] != "train"]
    assert len(held_out) and (qa["split"] == "train").any()
    secret = {a for answers in held_out["answers"] for a in answers}
    retrievers = {r.name: r for r in PARAMS.retrieval.retrievers}
    chunks = chunk_documents(result.documents, PARAMS.data.chunkers["para-400"])
    inputs = TrainingInputs(result.documents, qa, {n: chunks for n in retrievers}, {n: 3 for n in retrievers})
    tokenizer = load_tokenizer(base_model_dir)
    for adapter in PARAMS.finetune.adapters:
        asked = [s for s in adapter.data if s.source in ("qa", "raft")]
        cfg = like(adapter, data=asked or [QASource(source="qa", weight=1.0)], max_length=512)
        for example in build_examples(inputs, tokenizer, cfg, PARAMS.evaluation.prompts):
            said = tokenizer.decode([t for t in example["labels"] if t != IGNORE_INDEX])
            assert not [a for a in secret if a in said], (adapter.name, said)
    for form in PAIR_FORMS:  # the corpus source's rephrasings of train pairs
        for text in augmented_texts(result.documents, inputs.train_qa(), form):
            assert not [a for a in secret if a in text], (form, text)
    # documents themselves are trained on whole, by design (both arms see the whole corpus: DESIGN.md)


def test_the_stage_is_a_no_op_when_raw_has_a_question_file_and_export_says_so(tmp_path, monkeypatch):
    from flows.cli import app

    root = params_project(tmp_path, monkeypatch)
    write_jsonl(root / "data/raw/docs/passages.jsonl", NQ[:2])
    write_jsonl(root / "data/raw/qa.jsonl", [{"question": "Who?", "answer": "x", "doc_id": NQ[0]["id"]}])
    runner = CliRunner()
    result = runner.invoke(app, ["questions"])
    assert result.exit_code == 0, result.output
    assert "nothing generated: data/raw has a question file" in result.output
    assert (root / "data/questions/generated.jsonl").read_text() == ""
    assert json.loads((root / "data/questions/report.json").read_text())["generated"] is False
    exported = runner.invoke(app, ["questions", "export", "--out", str(tmp_path / "r.csv")])
    assert exported.exit_code == 1 and "no generated questions" in exported.output
    assert not (tmp_path / "r.csv").exists()


def test_the_stage_refuses_bad_documents_with_the_file_named(tmp_path, monkeypatch):
    from flows.cli import app

    root = params_project(tmp_path, monkeypatch)
    (root / "data/raw/docs").mkdir(parents=True)
    (root / "data/raw/docs/bad.txt").write_bytes(b"\xff\xfe")
    result = CliRunner().invoke(app, ["questions"])
    assert result.exit_code == 1 and "docs/bad.txt:1: not valid UTF-8" in result.output
