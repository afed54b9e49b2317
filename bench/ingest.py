"""Ingestion throughput on a generated corpus of mixed formats, and the cost of a no-change re-run.

    python bench/ingest.py                 # 10,000 documents (default)
    python bench/ingest.py --docs 2000     # a quicker look

Generates markdown, text, HTML, PDF and JSONL documents (with headings, ~1 % exact duplicates)
and one question per two documents in a temporary folder, then measures:

1. ``ingest`` in process (read, validate, normalise, de-duplicate, split): documents/s and MB/s;
2. each chunker of params/data.yaml on the result;
3. in a temporary git + DVC repo: ``dvc repro --single-item ingest`` (the real stage: DVC hashing,
   ``ragtune ingest``, parquet writes, caching), then the same command again with nothing changed;
4. ``ragtune data add`` of 100 new documents into it (check, merge, swap, ``dvc add``).

Prints a table and writes bench/results/ingest.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from components.config import load_params  # noqa: E402
from components.data.chunking import chunk_documents  # noqa: E402
from components.data.ingest import ingest  # noqa: E402
from components.io import write_json  # noqa: E402
from tests.conftest import make_pdf  # noqa: E402

_VOCABULARY = """data model index query vector token chunk answer question corpus retrieval adapter metric split
train test river mountain city harbour market ledger invoice contract policy engine sensor valve pump signal network"""
WORDS = _VOCABULARY.split()  # noqa: SIM905 (a word list reads better as one string)
FORMATS = ("md", "txt", "html", "pdf", "jsonl")
SHARES = (0.3, 0.2, 0.2, 0.1, 0.2)  # of documents per format; JSONL files hold 100 documents each


def _sentence(rng: random.Random) -> str:
    words = rng.choices(WORDS, k=rng.randint(6, 16))
    return " ".join(words).capitalize() + rng.choice([".", ".", "!", "?"])


def _body(rng: random.Random, i: int) -> tuple[str, list[tuple[str, str]]]:
    """A title and its sections (heading, paragraph text); about 1-2 KB of text."""
    sections = []
    for s in range(rng.randint(2, 4)):
        paragraphs = [" ".join(_sentence(rng) for _ in range(rng.randint(2, 5))) for _ in range(rng.randint(1, 3))]
        sections.append((f"Section {s + 1} of document {i}", "\n\n".join(paragraphs)))
    return f"Document {i}", sections


def _render(fmt: str, title: str, sections: list[tuple[str, str]]) -> bytes | str:
    if fmt == "md":
        return f"# {title}\n\n" + "\n\n".join(f"## {h}\n\n{t}" for h, t in sections)
    if fmt == "txt":
        return f"{title}\n\n" + "\n\n".join(f"{h}\n\n{t}" for h, t in sections)
    if fmt == "html":
        body = "".join(f"<h2>{h}</h2>" + "".join(f"<p>{p}</p>" for p in t.split("\n\n")) for h, t in sections)
        return (
            f"<html><head><title>{title}</title><script>var x = 1;</script></head><body>"
            f"<nav><a href='/'>Home</a></nav><h1>{title}</h1>{body}<footer>(c) bench</footer></body></html>"
        )
    if fmt == "pdf":
        return make_pdf(["\n".join([h, *t.split("\n\n")]) for h, t in sections], title=title)
    return "\n\n".join([f"# {title}", *(f"## {h}\n\n{t}" for h, t in sections)])


def generate(raw: Path, n_docs: int, seed: int = 0, start: int = 0) -> tuple[int, int]:
    """Write ``n_docs`` documents and one question per two documents; return (documents, bytes)."""
    rng = random.Random(seed)
    docs_dir = raw / "docs"
    docs_dir.mkdir(parents=True, exist_ok=True)
    qa, jsonl_rows, written = [], [], 0
    bounds = [round(n_docs * sum(SHARES[: k + 1])) for k in range(len(FORMATS))]
    prev: tuple[str, list[tuple[str, str]]] = ("", [])
    for i in range(start, start + n_docs):
        fmt = FORMATS[next(k for k, b in enumerate(bounds) if i - start < b)]
        title, sections = _body(rng, i)
        if rng.random() < 0.01 and prev[1]:  # an exact duplicate of the previous document's text
            title, sections = prev
        prev = (title, sections)
        doc_id = f"d{i // 1000:02d}/doc{i:06d}"
        if fmt == "jsonl":
            jsonl_rows.append(json.dumps({"id": doc_id, "title": title, "text": _render(fmt, title, sections)}))
        else:
            path = docs_dir / f"{doc_id}.{fmt}"
            path.parent.mkdir(parents=True, exist_ok=True)
            content = _render(fmt, title, sections)
            data = content if isinstance(content, bytes) else content.encode()
            path.write_bytes(data)
            written += len(data)
        if i % 2 == 0:
            qa.append({"id": f"q{i:06d}", "question": f"What does section 1 of document {i} say?",
                       "answer": sections[0][1].split(".")[0], "doc_id": doc_id, "group": f"g{i}"})  # fmt: skip
    for k in range(0, len(jsonl_rows), 100):
        data = ("\n".join(jsonl_rows[k : k + 100]) + "\n").encode()
        (docs_dir / f"batch-{start + k:06d}.jsonl").write_bytes(data)
        written += len(data)
    qa_data = "".join(json.dumps(q) + "\n" for q in qa).encode()
    (raw / "qa.jsonl").write_bytes(qa_data)
    return n_docs, written + len(qa_data)


def _timed(cmd: list[str], cwd: Path, env: dict) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")
    return seconds, proc.stdout + proc.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, default=10_000)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "ingest.json")
    args = parser.parse_args()
    params = load_params(REPO / "params")
    results: dict = {"documents_generated": args.docs, "python": platform.python_version(), "cpus": os.cpu_count()}

    with tempfile.TemporaryDirectory(prefix="ragtune-bench-ingest-") as tmp:
        project = Path(tmp) / "project"
        raw = project / "data" / "raw"
        t0 = time.perf_counter()
        _, size = generate(raw, args.docs)
        results["generate_s"] = time.perf_counter() - t0
        results["corpus_mb"] = size / 1e6

        t0 = time.perf_counter()
        result = ingest(raw, params.data.split, params.data.max_file_mb)
        seconds = time.perf_counter() - t0
        results["ingest_s"] = seconds
        results["ingest_docs_per_s"] = result.report["documents"] / seconds
        results["ingest_mb_per_s"] = result.report["input_bytes"] / 1e6 / seconds
        results["report"] = result.report
        for name, cfg in params.data.chunkers.items():
            t0 = time.perf_counter()
            chunks = chunk_documents(result.documents, cfg)
            results[f"chunk_{name}_s"] = time.perf_counter() - t0
            results[f"chunk_{name}_chunks"] = len(chunks)

        # the real DVC stage, in a throw-away repo holding the code it depends on
        for item in ("params", "components", "flows", "dvc.yaml", ".dvcignore"):
            src = REPO / item
            (shutil.copytree if src.is_dir() else shutil.copy2)(src, project / item)
        env = {
            **os.environ,
            "PYTHONPATH": str(project),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        }
        dvc = [sys.executable, "-m", "dvc"]
        subprocess.run(["git", "init", "-q"], cwd=project, check=True)
        subprocess.run([*dvc, "init", "-q"], cwd=project, check=True, env=env)
        (project / ".dvc" / "config").write_text("[core]\n    analytics = false\n")
        results["dvc_add_raw_s"], _ = _timed([*dvc, "add", "data/raw"], project, env)
        results["dvc_repro_ingest_first_s"], _ = _timed([*dvc, "repro", "--single-item", "ingest"], project, env)
        results["dvc_repro_ingest_unchanged_s"], out = _timed([*dvc, "repro", "--single-item", "ingest"], project, env)
        if "didn't change, skipping" not in out:
            raise RuntimeError(f"expected the unchanged re-run to be skipped:\n{out}")

        new = Path(tmp) / "new"
        generate(new, 100, seed=1, start=args.docs)
        results["data_add_100_s"], out = _timed(
            [
                sys.executable,
                "-m",
                "flows.cli",
                "data",
                "add",
                "--docs",
                str(new / "docs"),
                "--qa",
                str(new / "qa.jsonl"),
            ],
            project,
            env,
        )
        results["data_add_100_output"] = out.strip().splitlines()[-4:]

    write_json(results, args.out)
    rows = [
        ("documents (after de-duplication)", f"{results['report']['documents']:,}"),
        ("corpus size", f"{results['corpus_mb']:.1f} MB"),
        ("ingest in process", f"{results['ingest_s']:.1f} s"),
        ("  documents/s", f"{results['ingest_docs_per_s']:,.0f}"),
        ("  MB/s", f"{results['ingest_mb_per_s']:.2f}"),
        *(
            (f"chunk {n}", f"{results[f'chunk_{n}_s']:.1f} s ({results[f'chunk_{n}_chunks']:,} chunks)")
            for n in params.data.chunkers
        ),  # fmt: skip
        ("dvc add data/raw", f"{results['dvc_add_raw_s']:.1f} s"),
        ("dvc repro ingest (first)", f"{results['dvc_repro_ingest_first_s']:.1f} s"),
        ("dvc repro ingest (unchanged)", f"{results['dvc_repro_ingest_unchanged_s']:.1f} s"),
        ("ragtune data add (100 docs)", f"{results['data_add_100_s']:.1f} s"),
    ]
    width = max(len(k) for k, _ in rows)
    print(f"{'measure':<{width}}  value")
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
