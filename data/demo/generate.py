"""Generate the bundled demo set from pycountry's ISO databases.

The demo corpus is one document per ISO 3166-1 country and one per ISO 4217 currency, rendered
as prose from the fields of the databases that ship inside the PyPI package ``pycountry``
(LGPL-2.1). Questions are generated from the same fields, each with its accepted answers, the id
of its supporting document and a ``group`` naming the fact it asks about: paraphrases of one fact
share a group, so a deterministic split keeps them together.

Run it (once, offline) with the pinned version to reproduce ``data/demo`` byte for byte::

    pip install pycountry==26.2.16
    python data/demo/generate.py --out data/demo
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import random
from collections import defaultdict
from pathlib import Path

import pycountry

PYCOUNTRY_VERSION = "26.2.16"
SEED = 20261126
MAX_SUBDIVISIONS_LISTED = 6


def _country_name(country) -> str:
    return getattr(country, "common_name", None) or country.name


def _plural(word: str, n: int) -> str:
    word = word.lower()
    if n == 1:
        return word
    if word.endswith("y") and not word.endswith(("ay", "ey", "oy")):
        return word[:-1] + "ies"
    if word.endswith(("s", "sh", "ch", "x")):
        return word + "es"
    return word + "s"


def country_document(country, subdivisions: list) -> dict:
    """One prose document about a country, from its ISO 3166-1 and ISO 3166-2 records."""
    name = _country_name(country)
    paragraphs = [f"# {name}"]
    intro = f"{name} is a country listed in ISO 3166-1, the international standard for country codes."
    official = getattr(country, "official_name", None)
    if official and official != name:
        intro += f" Its official name is the {official}."
    intro += (
        f" ISO 3166-1 assigns {name} the alpha-2 code {country.alpha_2}, "
        f"the alpha-3 code {country.alpha_3} and the numeric code {country.numeric}."
    )
    paragraphs.append(intro)
    top = [s for s in subdivisions if getattr(s, "parent_code", None) is None]
    if top:
        by_type: dict[str, list] = defaultdict(list)
        for sub in top:
            by_type[sub.type].append(sub)
        kinds = ", ".join(f"{len(v)} {_plural(k, len(v))}" for k, v in sorted(by_type.items()))
        listed = sorted(top, key=lambda s: s.code)[:MAX_SUBDIVISIONS_LISTED]
        examples = ", ".join(f"{s.name} ({s.code})" for s in listed)
        paragraphs.append(
            f"Under ISO 3166-2, {name} has {len(top)} first-level subdivisions: {kinds}. Among them are {examples}."
        )
    else:
        paragraphs.append(f"ISO 3166-2 lists no subdivisions for {name}.")
    return {"id": f"country/{country.alpha_2}", "title": name, "text": "\n\n".join(paragraphs)}


def currency_document(currency) -> dict:
    """One prose document about a currency, from its ISO 4217 record."""
    text = (
        f"# {currency.name}\n\n"
        f"The {currency.name} is a currency listed in ISO 4217, the international standard for "
        f"currency codes. ISO 4217 assigns the {currency.name} the alphabetic code "
        f"{currency.alpha_3} and the numeric code {currency.numeric}."
    )
    return {"id": f"currency/{currency.alpha_3}", "title": currency.name, "text": text}


def _numeric_answers(code: str) -> list[str]:
    stripped = code.lstrip("0") or "0"
    return [code] if stripped == code else [code, stripped]


def country_questions(country, subdivisions: list) -> list[dict]:
    """Every question the country document answers, paraphrases sharing a group."""
    name = _country_name(country)
    doc = f"country/{country.alpha_2}"
    facts = [
        (
            "alpha3",
            [country.alpha_3],
            [
                f"What is the ISO 3166-1 alpha-3 code of {name}?",
                f"Which three-letter ISO 3166-1 code is assigned to {name}?",
            ],
        ),
        (
            "numeric",
            _numeric_answers(country.numeric),
            [
                f"What is the ISO 3166-1 numeric code of {name}?",
                f"Which three-digit numeric code does ISO 3166-1 give {name}?",
            ],
        ),
    ]
    official = getattr(country, "official_name", None)
    if official and official != name:
        facts.append(("official", [official], [f"What is the official name of {name}?"]))
    top = sorted((s for s in subdivisions if getattr(s, "parent_code", None) is None), key=lambda s: s.code)
    for sub in top[:MAX_SUBDIVISIONS_LISTED][:1]:
        facts.append(
            (
                f"sub-{sub.code}",
                [sub.code],
                [
                    f"What is the ISO 3166-2 code of {sub.name}, a {sub.type.lower()} of {name}?",
                ],
            )
        )
    return [
        {"group": f"{doc}#{fact}", "question": q, "answers": answers, "doc_ids": [doc]}
        for fact, answers, questions in facts
        for q in questions
    ]


def currency_questions(currency) -> list[dict]:
    doc = f"currency/{currency.alpha_3}"
    facts = [
        (
            "alpha3",
            [currency.alpha_3],
            [
                f"What is the ISO 4217 code of the {currency.name}?",
                f"Which three-letter ISO 4217 code does the {currency.name} have?",
            ],
        ),
        (
            "numeric",
            _numeric_answers(currency.numeric),
            [
                f"What is the ISO 4217 numeric code of the {currency.name}?",
            ],
        ),
    ]
    return [
        {"group": f"{doc}#{fact}", "question": q, "answers": answers, "doc_ids": [doc]}
        for fact, answers, questions in facts
        for q in questions
    ]


def sample_groups(questions: list[dict], n_groups: int, rng: random.Random) -> list[dict]:
    """Keep ``n_groups`` whole facts (all paraphrases of each), chosen at random."""
    groups = sorted({q["group"] for q in questions})
    kept = set(rng.sample(groups, min(n_groups, len(groups))))
    return [q for q in questions if q["group"] in kept]


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent)
    parser.add_argument("--groups", type=int, default=330, help="facts to sample into the QA set")
    args = parser.parse_args()
    installed = importlib.metadata.version("pycountry")
    if installed != PYCOUNTRY_VERSION:
        raise SystemExit(f"pycountry {installed} is installed; the demo set is pinned to {PYCOUNTRY_VERSION}")
    rng = random.Random(SEED)
    subdivisions: dict[str, list] = defaultdict(list)
    for sub in pycountry.subdivisions:
        subdivisions[sub.country_code].append(sub)
    countries = sorted(pycountry.countries, key=lambda c: c.alpha_2)
    currencies = sorted(pycountry.currencies, key=lambda c: c.alpha_3)
    docs = [country_document(c, subdivisions[c.alpha_2]) for c in countries]
    docs += [currency_document(c) for c in currencies]
    questions = [q for c in countries for q in country_questions(c, subdivisions[c.alpha_2])]
    questions += [q for c in currencies for q in currency_questions(c)]
    questions = sample_groups(questions, args.groups, rng)
    for i, q in enumerate(questions):
        q["id"] = f"q{i:04d}"
    write_jsonl(args.out / "docs" / "countries.jsonl", [d for d in docs if d["id"].startswith("country/")])
    write_jsonl(args.out / "docs" / "currencies.jsonl", [d for d in docs if d["id"].startswith("currency/")])
    write_jsonl(args.out / "qa.jsonl", questions)
    print(f"{len(docs)} documents, {len(questions)} questions, {len({q['group'] for q in questions})} facts")


if __name__ == "__main__":
    main()
