import json
from pathlib import Path

import pandas as pd
import pytest

from components.config import SplitConfig
from components.ingest import DataValidationError, ingest, normalize_text, seed_from_demo, split_questions
from tests.conftest import REPO, write_jsonl


def _raw(tmp_path: Path, docs: list[dict], qa: list[dict]) -> Path:
    write_jsonl(tmp_path / "docs" / "d.jsonl", docs)
    write_jsonl(tmp_path / "qa.jsonl", qa)
    return tmp_path


def _ingest(raw: Path):
    return ingest(raw, SplitConfig(seed=0, dev=0.2, test=0.2), max_file_mb=1)


def test_bundled_demo_set_is_valid():
    result = _ingest(REPO / "data" / "demo")
    assert result.report["documents"] == 427
    assert result.report["questions"] == 510
    assert min(result.report[f"questions_{s}"] for s in ("train", "dev", "test")) > 50


def test_reads_jsonl_markdown_and_text(tmp_path):
    raw = _raw(tmp_path, [{"id": "a", "text": "Alpha text."}], [{"question": "Q?", "answer": "x", "doc_id": "guide/b"}])
    (raw / "docs" / "guide").mkdir()
    (raw / "docs" / "guide" / "b.md").write_text("# Bee\n\nBee  text.\r\n")
    (raw / "docs" / "c.txt").write_text("Sea text.")
    result = _ingest(raw)
    docs = result.documents.set_index("doc_id")
    assert set(docs.index) == {"a", "guide/b", "c"}
    assert docs.loc["guide/b", "title"] == "Bee"
    assert docs.loc["guide/b", "text"] == "# Bee\n\nBee text."
    assert list(result.qa.iloc[0]["answers"]) == ["x"]


def test_all_errors_are_reported_with_file_line_and_field(tmp_path):
    raw = _raw(
        tmp_path,
        [{"id": "a", "text": "A."}, {"id": "a", "text": "other"}, {"id": "b", "text": "   "}, {"text": "no id"}],
        [
            {"question": "Q1?", "answers": ["x"], "doc_ids": ["zzz"]},
            {"question": "", "answers": ["x"], "doc_ids": ["a"]},
            {"question": "Q3?", "answers": [], "doc_ids": ["a"]},
            {"question": "Q4?", "answer": 3, "doc_ids": ["a"]},
        ],
    )
    (raw / "qa.jsonl").write_text((raw / "qa.jsonl").read_text() + "{not json\n")
    with pytest.raises(DataValidationError) as err:
        _ingest(raw)
    messages = [str(e) for e in err.value.errors]
    expected = [
        "docs/d.jsonl:2: id: duplicate document id 'a'",
        "docs/d.jsonl:3: text: document 'b' is empty",
        "docs/d.jsonl:4: id: missing",
        "qa.jsonl:1: doc_ids: unknown document id(s) ['zzz']",
        "qa.jsonl:2: question: empty",
        "qa.jsonl:3: answers: must hold at least one non-empty string",
        "qa.jsonl:4: answer: expected a string, got int",
        "qa.jsonl:5: not valid JSON",
    ]
    for fragment in expected:
        assert any(m.startswith(fragment) for m in messages), (fragment, messages)


def test_undecodable_and_unsupported_files_are_refused(tmp_path):
    raw = _raw(tmp_path, [{"id": "a", "text": "A."}], [{"question": "Q?", "answer": "x", "doc_id": "a"}])
    (raw / "docs" / "bad.txt").write_bytes(b"ok line\n\xff\xfe broken")
    (raw / "docs" / "x.docx").write_bytes(b"PK")
    with pytest.raises(DataValidationError) as err:
        _ingest(raw)
    text = str(err.value)
    assert "docs/bad.txt:2: not valid UTF-8" in text
    assert "docs/x.docx: unsupported file type '.docx'" in text


def test_duplicate_content_is_dropped_and_questions_follow_the_kept_copy(tmp_path):
    raw = _raw(
        tmp_path,
        [{"id": "a", "text": "Same."}, {"id": "b", "text": "Same. "}],
        [{"question": "Q?", "answer": "x", "doc_id": "b"}],
    )
    result = _ingest(raw)
    assert result.documents["doc_id"].tolist() == ["a"]
    assert result.report["duplicate_documents_dropped"] == 1
    assert list(result.qa.iloc[0]["doc_ids"]) == ["a"]


def test_split_is_deterministic_and_keeps_paraphrases_and_repeats_together():
    qa = pd.DataFrame(
        {
            "question": [f"Question {i}?" for i in range(300)] + ["question 5", "Other wording"],
            "group": [f"g{i // 2}" for i in range(300)] + ["", "g7"],
        }
    )
    cfg = SplitConfig(seed=3, dev=0.2, test=0.2)
    first, second = split_questions(qa, cfg), split_questions(qa, cfg)
    assert first.tolist() == second.tolist()
    assert first[300] == first[5]  # the same normalised question
    assert first[301] == first[14] == first[15]  # the same group
    for g in range(150):
        assert first[2 * g] == first[2 * g + 1]
    shares = first.value_counts(normalize=True)
    assert 0.1 < shares["test"] < 0.3 and 0.1 < shares["dev"] < 0.3
    assert split_questions(qa, SplitConfig(seed=4, dev=0.2, test=0.2)).tolist() != first.tolist()


def test_adding_questions_never_moves_existing_ones():
    cfg = SplitConfig(seed=0, dev=0.2, test=0.2)
    small = pd.DataFrame({"question": [f"Q{i}" for i in range(50)], "group": ["" for _ in range(50)]})
    big = pd.DataFrame({"question": [f"Q{i}" for i in range(80)], "group": ["" for _ in range(80)]})
    assert split_questions(big, cfg)[:50].tolist() == split_questions(small, cfg).tolist()


def test_normalize_text():
    assert normalize_text("Cafe\u0301  au\tlait \r\n\n\n\nend ") == "Café au lait\n\nend"


def test_seed_copies_demo_only_when_raw_is_absent(tmp_path):
    raw = tmp_path / "raw"
    assert seed_from_demo(REPO / "data" / "demo", raw)
    assert (raw / "qa.jsonl").read_bytes() == (REPO / "data" / "demo" / "qa.jsonl").read_bytes()
    (raw / "qa.jsonl").write_text(json.dumps({"question": "mine"}) + "\n")
    assert not seed_from_demo(REPO / "data" / "demo", raw)
    assert "mine" in (raw / "qa.jsonl").read_text()
