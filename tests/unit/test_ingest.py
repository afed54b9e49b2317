import json
from pathlib import Path

import pandas as pd
import pytest

from components.config import SplitConfig
from components.data.demo import seed_from_demo
from components.data.ingest import DataValidationError, InputError, ingest, normalize_text
from components.data.split import leakage_groups, split_questions
from tests.conftest import PARAMS, REPO, like, make_pdf, write_jsonl


def _raw(tmp_path: Path, docs: list[dict], qa: list[dict]) -> Path:
    write_jsonl(tmp_path / "docs" / "d.jsonl", docs)
    write_jsonl(tmp_path / "qa.jsonl", qa)
    return tmp_path


def _ingest(raw: Path):
    return ingest(
        raw, SplitConfig(seed=0, dev=0.2, test=0.2, tune=0.0, near_duplicate=1.01, by_document=False), max_file_mb=1
    )


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
    cfg = SplitConfig(seed=3, dev=0.2, test=0.2, tune=0.0, near_duplicate=1.01, by_document=False)
    first, second = split_questions(qa, cfg), split_questions(qa, cfg)
    assert first.tolist() == second.tolist()
    assert first[300] == first[5]  # the same normalised question
    assert first[301] == first[14] == first[15]  # the same group
    for g in range(150):
        assert first[2 * g] == first[2 * g + 1]
    shares = first.value_counts(normalize=True)
    assert 0.1 < shares["test"] < 0.3 and 0.1 < shares["dev"] < 0.3
    assert (
        split_questions(
            qa, SplitConfig(seed=4, dev=0.2, test=0.2, tune=0.0, near_duplicate=1.01, by_document=False)
        ).tolist()
        != first.tolist()
    )


def test_adding_questions_never_moves_existing_ones():
    cfg = SplitConfig(seed=0, dev=0.2, test=0.2, tune=0.0, near_duplicate=1.01, by_document=False)
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


# --- formats and each refused input of issue #3 ---------------------------------------------------


def _messages(raw: Path) -> list[str]:
    with pytest.raises(DataValidationError) as err:
        _ingest(raw)
    assert all(isinstance(e, InputError) for e in err.value.errors)
    return [str(e) for e in err.value.errors]


def test_mixed_formats_in_a_folder_tree_keep_their_relative_path_as_id(tmp_path):
    raw = _raw(tmp_path, [{"id": "j", "text": "Jay."}], [])
    (raw / "docs" / "a" / "b").mkdir(parents=True)
    (raw / "docs" / "a" / "b" / "page.html").write_text("<title>P</title><nav>x</nav><p>Html body.</p>")
    (raw / "docs" / "a" / "report.pdf").write_bytes(make_pdf(["Pdf body."]))
    (raw / "docs" / "a" / "note.markdown").write_text("# N\n\nNote body.")
    (raw / "docs" / ".DS_Store").write_bytes(b"\x00\x01")  # hidden files are ignored
    (raw / "qa.jsonl").unlink()
    (raw / "qa.csv").write_text('question,answer,doc_ids\nWhere?,here,"[""a/b/page"", ""a/report""]"\n')
    result = _ingest(raw)
    docs = result.documents.set_index("doc_id")
    assert docs["format"].to_dict() == {"a/b/page": "html", "a/note": "markdown", "a/report": "pdf", "j": "jsonl"}
    assert docs.loc["a/b/page", "text"] == "Html body."
    assert result.report["documents_pdf"] == 1 and result.report["questions"] == 1
    assert list(result.qa.iloc[0]["doc_ids"]) == ["a/b/page", "a/report"]


def test_unknown_doc_ids_are_refused(tmp_path):
    raw = _raw(tmp_path, [{"id": "a", "text": "A."}], [{"question": "Q?", "answer": "x", "doc_ids": ["a", "nope"]}])
    assert _messages(raw) == ["qa.jsonl:1: doc_ids: unknown document id(s) ['nope']"]


def test_empty_documents_are_refused(tmp_path):
    raw = _raw(tmp_path, [{"id": "a", "text": "A."}], [{"question": "Q?", "answer": "x", "doc_id": "a"}])
    (raw / "docs" / "blank.md").write_text(" \n\t\n")
    (raw / "docs" / "only-nav.html").write_text("<nav>menu</nav><footer>f</footer>")
    assert _messages(raw) == [
        "docs/blank.md: text: document 'blank' is empty",
        "docs/only-nav.html: text: document 'only-nav' is empty",
    ]


def test_duplicate_ids_across_files_and_formats_are_refused(tmp_path):
    raw = _raw(
        tmp_path,
        [{"id": "x", "text": "From jsonl."}],
        [
            {"question": "Q?", "answer": "x", "doc_id": "x", "id": "q"},
            {"question": "R?", "answer": "y", "doc_id": "x", "id": "q"},
        ],
    )
    (raw / "docs" / "x.md").write_text("From markdown.")
    assert _messages(raw) == [
        "docs/x.md: id: duplicate document id 'x' (first at docs/d.jsonl:1)",
        "qa.jsonl:2: id: duplicate QA id 'q' (first at qa.jsonl:1)",
    ]


def test_oversize_files_are_refused_before_reading(tmp_path):
    raw = _raw(tmp_path, [{"id": "a", "text": "A."}], [{"question": "Q?", "answer": "x", "doc_id": "a"}])
    (raw / "docs" / "big.txt").write_text("word " * 300_000)  # 1.5 MB, the limit is 1 MB
    assert _messages(raw) == ["docs/big.txt: file is 1.5 MB, above the 1.0 MB limit"]


def test_links_that_escape_the_raw_folder_are_refused(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("not yours")
    raw = _raw(tmp_path / "raw", [{"id": "a", "text": "A."}], [{"question": "Q?", "answer": "x", "doc_id": "a"}])
    (raw / "docs" / "leak.txt").symlink_to(outside / "secret.txt")
    (raw / "docs" / "dir").symlink_to(outside, target_is_directory=True)
    (raw / "docs" / "inside.md").symlink_to(raw / "docs" / "d.jsonl")  # stays inside: allowed (as markdown)
    messages = _messages(raw)
    assert len(messages) == 2
    assert messages[0].startswith("docs/dir: link to ") and "outside" in messages[0]
    assert messages[1].startswith("docs/leak.txt: link to ") and "copy the file in instead" in messages[1]


def test_a_docs_folder_or_qa_file_linked_from_outside_is_refused(tmp_path):
    elsewhere = _raw(
        tmp_path / "elsewhere", [{"id": "a", "text": "A."}], [{"question": "Q?", "answer": "x", "doc_id": "a"}]
    )
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "docs").symlink_to(elsewhere / "docs", target_is_directory=True)
    (raw / "qa.jsonl").symlink_to(elsewhere / "qa.jsonl")
    messages = _messages(raw)
    assert [m.split(":")[0] for m in messages] == ["docs", "qa.jsonl"]
    assert all("outside" in m for m in messages)


def test_a_raw_folder_needs_exactly_one_qa_file(tmp_path):
    raw = _raw(tmp_path, [{"id": "a", "text": "A."}], [{"question": "Q?", "answer": "x", "doc_id": "a"}])
    (raw / "qa.csv").write_text("question,answer,doc_id\nQ?,x,a\n")
    assert "more than one QA file" in _messages(raw)[0]
    (raw / "qa.csv").unlink()
    (raw / "qa.jsonl").unlink()
    assert "QA file not found" in _messages(raw)[0]


def test_errors_are_grouped_by_file(tmp_path):
    raw = _raw(tmp_path, [{"id": "a", "text": ""}, {"id": "b"}], [{"question": "Q?", "answer": "x", "doc_id": "zz"}])
    (raw / "docs" / "c.txt").write_bytes(b"\xff")
    (raw / "docs" / "e.md").write_text("")
    files = [m.split(":")[0] for m in _messages(raw)]
    assert files == sorted(files)
    assert files == ["docs/c.txt", "docs/d.jsonl", "docs/d.jsonl", "docs/e.md", "qa.jsonl"]


def test_reading_writes_nothing_under_the_raw_folder(tmp_path):
    raw = _raw(tmp_path, [{"id": "a", "text": "A."}], [{"question": "Q?", "answer": "x", "doc_id": "a"}])
    (raw / "docs" / "r.pdf").write_bytes(make_pdf(["Pdf."]))
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in raw.rglob("*") if p.is_file()}
    _ingest(raw)
    (raw / "docs" / "bad.txt").write_bytes(b"\xff")
    before[raw / "docs" / "bad.txt"] = ((raw / "docs" / "bad.txt").stat().st_mtime_ns, b"\xff")
    _messages(raw)
    after = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in raw.rglob("*") if p.is_file()}
    assert after == before


SPLIT = like(PARAMS.data.split)  # the shipped split: tune slice, near-duplicates, gold documents


def test_near_duplicate_questions_with_the_same_answer_share_a_group_and_a_split():
    # two Natural Questions of the bundled demo: one fact, two wordings, two passages
    qa = pd.DataFrame(
        {
            "question": [
                "who wrote the patriotic song sare jahan se achcha?",
                "who composed the famous song ' sare jahan se acha '?",
                "who sang the patriotic song sare jahan se achcha?",  # similar words, another answer
                "who wrote the novel midnight's children?",  # the same answer would not do alone
            ],
            "answers": [["Muhammad Iqbal"], ["Muhammad Iqbal"], ["Lata Mangeshkar"], ["Muhammad Iqbal"]],
            "doc_ids": [["nq/66bad247b387"], ["nq/e069af460512"], ["nq/a"], ["nq/b"]],
            "group": ["", "", "", ""],
        }
    )
    groups = leakage_groups(qa, SPLIT)
    assert groups[0] == groups[1] and len(set(groups)) == 3
    assert len(set(leakage_groups(qa, like(SPLIT, near_duplicate=1.01)))) == 4  # turned off
    splits = split_questions(qa, SPLIT, groups)
    assert splits[0] == splits[1]


def test_questions_about_one_gold_document_share_a_group_unless_turned_off():
    qa = pd.DataFrame(
        {
            "question": ["alpha-3 of Andorra?", "numeric code of Andorra?", "alpha-3 of Peru?"],
            "answers": [["AND"], ["020"], ["PER"]],
            "doc_ids": [["country/AD"], ["country/AD"], ["country/PE"]],
            "group": ["AD#a3", "AD#num", "PE#a3"],
        }
    )
    assert len(set(leakage_groups(qa, SPLIT))) == 2
    assert len(set(leakage_groups(qa, like(SPLIT, by_document=False)))) == 3


def test_the_tuning_slice_is_cut_from_train_and_dev_and_test_keep_their_questions():
    qa = pd.DataFrame({"question": [f"Q{i}" for i in range(400)], "group": [""] * 400})
    plain = SplitConfig(seed=0, dev=0.2, test=0.2, tune=0.0, near_duplicate=1.01, by_document=False)
    without, with_tune = split_questions(qa, plain), split_questions(qa, like(plain, tune=0.15))
    moved = without != with_tune
    assert set(without[moved]) == {"train"} and set(with_tune[moved]) == {"tune"}
    assert 0.08 < (with_tune == "tune").mean() < 0.22
