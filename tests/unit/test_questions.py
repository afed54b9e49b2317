"""Questions from documents: answer spans, filters, spread, leak-safe split, origins, review file, report section."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest

from components.catalog.artifacts import FilterStep, QuestionsFile
from components.data.checks import split_problems
from components.data.errors import DataValidationError
from components.data.ingest import ingest_files
from components.data.readers import SourceFile, read_qa
from components.data.split import leakage_groups, split_questions
from components.questions.export import review_csv
from components.questions.filters import NearDuplicates, clean_question, form, give_away, round_trip
from components.questions.pipeline import group_of, pair_record, should_generate
from components.questions.report import origin_tags, question_set_lines
from components.questions.spans import Candidate, candidates, spans
from tests.conftest import PARAMS, like

FILTERS = PARAMS.questions.filters
SPLIT = like(PARAMS.data.split, seed=0, dev=0.2, test=0.2)


def _source(name: str, rows: list[dict]) -> SourceFile:
    suffix = "." + name.rsplit(".", 1)[1]
    data = "".join(json.dumps(r) + "\n" for r in rows) if suffix == ".jsonl" else rows
    return SourceFile(name, name.rsplit(".", 1)[0], suffix, data.encode() if isinstance(data, str) else data)


def _corpus(n_docs: int) -> tuple[SourceFile, list[dict]]:
    """``n_docs`` documents, and per document three generated pairs, two of them asking the same answer in
    other words (what a generator writes from one passage)."""
    docs = [{"id": f"d{i}", "text": f"Doc {i}: Person{i} founded Town{i} in {1800 + i}."} for i in range(n_docs)]
    pairs = []
    for i in range(n_docs):
        c = Candidate(f"d{i}", f"d{i}#0", docs[i]["text"], docs[i]["text"], f"Person{i}")
        pairs += [
            pair_record(c, f"Who founded Town{i}?"),
            pair_record(c, f"Which person started the settlement of Town{i}?"),
            pair_record(
                Candidate(f"d{i}", f"d{i}#0", c.passage, c.sentence, f"{1800 + i}"), f"When was Town{i} founded?"
            ),
        ]
    return _source("docs.jsonl", docs), pairs


def test_spans_are_names_dates_and_numbers_not_a_sentences_first_word():
    found = spans("Later, Crystal R. Fox (born October 14, 1965) played in The Haves and the Have Nots for 3 seasons.")
    assert "October 14, 1965" in found and "3 seasons" in found and "The Haves and the Have Nots" in found
    assert "Later" not in found
    assert spans("She moved to the U.S. and joined Guns N' Roses in Paris.") == ["U.S.", "Guns N' Roses", "Paris"]
    assert spans("Ownership is a set of rules.") == []  # a capitalised first word is no answer


def test_candidates_cover_every_document_before_a_second_one_and_follow_the_seed():
    chunks = pd.DataFrame(
        {
            "doc_id": [f"d{i // 2}" for i in range(12)],
            "chunk_id": [f"d{i // 2}#{i % 2}" for i in range(12)],
            "text": [f"The river Name{i} flows past Town{i} since {1900 + i}." for i in range(12)],
        }
    )
    order = candidates(chunks, per_chunk=2, seed=0)
    assert {c.doc_id for c in order[:6]} == {f"d{i}" for i in range(6)}  # one per document first
    assert {c.chunk_id for c in order[:12]} == set(chunks["chunk_id"])  # then every passage once
    assert order == candidates(chunks, per_chunk=2, seed=0)
    assert order != candidates(chunks, per_chunk=2, seed=1)


def test_a_question_that_gives_its_answer_away_is_dropped():
    assert give_away("Who is Jeffrey Dean Morgan?", "Jeffrey Dean Morgan", FILTERS)
    assert give_away("Which actor, Jeffrey Morgan, played John?", "Jeffrey Dean Morgan", FILTERS)  # 2 of 3 words
    assert not give_away("Who mainly portrays John Winchester?", "Jeffrey Dean Morgan", FILTERS)
    assert give_away("In 1889 what was completed?", "1889", FILTERS)


def test_form_round_trip_and_near_duplicates():
    assert clean_question("Question: Who wrote it? I think") == "Who wrote it?"
    assert (
        form("Who wrote the novel?", FILTERS) and not form("Who wrote?", FILTERS) and not form("Tell me more", FILTERS)
    )
    assert round_trip("It was Mary Shelley.", "Mary Shelley", FILTERS)
    assert not round_trip("Percy Shelley", "Mary Shelley", FILTERS)
    f1 = like(FILTERS, round_trip="f1", min_f1=0.8)
    assert round_trip("Mary Shelley", "Mary Shelley", f1)
    assert not round_trip("The author is Mary Shelley.", "Mary Shelley", f1)  # F1 0.67
    seen = NearDuplicates(0.8, existing=["Who wrote the novel Frankenstein?"])
    assert not seen.admit("Who wrote the novel Frankenstein ?")
    assert seen.admit("When was Frankenstein published?") and not seen.admit("When was Frankenstein published?")


def test_the_stage_generates_only_when_asked_or_when_there_is_no_question_file():
    assert should_generate("auto", has_questions=False)[0]
    assert should_generate("auto", has_questions=True) == (False, should_generate("auto", True)[1])
    assert should_generate("add", has_questions=True)[0]
    assert not should_generate("off", has_questions=False)[0]


def test_a_documents_generated_questions_never_cross_splits():
    docs, pairs = _corpus(40)
    result = ingest_files([docs], None, SPLIT, generated=_source("generated.jsonl", pairs))
    qa = result.qa
    assert set(qa["origin"]) == {"generated"} and (qa["group"] == [group_of(d[0]) for d in qa["doc_ids"]]).all()
    per_doc = qa.groupby(qa["doc_ids"].str[0])["split"].nunique()
    assert (per_doc == 1).all()
    assert {"train", "dev", "test"} <= set(qa["split"])
    # the protection has teeth: without the document's group, some document's questions would cross splits
    alone = like(SPLIT, by_document=False)  # (the split's own grouping by gold document would also hold them)
    ungrouped = split_questions(qa.assign(group=""), alone, leakage_groups(qa.assign(group=""), alone))
    assert (ungrouped.groupby(qa["doc_ids"].str[0]).nunique() > 1).any()


def test_origins_team_generated_and_reviewed_are_kept_apart_and_checked():
    docs, pairs = _corpus(3)
    team = [{"id": "t1", "question": "What did Person0 found?", "answer": "Town0", "doc_id": "d0"}]
    reviewed = [{**pairs[3], "id": "r1"}]  # an exported generated pair, back from review in the team's file
    result = ingest_files([docs], _source("qa.jsonl", team + reviewed), SPLIT, generated=_source("g.jsonl", pairs[:3]))
    by_id = result.qa.set_index("qa_id")["origin"]
    assert by_id["t1"] == "team" and by_id["r1"] == "reviewed" and set(by_id[pairs[0]["id"] :]) >= {"generated"}
    assert result.report["questions_generated"] == 3 and result.report["questions_team"] == 1
    with pytest.raises(DataValidationError, match=r"qa.jsonl:1: origin: 'robot' is not one of"):
        ingest_files([docs], _source("qa.jsonl", [{**team[0], "origin": "robot"}]), SPLIT)


def test_the_review_file_comes_back_through_the_qa_reader_unchanged():
    _, pairs = _corpus(2)
    errors = []
    rows = read_qa(SourceFile("review.csv", "", ".csv", review_csv(pairs).encode()), errors)
    assert not errors
    assert [(r["qa_id"], r["question"], r["answers"], r["doc_ids"], r["group"], r["origin"]) for r in rows] == [
        (p["id"], p["question"], p["answers"], p["doc_ids"], p["group"], "generated") for p in pairs
    ]


def _report() -> QuestionsFile:
    kept = [("written", 10, 0), ("form", 8, 2), ("give_away", 5, 3), ("round_trip", 3, 2), ("near_duplicate", 3, 0)]
    steps = [FilterStep(step=s, kept=k, dropped=d, examples=["'Who is X?' -> 'X'"]) for s, k, d in kept]
    return QuestionsFile(
        generated=True, reason="r", mode="auto", generator="base", engine="transformers", chunker="para-400",
        target=3, documents=2, documents_covered=2, candidates=10, kept=3, steps=steps,
    )  # fmt: skip


def test_the_report_says_who_wrote_the_questions_each_filters_yield_and_the_word_overlap():
    docs, pairs = _corpus(12)
    documents = pd.DataFrame([json.loads(line) for line in docs.data.decode().splitlines()]).rename(
        columns={"id": "doc_id"}
    )
    team = [{"id": "t1", "question": "Where is the old mill?", "answer": "Town0", "doc_id": "d0"}]
    qa = ingest_files([docs], _source("qa.jsonl", team), SPLIT, generated=_source("g.jsonl", pairs)).qa
    text = "\n".join(question_set_lines(qa, documents, _report()))
    assert "36 of 37 questions were written by a model" in text and "| generated |" in text
    assert "| give_away | 5 | 3 |" in text and "Generated by `base` (transformers)" in text
    shares = re.search(r"generated questions (\d\.\d\d), the team's questions (\d\.\d\d)", text)
    assert float(shares[1]) > 0.5 > float(shares[2]) == 0.0  # generated ones copy their passage; the team's does not
    assert question_set_lines(qa[qa["origin"] == "team"], documents, None) == []  # a team's report is unchanged
    assert origin_tags(qa) == {
        "ragtune.questions.origin": "generated+team",
        "ragtune.questions.generated": "36",
        "ragtune.questions.team": "1",
    }


def test_a_split_with_an_empty_dev_or_test_is_refused_and_a_small_one_warned():
    warnings, refusals = split_problems({"questions": 4, "groups_dev": 0, "groups_test": 1, "questions_test": 1}, 30)
    assert len(refusals) == 1 and "dev split is empty" in refusals[0]
    assert len(warnings) == 1 and "test split has 1 question groups" in warnings[0]
    assert split_problems({"questions": 400, "groups_dev": 40, "groups_test": 50}, 30) == ([], [])
    assert split_problems({"questions": 0}, 30) == ([], [])  # documents only: questions come from the generator


def test_ingest_of_documents_alone_needs_generated_questions_and_says_where_to_look(tmp_path):
    from components.data.ingest import ingest

    raw = tmp_path / "raw"
    (raw / "docs").mkdir(parents=True)
    (raw / "docs" / "a.txt").write_text("Alpha was founded in 1900.")
    with pytest.raises(DataValidationError, match="QA file not found, and no generated questions"):
        ingest(raw, SPLIT, 1, generated=tmp_path / "questions" / "generated.jsonl")
    empty = tmp_path / "generated.jsonl"
    empty.write_text("")
    with pytest.raises(DataValidationError, match=r"generated.jsonl: no questions found \(and no question file"):
        ingest(raw, SPLIT, 1, generated=empty)
    assert ingest(raw, SPLIT, 1, require_questions=False).qa.empty  # `data add --docs`: valid without questions
