"""Property-based tests: any input is either accepted or refused with InputErrors, never a crash.

About 1,300 generated inputs in all (the ``max_examples`` below), through the same pure entry
point the CLI uses after reading the files (``ingest_files``).
"""

from __future__ import annotations

import csv
import io
import json
import unicodedata

import pyarrow as pa
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from components.config import SplitConfig
from components.data.errors import DataValidationError, InputError
from components.data.ingest import ingest_files, normalize_text
from components.data.readers import DOC_READERS, SourceFile, html_to_text

SPLIT = SplitConfig(seed=0, dev=0.2, test=0.2, tune=0.0, near_duplicate=1.01, by_document=False)
FAST = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=300)

# values a careless exporter writes: right types, wrong types, blanks, odd unicode, lone surrogates
ids = st.sampled_from(["a", "b", "c", "dir/d", " a ", "", "é", "e\u0301"])
json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=12)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)
loose_str = st.one_of(st.text(max_size=30), ids, st.just("   "), st.just("x\ud800y"), json_values)
str_list = st.one_of(loose_str, st.lists(st.one_of(ids, st.text(max_size=8), st.integers()), max_size=3))


def _maybe(key: str, value: st.SearchStrategy) -> st.SearchStrategy:
    return st.one_of(st.just({}), value.map(lambda v: {key: v}))


def _record(*fields: tuple[str, st.SearchStrategy]) -> st.SearchStrategy:
    return st.tuples(*(_maybe(k, v) for k, v in fields)).map(lambda parts: {k: v for p in parts for k, v in p.items()})


doc_record = _record(("id", st.one_of(ids, loose_str)), ("text", loose_str), ("title", loose_str))
qa_record = _record(
    ("question", loose_str),
    ("answer", loose_str),
    ("answers", str_list),
    ("doc_id", st.one_of(ids, loose_str)),
    ("doc_ids", st.one_of(st.lists(ids, max_size=3), str_list)),
    ("id", st.one_of(st.sampled_from(["q1", "q2"]), loose_str)),
    ("group", loose_str),
)


def _line(record: object) -> st.SearchStrategy:
    return st.sampled_from([json.dumps(record), json.dumps(record)[:-1], "", "not json", "[1, 2]"])


def _jsonl(records: st.SearchStrategy) -> st.SearchStrategy:
    return st.lists(records.flatmap(_line), max_size=6).map(
        lambda lines: "\n".join(lines).encode("utf-8", "surrogatepass")
    )


words = st.text(st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]), min_size=1, max_size=20)
valid_docs = st.lists(st.fixed_dictionaries({"text": words}, optional={"title": words}), min_size=2, max_size=3).map(
    lambda rs: "\n".join(json.dumps({"id": "abc"[i], **r}) for i, r in enumerate(rs)).encode()
)
valid_qa = st.lists(
    st.fixed_dictionaries(
        {"question": words, "answers": st.lists(words, min_size=1, max_size=2), "doc_id": st.sampled_from(["a", "b"])},
        optional={"group": words},
    ),
    min_size=1,
    max_size=4,
).map(lambda rs: "\n".join(json.dumps(r) for r in rs).encode())


def _check(doc_files: list[SourceFile], qa_file: SourceFile) -> None:
    """The property: a clean result, or a DataValidationError made only of InputErrors."""
    names = {f.name for f in doc_files} | {qa_file.name, "docs"}
    try:
        result = ingest_files(doc_files, qa_file, SPLIT)
    except DataValidationError as exc:
        event("refused")
        assert exc.errors, "refused without saying why"
        for error in exc.errors:
            assert isinstance(error, InputError) and error.file in names and error.message
            assert error.line is None or error.line >= 1
        return
    event("accepted")
    docs, qa = result.documents, result.qa
    assert docs["doc_id"].is_unique and qa["qa_id"].is_unique and len(docs) and len(qa)
    assert (docs["text"].str.len() > 0).all()
    assert all(t == unicodedata.normalize("NFC", t) for t in docs["text"])
    assert set(qa["split"]) <= {"train", "dev", "test"}
    assert {d for ids_ in qa["doc_ids"] for d in ids_} <= set(docs["doc_id"])
    pa.Table.from_pandas(docs), pa.Table.from_pandas(qa)  # storable as parquet: no lone surrogates


@FAST
@given(
    docs=st.one_of(valid_docs, valid_docs, _jsonl(doc_record)),
    qa=st.one_of(valid_qa, valid_qa, _jsonl(qa_record)),
    md=st.one_of(words, words, st.text(max_size=40)),
)
@example(docs=b'{"id": "a", "text": null}', qa=b"", md="0")  # found by hypothesis: null text crashed
def test_generated_jsonl_documents_and_questions(docs: bytes, qa: bytes, md: str):
    files = [
        SourceFile("docs/d.jsonl", "d", ".jsonl", docs),
        SourceFile("docs/m.md", "m", ".md", md.encode("utf-8", "surrogatepass")),
    ]
    _check(files, SourceFile("qa.jsonl", "", ".jsonl", qa))


csv_cell = st.one_of(st.text(max_size=15), ids, st.sampled_from(['["a", "b"]', "[broken", "[1]", '"', ",", "\n", "[]"]))
csv_header = st.lists(
    st.sampled_from(["question", "answer", "answers", "doc_id", "doc_ids", "id", "group", "extra"]),
    min_size=1,
    max_size=6,
)


@st.composite
def csv_files(draw: st.DrawFn) -> bytes:
    if draw(st.booleans()):  # well-formed: the documented columns, plausible cells
        header = ["question", "answer", "doc_id"]
        row = st.tuples(words, words, st.sampled_from(["a", "b", '["a", "b"]']))
        rows = draw(st.lists(row, min_size=1, max_size=4))
    else:
        header = draw(csv_header)
        rows = draw(st.lists(st.lists(csv_cell, min_size=len(header) - 1, max_size=len(header) + 1), max_size=5))
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(header)
    writer.writerows(rows)
    text = buf.getvalue()
    if draw(st.integers(0, 3)) == 0:  # damage it: cut it anywhere, or add a stray quote / NUL
        cut = draw(st.integers(0, len(text)))
        text = text[:cut] + draw(st.sampled_from(['"', "\x00", "", "\r"])) + text[cut:]
    return text.encode("utf-8", "surrogatepass")


@FAST
@given(qa=csv_files())
def test_generated_csv_questions(qa: bytes):
    docs = SourceFile("docs/d.jsonl", "d", ".jsonl", b'{"id": "a", "text": "A."}\n{"id": "b", "text": "B."}\n')
    _check([docs], SourceFile("qa.csv", "", ".csv", qa))


suffixes = st.sampled_from(sorted(DOC_READERS))
raw_bytes = st.one_of(
    st.binary(max_size=80),
    st.text(max_size=60).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.binary(max_size=60).map(lambda b: b"%PDF-1.4\n" + b),
    st.binary(max_size=40).map(lambda b: b"\xef\xbb\xbf" + b),
)


@FAST
@given(
    files=st.lists(st.tuples(suffixes, raw_bytes), min_size=1, max_size=4),
    qa=raw_bytes,
    qa_suffix=st.sampled_from([".jsonl", ".csv"]),
)
def test_arbitrary_bytes_in_any_format(files: list[tuple[str, bytes]], qa: bytes, qa_suffix: str):
    doc_files = [SourceFile(f"docs/f{i}{suffix}", f"f{i}", suffix, data) for i, (suffix, data) in enumerate(files)]
    _check(doc_files, SourceFile(f"qa{qa_suffix}", "", qa_suffix, qa))


html_bits = st.sampled_from(
    [
        "<p>",
        "</p>",
        "<nav>",
        "</nav>",
        "<script>",
        "</script>",
        "<style>",
        "<h1>",
        "</h1>",
        "<h7>",
        "<br/>",
        "<!--",
        "-->",
        "<![CDATA[",
        "]]>",
        "<!DOCTYPE html>",
        "<!",
        "</",
        "<",
        ">",
        "&amp;",
        "&#0;",
        "&#xd800;",
        "&bogus;",
        "<li>",
        "<pre>",
        "</pre>",
        "<title>",
        "</title>",
        "<a href='x'>",
        "text ",
        "Übung ",
        "\n",
    ]
)


@settings(deadline=None, max_examples=250)
@given(parts=st.lists(st.one_of(html_bits, st.text(max_size=10)), max_size=30))
def test_generated_html_never_crashes(parts: list[str]):
    html = "".join(parts)
    title, text = html_to_text(html)
    assert isinstance(title, str) and isinstance(text, str)
    docs = SourceFile("docs/p.html", "p", ".html", html.encode("utf-8", "surrogatepass"))
    _check([docs], SourceFile("qa.jsonl", "", ".jsonl", b'{"question": "Q?", "answer": "x", "doc_id": "p"}\n'))


@settings(deadline=None, max_examples=200)
@given(text=st.text())
def test_normalize_text_is_idempotent_nfc_and_trimmed(text: str):
    once = normalize_text(text)
    assert normalize_text(once) == once
    assert once == unicodedata.normalize("NFC", once) and once == once.strip()
    assert "\n\n\n" not in once and "\r" not in once
