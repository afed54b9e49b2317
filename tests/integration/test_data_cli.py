"""`ragtune data check` and `ragtune data add` through the real CLI, in temporary git + DVC repos."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from flows.cli import app
from tests.conftest import REPO, make_pdf, write_jsonl

runner = CliRunner()


def _snapshot(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".git" not in p.parts and "/.dvc/tmp/" not in p.as_posix()  # DVC's (and the lock's) scratch
    }


def _inputs(folder: Path, docs: dict[str, str | bytes], qa: list[dict]) -> tuple[Path, Path]:
    for rel, content in docs.items():
        path = folder / "docs" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return folder / "docs", write_jsonl(folder / "qa.jsonl", qa)


@pytest.fixture(scope="session")
def _empty_project(tmp_path_factory) -> Path:
    """A project folder with our params, made a git + DVC repo once per session (DVC starts slowly)."""
    root = tmp_path_factory.mktemp("template") / "project"
    root.mkdir()
    shutil.copytree(REPO / "params", root / "params")
    shutil.copy2(REPO / "dvc.yaml", root / "dvc.yaml")
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=root, check=True)
    (root / ".dvc" / "config").write_text("[core]\n    analytics = false\n")
    return root


@pytest.fixture
def project(tmp_path, monkeypatch, _empty_project) -> Path:
    """A fresh copy of the empty project, as the working directory."""
    root = tmp_path / "project"
    shutil.copytree(_empty_project, root, symlinks=True)
    monkeypatch.chdir(root)
    return root


FIRST_DOCS = {
    "guide/intro.md": "# Intro\n\nThe answer is forty-two.",
    "notes.txt": "Plain notes.",
    "page.html": "<title>Page</title><nav>menu</nav><p>Html page body.</p>",
    "report.pdf": make_pdf(["Quarterly report text."]),
    "more.jsonl": json.dumps({"id": "j1", "text": "Jsonl doc."})
    + "\n"
    + json.dumps({"id": "j2", "text": "Jsonl doc."}),
}
FIRST_QA = [
    {"id": "q1", "question": "What is the answer?", "answer": "forty-two", "doc_id": "guide/intro"},
    {"id": "q2", "question": "What is in the report?", "answers": ["text", "report text"], "doc_ids": ["report", "j2"]},
]


def test_check_prints_a_summary_writes_nothing_and_refuses_a_split_without_dev_or_test(tmp_path, project):
    docs, qa = _inputs(tmp_path / "in", FIRST_DOCS, FIRST_QA)
    before = _snapshot(tmp_path)
    result = runner.invoke(app, ["data", "check", "--docs", str(docs), "--qa", str(qa)])
    assert "documents: 5 (html 1, jsonl 1, markdown 1, pdf 1, text 1)" in result.output
    assert "duplicate documents dropped: 1 (j2 = j1)" in result.output
    assert "questions: 2 (train " in result.output
    assert result.exit_code == 1 and "split is empty (2 questions in all)" in result.output  # 2 questions, 3 splits
    assert _snapshot(tmp_path) == before


def test_check_warns_of_a_small_split_and_takes_documents_alone(tmp_path, project):
    many = [{"question": f"Which number is {i}?", "answer": str(i), "doc_id": f"n{i}"} for i in range(40)]
    docs, qa = _inputs(tmp_path / "in", {f"n{i}.txt": f"Number {i}." for i in range(40)}, many)
    result = runner.invoke(app, ["data", "check", "--docs", str(docs), "--qa", str(qa)])
    assert result.exit_code == 0, result.output
    assert "warning: the dev split has" in result.output and "fewer than statistics.min_groups = 30" in result.output
    alone = runner.invoke(app, ["data", "check", "--docs", str(docs)])
    assert alone.exit_code == 0, alone.output
    assert "questions: none (the `questions` stage will generate them" in alone.output
    assert runner.invoke(app, ["data", "check"]).exit_code == 2  # neither --docs nor --qa


def test_add_takes_documents_alone_then_reviewed_questions(tmp_path, project):
    docs, _ = _inputs(tmp_path / "in", {"a.md": "# A\n\nAlpha was founded in 1900.", "b.txt": "Beta."}, [])
    first = runner.invoke(app, ["data", "add", "--docs", str(docs)])
    assert first.exit_code == 0, first.output
    raw = project / "data" / "raw"
    assert sorted(p.name for p in raw.rglob("*") if p.is_file()) == ["a.md", "b.txt"]  # no question file
    review = tmp_path / "review.csv"  # what `ragtune questions export` writes, after a person's review
    review.write_text(
        "id,question,answers,doc_ids,group,origin,chunk_id,passage\n"
        'gen-1,When was Alpha founded?,"[""1900""]","[""a""]",gen:a,generated,a#0,Alpha was founded in 1900.\n'
    )
    second = runner.invoke(app, ["data", "add", "--qa", str(review)])
    assert second.exit_code == 0, second.output
    [row] = [json.loads(line) for line in (raw / "qa.jsonl").read_text().splitlines()]
    assert row == {"id": "gen-1", "question": "When was Alpha founded?", "answers": ["1900"], "doc_ids": ["a"],
                   "group": "gen:a", "origin": "reviewed", "chunk_id": "a#0"}  # fmt: skip
    assert (raw / "docs" / "a.md").is_file()  # the documents stay


def test_check_lists_every_problem_and_exits_1(tmp_path, project):
    docs, qa = _inputs(
        tmp_path / "in",
        {"a.md": "", "b.txt": b"\xff\xfe", "c.jsonl": '{"id": "c"}\n{"id": "c", "text": "x"}\n'},
        [{"question": "Q?", "answer": "x", "doc_id": "zzz"}, {"question": "R?"}],
    )
    result = runner.invoke(app, ["data", "check", "--docs", str(docs), "--qa", str(qa)])
    assert result.exit_code == 1
    for expected in (
        f"{docs}/a.md: text: document 'a' is empty",
        f"{docs}/b.txt:1: not valid UTF-8",
        f"{docs}/c.jsonl:1: text: missing",
        f"{qa}:1: doc_id: unknown document id(s) ['zzz']",
        f"{qa}:2: answers: missing",
        f"{qa}:2: doc_ids: missing",
    ):
        assert expected in result.output, (expected, result.output)
    assert "6 problem(s)" in result.output


def test_add_creates_merges_and_replaces_raw_with_dvc(tmp_path, project):
    docs, qa = _inputs(tmp_path / "in1", FIRST_DOCS, FIRST_QA)
    first = runner.invoke(app, ["data", "add", "--docs", str(docs), "--qa", str(qa)])
    assert first.exit_code == 0, first.output
    assert "docs added: 5" in first.output and "questions added: 2 (q1, q2)" in first.output
    raw = project / "data" / "raw"
    assert (raw / "docs" / "report.pdf").is_file() and (raw / "qa.jsonl").is_file()
    dvc_file = yaml.safe_load((project / "data" / "raw.dvc").read_text())
    assert dvc_file["outs"][0]["path"] == "raw" and dvc_file["outs"][0]["nfiles"] == 6
    first_md5 = dvc_file["outs"][0]["md5"]

    # merge: a new document, an edited one, a new question, a repeated one and one replaced by id
    docs2, qa2 = _inputs(
        tmp_path / "in2",
        {"notes.txt": "Plain notes, edited.", "extra/new.md": "# New\n\nBrand new."},
        [
            {"question": "What is new?", "answer": "brand new", "doc_id": "extra/new"},
            FIRST_QA[0],
            {"id": "q2", "question": "What is in the report now?", "answer": "text", "doc_id": "report"},
        ],
    )
    second = runner.invoke(app, ["data", "add", "--docs", str(docs2), "--qa", str(qa2)])
    assert second.exit_code == 0, second.output
    assert "docs added: 1 (extra/new)" in second.output and "docs modified: 1 (notes)" in second.output
    assert "questions added: 1 (q-" in second.output and "questions modified: 1 (q2)" in second.output
    assert "removed" not in second.output
    assert (raw / "docs" / "guide" / "intro.md").is_file()  # merging keeps the old files
    assert yaml.safe_load((project / "data" / "raw.dvc").read_text())["outs"][0]["md5"] != first_md5

    again = runner.invoke(app, ["data", "add", "--docs", str(docs2), "--qa", str(qa2)])
    assert again.exit_code == 0 and "nothing changed" in again.output

    docs3, qa3 = _inputs(
        tmp_path / "in3", {"only.txt": "Only doc."}, [{"question": "Only?", "answer": "y", "doc_id": "only"}]
    )  # one question: dev and test are empty, which `data add` warns of (and `data check` refuses)
    replaced = runner.invoke(app, ["data", "add", "--docs", str(docs3), "--qa", str(qa3), "--replace"])
    assert replaced.exit_code == 0, replaced.output
    assert "docs removed: 6" in replaced.output and "questions removed: 3" in replaced.output
    assert sorted(p.name for p in raw.rglob("*") if p.is_file()) == ["only.txt", "qa.jsonl"]
    assert not list((project / "data").glob(".raw.*"))  # no staged or backup folder left behind


def test_add_refuses_a_merge_that_would_be_invalid_and_leaves_raw_alone(tmp_path, project):
    docs, qa = _inputs(
        tmp_path / "in1", {"a.txt": "Alpha."}, [{"id": "q1", "question": "A?", "answer": "x", "doc_id": "a"}]
    )
    assert runner.invoke(app, ["data", "add", "--docs", str(docs), "--qa", str(qa)]).exit_code == 0
    before = _snapshot(project)
    # a.md would give a second document with id "a"
    docs2, qa2 = _inputs(tmp_path / "in2", {"a.md": "Alpha again."}, [{"question": "B?", "answer": "y", "doc_id": "a"}])
    result = runner.invoke(app, ["data", "add", "--docs", str(docs2), "--qa", str(qa2)])
    assert result.exit_code == 1
    assert "docs/a.txt: id: duplicate document id 'a' (first at docs/a.md)" in result.output
    assert _snapshot(project) == before
    assert not list((project / "data").glob(".raw.*"))


def test_add_refuses_invalid_inputs_before_touching_anything(tmp_path, project):
    docs, qa = _inputs(tmp_path / "in", {"a.txt": "Alpha."}, [{"question": "A?", "answer": "x", "doc_id": "nope"}])
    result = runner.invoke(app, ["data", "add", "--docs", str(docs), "--qa", str(qa)])
    assert result.exit_code == 1 and "unknown document id(s) ['nope']" in result.output
    assert not (project / "data").exists()


def test_add_puts_the_old_raw_back_when_dvc_fails(tmp_path, project):
    docs, qa = _inputs(tmp_path / "in1", {"a.txt": "Alpha."}, [{"question": "A?", "answer": "x", "doc_id": "a"}])
    assert runner.invoke(app, ["data", "add", "--docs", str(docs), "--qa", str(qa)]).exit_code == 0
    shutil.rmtree(project / ".dvc")  # no longer a DVC repo: `dvc add` fails
    before = _snapshot(project)
    docs2, qa2 = _inputs(tmp_path / "in2", {"b.txt": "Beta."}, [{"question": "B?", "answer": "y", "doc_id": "b"}])
    result = runner.invoke(app, ["data", "add", "--docs", str(docs2), "--qa", str(qa2)])
    assert result.exit_code == 1 and "`dvc add data/raw` failed" in result.output
    assert _snapshot(project) == before
    assert not list((project / "data").glob(".raw.*"))


def test_ingest_stage_refuses_bad_raw_data_and_keeps_its_previous_output(tmp_path, monkeypatch):
    root = tmp_path / "project"
    shutil.copytree(REPO / "params", root / "params")
    shutil.copy2(REPO / "dvc.yaml", root / "dvc.yaml")
    _inputs(root / "data" / "raw", {"a.md": "# A\n\nAlpha."}, [{"question": "A?", "answer": "x", "doc_id": "a"}])
    monkeypatch.chdir(root)
    first = runner.invoke(app, ["ingest"])
    assert first.exit_code == 0 and "split is empty (1 questions in all)" in first.output  # 1 question, 3 splits
    processed = _snapshot(root / "data" / "processed")
    assert "chunks-tok-96.parquet" in processed and "qa.parquet" in processed
    raw_before = _snapshot(root / "data" / "raw")
    (root / "data" / "raw" / "docs" / "b.html").write_bytes(b"<p>\xff</p>")
    result = runner.invoke(app, ["ingest"])
    assert result.exit_code == 1 and "docs/b.html:1: not valid UTF-8" in result.output
    assert _snapshot(root / "data" / "processed") == processed
    assert not list((root / "data").glob(".processed*"))  # no partial output left beside it
    assert _snapshot(root / "data" / "raw") == {**raw_before, "docs/b.html": b"<p>\xff</p>"}


# `ragtune data add` in a child process that SIGKILLs itself right after its Nth rename of a folder
# beside data/raw: 1 = between the two renames of the swap, 2 = after the swap, before `dvc add`.
KILLED_ADD = """
import os, signal, sys
from pathlib import Path
kill_after, renames, real = int(sys.argv[1]), [], Path.rename
def rename(self, target):
    out = real(self, target)
    if Path(target).parent.name == "data":
        renames.append(target)
        if len(renames) == kill_after:
            os.kill(os.getpid(), signal.SIGKILL)
    return out
Path.rename = rename
from flows.cli import app
app(["data", "add", *sys.argv[2:]])
"""


def _killed_add(project: Path, kill_after: int, docs: Path, qa: Path) -> None:
    cmd = [sys.executable, "-c", KILLED_ADD, str(kill_after), "--docs", str(docs), "--qa", str(qa)]
    proc = subprocess.run(cmd, cwd=project, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]


def _leftovers(project: Path) -> list[str]:
    return sorted(p.name for p in (project / "data").glob(".raw.*"))


@pytest.fixture
def recorded(tmp_path, project) -> dict[str, bytes]:
    """data/raw added and recorded by DVC once; its files, to compare with after a crash."""
    docs, qa = _inputs(tmp_path / "in1", FIRST_DOCS, FIRST_QA)
    assert runner.invoke(app, ["data", "add", "--docs", str(docs), "--qa", str(qa)]).exit_code == 0
    return _snapshot(project / "data" / "raw")


NEW_DOCS = {"extra/new.md": "# New\n\nBrand new."}
NEW_QA = [{"question": "What is new?", "answer": "brand new", "doc_id": "extra/new"}]


def test_add_killed_between_its_renames_is_finished_by_the_next_add(tmp_path, project, recorded):
    docs, qa = _inputs(tmp_path / "in2", NEW_DOCS, NEW_QA)
    _killed_add(project, 1, docs, qa)
    assert not (project / "data" / "raw").exists()  # the crash left no raw folder: the old one aside, the new staged
    assert [n.split("-")[0] for n in _leftovers(project)] == [".raw.new", ".raw.old"]
    again = runner.invoke(app, ["data", "add", "--docs", str(docs), "--qa", str(qa)])
    assert again.exit_code == 0, again.output
    assert "removed .raw.new-" in again.output and "put .raw.old-" in again.output
    assert "docs added: 1 (extra/new)" in again.output
    raw = project / "data" / "raw"
    assert (raw / "docs" / "guide" / "intro.md").is_file() and (raw / "docs" / "extra" / "new.md").is_file()
    assert _leftovers(project) == []
    status = subprocess.run(
        [sys.executable, "-m", "dvc", "status", "data/raw.dvc"], cwd=project, capture_output=True, text=True
    )
    assert "up to date" in status.stdout, status.stdout  # what DVC records is what is there


def test_add_killed_before_dvc_recorded_it_is_undone_by_recover(tmp_path, project, recorded):
    docs, qa = _inputs(tmp_path / "in2", NEW_DOCS, NEW_QA)
    _killed_add(project, 2, docs, qa)
    assert (project / "data" / "raw" / "docs" / "extra" / "new.md").is_file()  # swapped in, never recorded
    assert _leftovers(project)
    result = runner.invoke(app, ["data", "recover"])
    assert result.exit_code == 0 and "the update was never recorded" in result.output, result.output
    assert _snapshot(project / "data" / "raw") == recorded and _leftovers(project) == []
    assert "nothing to recover" in runner.invoke(app, ["data", "recover"]).output


def test_add_waits_for_a_running_pipeline_then_updates_raw(tmp_path, project, recorded):
    """A pipeline run reads data/raw: `data add` says it waits, touches nothing while the run holds
    the repository's lock, and adds once the run is over."""
    import time

    from flows.runguard import pipeline_lock

    docs, qa = _inputs(tmp_path / "in2", NEW_DOCS, NEW_QA)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with pipeline_lock(project, 0, print, name="a running pipeline"):
        add = subprocess.Popen(
            [sys.executable, "-m", "flows.cli", "data", "add", "--docs", str(docs), "--qa", str(qa)],
            cwd=project,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(15)  # far longer than an add of one document takes (about 5 s)
        assert add.poll() is None, add.communicate()
        assert _snapshot(project / "data" / "raw") == recorded and _leftovers(project) == []
    out, err = add.communicate(timeout=120)
    assert add.returncode == 0, out + err
    assert "waiting" in err and "a running pipeline" in err, err
    assert (project / "data" / "raw" / "docs" / "extra" / "new.md").is_file()
    assert "docs added: 1 (extra/new)" in out
