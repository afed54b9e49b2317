"""Each reader on a tiny real file: what it returns and what it refuses."""

import json

from components.data.errors import InputError
from components.data.readers import (
    DOC_READERS,
    SourceFile,
    csv_records,
    html_to_text,
    read_html,
    read_jsonl_documents,
    read_markdown,
    read_pdf,
    read_qa,
    read_text,
)
from tests.conftest import make_pdf


def _file(name: str, data: bytes | str) -> SourceFile:
    data = data.encode("utf-8") if isinstance(data, str) else data
    stem, _, suffix = name.rpartition(".")
    return SourceFile(name=f"docs/{name}", doc_id=stem, suffix=f".{suffix}", data=data)


def test_registry_covers_every_documented_format():
    assert set(DOC_READERS) == {".jsonl", ".md", ".markdown", ".txt", ".html", ".htm", ".pdf"}


def test_markdown_takes_its_first_h1_as_title():
    errors: list[InputError] = []
    [doc] = read_markdown(_file("guide/a.md", "intro\n\n# The Title\n\n## Sub\n"), errors)
    assert (doc["doc_id"], doc["title"], doc["format"], errors) == ("guide/a", "The Title", "markdown", [])


def test_text_is_one_untitled_document_and_a_bom_is_dropped():
    errors: list[InputError] = []
    [doc] = read_text(_file("t.txt", "\ufeff# not a title\nbody"), errors)
    assert doc["title"] == "" and doc["text"] == "# not a title\nbody" and not errors


def test_undecodable_bytes_name_the_line():
    errors: list[InputError] = []
    assert read_text(_file("t.txt", b"fine\nfine\n\xc3\x28 bad"), errors) == []
    assert str(errors[0]).startswith("docs/t.txt:3: not valid UTF-8")


def test_jsonl_documents_report_every_bad_line():
    lines = [
        {"id": "a", "text": "A", "title": "Ay"},
        {"id": 3, "text": "B"},
        {"text": "C"},
        {"id": "d"},
        {"id": "e", "text": "E", "title": ["x"]},
        [1, 2],
    ]
    data = "\n".join(json.dumps(x) for x in lines) + "\n{broken\n"
    errors: list[InputError] = []
    docs = read_jsonl_documents(_file("d.jsonl", data), errors)
    assert [d["doc_id"] for d in docs] == ["a"] and docs[0]["title"] == "Ay" and docs[0]["line"] == 1
    assert [str(e).split(" (")[0] for e in errors] == [
        "docs/d.jsonl:2: id: expected a string, got int",
        "docs/d.jsonl:3: id: missing",
        "docs/d.jsonl:4: text: missing",
        "docs/d.jsonl:5: title: expected a string, got list",
        "docs/d.jsonl:6: expected a JSON object, got list",
        "docs/d.jsonl:7: not valid JSON: Expecting property name enclosed in double quotes",
    ]


def test_jsonl_refuses_unpaired_surrogates():
    errors: list[InputError] = []
    assert read_jsonl_documents(_file("d.jsonl", '{"id": "a", "text": "x\\ud800"}\n'), errors) == []
    assert errors[0].field == "text" and "surrogate" in errors[0].message


def test_html_drops_boilerplate_and_keeps_headings_as_markdown():
    html = """<html><head><title>The  Page</title><style>p {color: red}</style></head>
    <body><header>Site name</header><nav><a href="/">Home</a></nav>
    <h1>Main   heading</h1><p>First
    paragraph &amp; more.</p><ul><li>one</li><li>two</li></ul>
    <aside>ads</aside><script>var x = "<p>no</p>";</script><h2>Part</h2><p>Second.</p>
    <footer>(c) 2026</footer></body></html>"""
    title, text = html_to_text(html)
    assert title == "The Page"
    for gone in ("Site name", "Home", "ads", "var x", "color", "(c) 2026"):
        assert gone not in text
    assert "# Main heading" in text and "## Part" in text
    assert "First paragraph & more." in text and "- one" in text


def test_html_title_falls_back_to_first_h1():
    errors: list[InputError] = []
    [doc] = read_html(_file("p.html", "<h1>Only heading</h1><p>x</p>"), errors)
    assert doc["title"] == "Only heading" and doc["format"] == "html" and not errors


def test_pdf_reads_every_page_and_the_title():
    errors: list[InputError] = []
    [doc] = read_pdf(_file("r.pdf", make_pdf(["Page one (intro).", "Page two."], title="Report")), errors)
    assert not errors
    assert doc["title"] == "Report"
    assert "Page one (intro)." in doc["text"] and "Page two." in doc["text"]


def test_broken_pdf_is_refused_with_a_clear_message():
    errors: list[InputError] = []
    assert read_pdf(_file("r.pdf", b"%PDF-1.4\nnot really"), errors) == []
    assert str(errors[0]).startswith("docs/r.pdf: not a readable PDF")


def test_qa_jsonl_accepts_one_or_many_answers_and_documents():
    data = "\n".join(
        [
            json.dumps({"question": "Q1?", "answer": "a", "doc_id": "d1"}),
            json.dumps({"question": "Q2?", "answers": ["a", "b"], "doc_ids": ["d1", "d2"], "id": "x", "group": "g"}),
        ]
    )
    rows = read_qa(SourceFile("qa.jsonl", "", ".jsonl", data.encode()), errors := [])
    assert not errors
    assert [(r["qa_id"], r["answers"], r["doc_ids"], r["group"]) for r in rows] == [
        ("line-1", ["a"], ["d1"], ""),
        ("x", ["a", "b"], ["d1", "d2"], "g"),
    ]


def test_qa_csv_with_json_list_cells_and_multiline_quotes():
    data = 'id,question,answers,doc_ids,group\nq1,"Two\nlines?","[""a"", ""b""]",d1,g\nq2,Q?,plain,"[""d1"",""d2""]",\n'
    rows = read_qa(SourceFile("qa.csv", "", ".csv", data.encode()), errors := [])
    assert not errors
    assert [(r["qa_id"], r["question"], r["answers"], r["doc_ids"], r["line"]) for r in rows] == [
        ("q1", "Two\nlines?", ["a", "b"], ["d1"], 2),
        ("q2", "Q?", ["plain"], ["d1", "d2"], 4),
    ]


def test_qa_csv_errors_name_record_and_column():
    data = "question,answers,doc_id\nQ?,[oops,d\nQ2?,a\nQ3?,,d\n"
    errors: list[InputError] = []
    assert read_qa(SourceFile("qa.csv", "", ".csv", data.encode()), errors) == []
    assert [str(e) for e in errors] == [
        "qa.csv:2: answers: starts with '[' but is not a JSON list",
        "qa.csv:3: expected 3 cells, got 2",
        "qa.csv:4: answers: missing (give 'answers' or 'answer')",
    ]


def test_qa_csv_without_question_column_is_refused():
    errors: list[InputError] = []
    assert list(csv_records("q,answer\nx,y\n", "qa.csv", errors)) == []
    assert str(errors[0]).startswith("qa.csv:1: question: no 'question' column")


def test_unsupported_qa_format_is_refused():
    errors: list[InputError] = []
    assert read_qa(SourceFile("qa.xlsx", "", ".xlsx", b"PK"), errors) == []
    assert "unsupported QA file type '.xlsx'" in str(errors[0])


SITE_CHROME = """<html><head><title>Ownership - The Book</title></head><body>
<div id="sidebar"><div class="sidebar-scrollbox"><ol class="chapter"><li>Introduction</li><li>Getting Started</li>
<li>Understanding Ownership</li><li>Structs</li><li>Enums</li></ol></div></div>
<div id="menu-bar"><div class="left-buttons"><ul id="theme-list"><li>Auto</li><li>Light</li><li>Rust</li>
<li>Coal</li><li>Navy</li><li>Ayu</li></ul></div><h1 class="menu-title">The Rust Programming Language</h1></div>
<div id="search-wrapper"><input type="search" placeholder="Search this book ..."></div>
<div id="mdbook-help-container"><div id="mdbook-help-popup"><h2 class="mdbook-help-title">Keyboard shortcuts</h2>
<p>Press left or right to navigate between chapters</p><p>Press S or / to search in the book</p></div></div>
<main><h2>What Is Ownership?</h2>
<p>Ownership is a set of rules that govern how a Rust program manages memory. All programs have to manage the way
they use a computer's memory while running. Some languages have garbage collection that regularly looks for
no-longer-used memory as the program runs; in other languages, the programmer must explicitly allocate and free
the memory.</p>
<p>Rust uses a third approach: memory is managed through a system of ownership with a set of rules that the
compiler checks. If any of the rules are violated, the program will not compile. None of the features of
ownership will slow down your program while it is running.</p>
<h3>The Stack and the Heap</h3>
<p>Many programming languages do not require you to think about the stack and the heap very often. But in a
systems programming language like Rust, whether a value is on the stack or the heap affects how the language
behaves and why you have to make certain decisions.</p></main>
<div class="nav-wrapper"><a class="previous" href="ch03.html">Previous chapter</a>
<a href="ch04-02.html">Next chapter</a></div>
</body></html>"""


def test_html_keeps_the_main_content_and_drops_the_sites_chrome():
    title, text = html_to_text(SITE_CHROME)
    assert title == "Ownership - The Book"
    for chrome in ("Keyboard shortcuts", "Coal", "Navy", "Ayu", "Getting Started", "Press S or /", "Next chapter"):
        assert chrome not in text, chrome
    assert "## What Is Ownership?" in text and "### The Stack and the Heap" in text
    assert "Ownership is a set of rules that govern how a Rust program manages memory." in text
    assert "memory is managed through a system of ownership" in text


def test_pdf_drops_running_headers_footers_and_page_numbers_and_rejoins_hyphenated_words():
    pages = [
        "ACME Widget Manual\nChapter 1: Setup\nThe manip-\nulation of widgets is described in this\nwell-known "
        "guide.\nPage 1 of 3",
        "ACME Widget Manual\nChapter 1: Setup\nEach widget has a well-\nknown part number and a col-\nour code.\n"
        "Page 2 of 3",
        "ACME Widget Manual\nChapter 2: Use\nTurn the handle until the light is green.\n3",
    ]
    errors: list[InputError] = []
    [doc] = read_pdf(_file("m.pdf", make_pdf(pages)), errors)
    assert not errors
    text = doc["text"]
    assert "ACME Widget Manual" not in text and "Page 1" not in text and "Page 2" not in text
    assert not any(line.strip() == "3" for line in text.splitlines())
    assert "The manipulation of widgets is described in this well-known guide." in text
    assert "a well-known part number and a colour code." in text  # the hyphen of a word seen unbroken is kept
    assert "Chapter 1: Setup" not in text  # a running chapter header: at the top of 2 of the 3 pages
    assert "Chapter 2: Use" in text  # a heading seen once is no furniture
    assert "Turn the handle until the light is green." in text
