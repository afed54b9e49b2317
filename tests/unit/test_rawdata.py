"""The pieces of `data add`: staging a merge without touching the old raw folder, merging questions, diffs."""

from pathlib import Path

import pytest

from components.config import SplitConfig
from components.data.ingest import ingest
from components.data.rawdata import diff, discard, merge_qa, restore_raw, stage_raw, swap_raw, update_raw
from tests.conftest import write_jsonl

SPLIT = SplitConfig(seed=0, dev=0.2, test=0.2, tune=0.0, near_duplicate=1.01, by_document=False)


def _folder(root: Path, docs: dict[str, str], qa: list[dict]) -> Path:
    for rel, text in docs.items():
        (root / "docs" / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / "docs" / rel).write_text(text)
    write_jsonl(root / "qa.jsonl", qa)
    return root


def _row(qa_id: str, question: str, answer: str = "x", doc: str = "a", given: bool = True) -> dict:
    return {"qa_id": qa_id, "id_given": given, "question": question, "answers": [answer], "doc_ids": [doc], "group": ""}


def test_staging_a_merge_links_old_files_and_never_writes_through_the_links(tmp_path):
    raw = _folder(
        tmp_path / "raw", {"a.txt": "old a", "b.txt": "old b"}, [{"question": "A?", "answer": "x", "doc_id": "a"}]
    )
    new = _folder(
        tmp_path / "new", {"a.txt": "new a", "c.md": "new c"}, [{"question": "C?", "answer": "y", "doc_id": "c"}]
    )
    staged = stage_raw(raw, new / "docs", new / "qa.jsonl", replace=False)
    assert (raw / "docs" / "a.txt").read_text() == "old a"  # the old folder is untouched
    assert (staged / "docs" / "a.txt").read_text() == "new a"
    assert (staged / "docs" / "b.txt").stat().st_ino == (raw / "docs" / "b.txt").stat().st_ino
    assert sorted(p.name for p in (staged / "docs").iterdir()) == ["a.txt", "b.txt", "c.md"]
    result = ingest(staged, SPLIT, 1)
    old_id, new_id = result.qa["qa_id"].tolist()
    assert old_id == "line-1" and new_id.startswith("q-")  # old ids kept, new ones get a content id
    discard(staged)
    assert not staged.exists()


def test_staging_a_replace_copies_exactly_the_inputs(tmp_path):
    raw = _folder(tmp_path / "raw", {"a.txt": "old a"}, [{"question": "A?", "answer": "x", "doc_id": "a"}])
    new = tmp_path / "new"
    (new / "docs").mkdir(parents=True)
    (new / "docs" / "z.txt").write_text("zed")
    (new / "qa.csv").write_text("question,answer,doc_id\nZ?,z,z\n")
    staged = stage_raw(raw, new / "docs", new / "qa.csv", replace=True)
    assert sorted(str(p.relative_to(staged)) for p in staged.rglob("*") if p.is_file()) == ["docs/z.txt", "qa.csv"]
    assert (staged / "qa.csv").read_bytes() == (new / "qa.csv").read_bytes()


def test_swap_and_restore(tmp_path):
    raw = _folder(tmp_path / "raw", {"a.txt": "old"}, [])
    staged = _folder(tmp_path / ".raw.new", {"a.txt": "new"}, [])
    backup = swap_raw(staged, raw)
    assert (raw / "docs" / "a.txt").read_text() == "new" and not staged.exists()
    restore_raw(backup, raw)
    assert (raw / "docs" / "a.txt").read_text() == "old" and not backup.exists()


def test_merge_qa_keeps_old_ids_replaces_by_id_and_skips_repeats():
    old = [_row("q1", "One?"), _row("line-2", "Two?", given=False)]
    new = [
        _row("q1", "One, reworded?"),  # same id: replaces in place
        _row("line-1", "Two? ", given=False),  # the same question again (after normalisation): skipped
        _row("line-2", "Three?", given=False),  # new, no id: gets a content id
    ]
    merged = merge_qa(old, new)
    assert [r["question"] for r in merged] == ["One, reworded?", "Two?", "Three?"]
    assert [r["id"] for r in merged][:2] == ["q1", "line-2"]
    assert merged[2]["id"].startswith("q-")
    assert merge_qa(old, new) == merged  # deterministic ids


def test_diff_by_document_and_question(tmp_path):
    before = ingest(_folder(tmp_path / "one", {"a.txt": "A", "b.txt": "B"}, [_q("q1", "a"), _q("q2", "b")]), SPLIT, 1)
    after = ingest(_folder(tmp_path / "two", {"a.txt": "A2", "c.txt": "C"}, [_q("q1", "a"), _q("q3", "c")]), SPLIT, 1)
    change = diff(before, after)
    assert (change.docs_added, change.docs_removed, change.docs_modified) == (["c"], ["b"], ["a"])
    assert (change.questions_added, change.questions_removed, change.questions_modified) == (["q3"], ["q2"], [])
    assert diff(after, after).empty and not change.empty
    assert "docs added: 1 (c)" in change.summary()


def _q(qa_id: str, doc: str) -> dict:
    return {"id": qa_id, "question": f"About {doc}?", "answer": "x", "doc_id": doc}


def test_update_raw_records_once_and_puts_the_old_folder_back_if_recording_fails(tmp_path):
    raw = _folder(tmp_path / "raw", {"a.txt": "old a"}, [{"question": "A?", "answer": "x", "doc_id": "a"}])
    new = _folder(tmp_path / "new", {"b.txt": "new b"}, [{"question": "B?", "answer": "y", "doc_id": "b"}])
    before = {p: p.read_bytes() for p in raw.rglob("*") if p.is_file()}

    def failing() -> None:
        assert (raw / "docs" / "b.txt").is_file()  # called with the new folder in place
        raise RuntimeError("no DVC here")

    with pytest.raises(RuntimeError, match="no DVC"):
        update_raw(raw, new / "docs", new / "qa.jsonl", SPLIT, 1, replace=False, record=failing)
    assert {p: p.read_bytes() for p in raw.rglob("*") if p.is_file()} == before
    calls = []
    update = update_raw(raw, new / "docs", new / "qa.jsonl", SPLIT, 1, replace=False, record=lambda: calls.append(1))
    assert calls == [1] and update.written and update.change.docs_added == ["b"]
    again = update_raw(raw, new / "docs", new / "qa.jsonl", SPLIT, 1, replace=False, record=lambda: calls.append(1))
    assert calls == [1] and not again.written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new", "raw"]  # nothing left beside it
