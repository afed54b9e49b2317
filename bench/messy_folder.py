"""A messy documents folder (an HTML site export, typeset PDF manuals, a README), read before and after cleaning.

Assembles the folder from documentation installed on this machine: chapters of the Rust book
(mdBook pages: sidebar, theme picker, "Keyboard shortcuts" help), Node.js API pages (a table of
contents and menus on every page), and two PDF manuals typeset here with fpdf2 from other Rust
book chapters, with a running header, a "Page N of M" footer and words hyphenated at line ends.
Then reads every file twice: as ingestion did before (the tag list for HTML, pypdf's page text as
is) and as it does now (trafilatura's main content; PDF furniture dropped, hyphenation rejoined),
and prints what stayed in the text: chrome markers, broken words, page furniture.

    python bench/messy_folder.py OUT_DIR          # builds OUT_DIR/docs, writes bench/results/messy_folder.json

Needs the Rust toolchain's docs (rustup) and Node.js's docs (Debian's nodejs-doc) on the machine,
and fpdf2 (the dev extra).
"""

from __future__ import annotations

import io
import json
import re
import shutil
import sys
import textwrap
import time
from pathlib import Path

RUST_BOOK = Path.home() / ".rustup/toolchains/stable-x86_64-unknown-linux-gnu/share/doc/rust/html/book"
NODE_API = Path("/usr/share/doc/nodejs/api")
HTML_PAGES = [
    *(RUST_BOOK / f for f in ("ch04-00-understanding-ownership.html", "ch04-01-what-is-ownership.html",
                              "ch04-02-references-and-borrowing.html", "ch04-03-slices.html", "ch05-00-structs.html",
                              "ch05-01-defining-structs.html", "ch05-02-example-structs.html",
                              "ch05-03-method-syntax.html", "ch06-00-enums.html", "ch06-01-defining-an-enum.html",
                              "ch06-02-match.html", "ch06-03-if-let.html")),
    *(NODE_API / f for f in ("documentation.html", "synopsis.html", "corepack.html")),
]  # fmt: skip
PDF_SOURCES = {
    "manual-collections": "ch08-01-vectors.html",
    "manual-errors": "ch09-02-recoverable-errors-with-result.html",
}
CHROME = ["Keyboard shortcuts", "Press ? to show this help", "Coal", "Navy", "Ayu", "Print this book",
          "Table of contents", "Index", "View on single page", "Edit on GitHub", "Page ",
          "The Rust Manual"]  # fmt: skip
ASCII = str.maketrans({"’": "'", "‘": "'", "“": '"', "”": '"', "—": "-", "–": "-", "…": "..."})
README = """# Our docs

This folder holds the team's documentation: the Rust book chapters we use in training, the Node.js
API pages of the tools we ship, and two PDF manuals printed from the book.
"""


def _hyphenated_lines(text: str, width: int = 78) -> list[str]:
    """Lines of at most ``width`` characters; a long word that overflows is split with a hyphen, as typesetters do."""
    lines: list[str] = []
    for paragraph in text.split("\n\n"):
        line = ""
        for word in paragraph.split():
            if len(line) + 1 + len(word) <= width:
                line = f"{line} {word}" if line else word
                continue
            room = width - len(line) - 2
            if len(word) >= 8 and room >= 3 and word.isalpha():
                lines.append(f"{line} {word[:room]}-")
                line = word[room:]
            else:
                lines.append(line)
                line = word
        lines += [line, ""]
    return lines


def build_pdf(title: str, text: str) -> bytes:
    from fpdf import FPDF

    class Manual(FPDF):
        def header(self) -> None:
            self.set_font("Helvetica", size=9)
            self.cell(0, 8, f"The Rust Manual - {title}", align="C")
            self.ln(12)

        def footer(self) -> None:
            self.set_y(-15)
            self.set_font("Helvetica", size=9)
            self.cell(0, 8, f"Page {self.page_no()} of {{nb}}", align="C")

    pdf = Manual()
    pdf.set_title(title)
    pdf.add_page()
    pdf.set_font("Helvetica", size=10)
    for line in _hyphenated_lines(text.translate(ASCII).encode("latin-1", "replace").decode("latin-1")):
        pdf.cell(0, 5, line, new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def assemble(out: Path) -> Path:
    from components.data.html import html_to_text

    docs = out / "docs"
    shutil.rmtree(out, ignore_errors=True)
    (docs / "book").mkdir(parents=True)
    (docs / "node").mkdir()
    (docs / "manuals").mkdir()
    for page in HTML_PAGES:
        shutil.copy2(page, docs / ("book" if page.parent == RUST_BOOK else "node") / page.name)
    for name, chapter in PDF_SOURCES.items():
        _, text = html_to_text((RUST_BOOK / chapter).read_text(encoding="utf-8"))
        text = "\n\n".join(p for p in text.split("\n\n") if p.strip() and not p.lstrip().startswith(("#", "$", "fn ")))
        (docs / "manuals" / f"{name}.pdf").write_bytes(build_pdf(name.replace("-", " ").title(), text))
    (docs / "README.md").write_text(README, encoding="utf-8")
    return docs


def read_before(path: Path) -> str:
    """The text ingestion produced before: the tag list for HTML, pypdf's pages joined as they are."""
    from pypdf import PdfReader

    from components.data.html import tag_text

    if path.suffix == ".pdf":
        return "\n\n".join(p.extract_text() or "" for p in PdfReader(io.BytesIO(path.read_bytes())).pages)
    return tag_text(path.read_text(encoding="utf-8"))[1] if path.suffix == ".html" else path.read_text()


def read_after(path: Path) -> str:
    from components.data.readers import DOC_READERS, SourceFile

    errors: list = []
    [doc] = DOC_READERS[path.suffix](SourceFile(path.name, path.stem, path.suffix, path.read_bytes()), errors)
    assert not errors, errors
    return doc["text"]


def measure(text: str) -> dict:
    from components.data.ingest import normalize_text

    text = normalize_text(text)
    return {
        "chars": len(text),
        "chrome_markers": sum(text.count(m) for m in CHROME),
        "words_broken_at_line_end": len(re.findall(r"[a-z]-\n[a-z]", text)),
        "page_number_lines": len(re.findall(r"(?m)^\s*Page \d+ of \d+\s*$", text)),
    }


def main(out: Path) -> dict:
    from components.data.ingest import normalize_text

    docs = assemble(out)
    rows, samples = {}, {}
    for path in sorted(p for p in docs.rglob("*") if p.is_file()):
        rel = path.relative_to(docs).as_posix()
        t0 = time.perf_counter()
        after = read_after(path)
        rows[rel] = {"before": measure(read_before(path)), "after": measure(after), "read_s": time.perf_counter() - t0}
        if rel in ("book/ch04-01-what-is-ownership.html", "node/corepack.html", "manuals/manual-errors.pdf"):
            samples[rel] = {"before": normalize_text(read_before(path))[:700], "after": normalize_text(after)[:700]}
    totals = {side: {k: sum(r[side][k] for r in rows.values()) for k in rows[next(iter(rows))][side]}
              for side in ("before", "after")}  # fmt: skip
    print(f"{len(rows)} files in {docs}")
    print("| measure | before | after |\n| --- | --- | --- |")
    for key in totals["before"]:
        print(f"| {key} | {totals['before'][key]:,} | {totals['after'][key]:,} |")
    left = {m: n for m in CHROME if (n := sum(read_after(p).count(m) for p in docs.rglob("*.*")))}
    print(f"chrome markers left after: {left}")
    for rel, s in samples.items():
        print(f"\n--- {rel}: before ---\n{textwrap.shorten(s['before'], 400)}\n--- after ---\n{s['after'][:400]}")
    result = {"files": rows, "totals": totals, "samples": samples, "chrome_left": left, "date": time.strftime("%F")}
    target = Path(__file__).parent / "results" / "messy_folder.json"
    target.write_text(json.dumps(result, indent=1, ensure_ascii=False))
    write_docs(result, Path(__file__).resolve().parents[1] / "docs" / "ingestion.md")
    return result


def write_docs(result: dict, doc: Path) -> None:
    """The before/after table and samples, between the ``messy:table`` markers of docs/ingestion.md."""
    t = result["totals"]
    lines = [
        f"*Generated by `python bench/messy_folder.py` on {result['date']} ({len(result['files'])} files)*",
        "",
        "| in the text of all files | before (tag list; pypdf as is) | after |",
        "| --- | --- | --- |",
        *(f"| {k.replace('_', ' ')} | {t['before'][k]:,} | {t['after'][k]:,} |" for k in t["before"]),
        "",
        f"Chrome markers counted: {', '.join(repr(m) for m in CHROME)}; left after cleaning: "
        f"{result['chrome_left'] or 'none'}.",
        "",
    ]
    for rel, sample in result["samples"].items():
        lines += [f"`{rel}`, before:", "", "```", textwrap.fill(sample["before"][:420], 100), "```", "", "after:", "",
                  "```", textwrap.fill(sample["after"][:420], 100), "```", ""]  # fmt: skip
    from components.io import replace_section

    replace_section(doc, "messy:table", "\n" + "\n".join(lines))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main(Path(sys.argv[1]))
