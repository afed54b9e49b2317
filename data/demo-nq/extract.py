"""Extract the real-questions demo set from BIG-bench's Natural Questions knowledge-conflict task.

Source: the PyPI sdist ``bigbench==1.0.0`` (342 MB; read one member with tarfile, nothing
installed), member ``bigbench/benchmark_tasks/contextual_parametric_knowledge_conflicts/task.json``:
17,528 Natural Questions, each with a Wikipedia passage in which the answer was replaced by another
entity (``target``); the key of ``target_scores`` scored 0 is the original answer. Replacing the
substitute by the original restores the real passage.

Writes, from a fixed seed:

- ``docs/passages.jsonl`` and ``qa.jsonl``: the real passages and their questions (the demo);
- ``changed/docs/passages.jsonl`` and ``changed/qa.jsonl``: the same documents as they read in the
  task (the answer replaced), with the substitute as the answer: "the facts changed", for the
  knowledge-update drill, since the base model already knows many real facts.

    pip download --no-deps --no-binary :all: bigbench==1.0.0 -d /tmp   # or fetch the sdist from PyPI
    python data/demo-nq/extract.py /tmp/bigbench-1.0.0.tar.gz --out data/demo-nq --questions 300

Natural Questions is CC BY-SA 3.0 (Kwiatkowski et al. 2019); BIG-bench is Apache-2.0 (Srivastava
et al. 2022). The task's canary string is kept in README.md: this data must not enter training corpora.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import tarfile
from pathlib import Path

MEMBER = "bigbench-1.0.0/bigbench/benchmark_tasks/contextual_parametric_knowledge_conflicts/task.json"


def detokenize(text: str) -> str:
    """Undo the task's space tokenisation where it is unambiguous ("France 's" -> "France's", "( x )" -> "(x)")."""
    text = re.sub(r" ([.,;:!?%)\]])", r"\1", text)
    text = re.sub(r"([(\[]) ", r"\1", text)
    text = re.sub(r" (n't|'s|'re|'ve|'ll|'d|'m)\b", r"\1", text)
    text = text.replace("`` ", '"').replace(" ''", '"')
    return re.sub(r"\s+", " ", text).strip()


def parse(example: dict) -> dict | None:
    """Question, restored passage, counterfactual passage, original and substitute answers; None if unusable."""
    head, _, context = example["input"].partition("\nContext: ")
    question = head.replace("Question:", "").strip()
    substitute = example["target"]
    originals = [k for k, v in example["target_scores"].items() if v == 0]
    if not context or len(originals) != 1 or substitute not in context:
        return None
    original = originals[0]
    return {
        "question": detokenize(question).rstrip("?") + "?",
        "real": detokenize(context.replace(substitute, original)),
        "changed": detokenize(context),
        "answer": detokenize(original),
        "substitute": detokenize(substitute),
    }


def select(examples: list[dict], n: int, seed: int, max_words: int) -> list[dict]:
    """``n`` usable examples by a seeded shuffle: one per passage, passages up to ``max_words`` words,
    answers of at most 6 words that appear in the restored passage."""
    rng = random.Random(seed)
    order = list(range(len(examples)))
    rng.shuffle(order)
    chosen, seen = [], set()
    for i in order:
        item = parse(examples[i])
        if item is None or len(item["real"].split()) > max_words or len(item["answer"].split()) > 6:
            continue
        if item["answer"] not in item["real"] or item["real"] in seen:
            continue
        seen.add(item["real"])
        chosen.append(item)
        if len(chosen) == n:
            break
    return chosen


def write(items: list[dict], out: Path, passage: str, answer: str) -> None:
    (out / "docs").mkdir(parents=True, exist_ok=True)
    with (
        (out / "docs" / "passages.jsonl").open("w", encoding="utf-8") as docs,
        (out / "qa.jsonl").open("w", encoding="utf-8") as qa,
    ):
        for item in items:
            doc_id = "nq/" + hashlib.sha256(item["real"].encode()).hexdigest()[:12]
            title = " ".join(item[passage].split()[:8])
            docs.write(json.dumps({"id": doc_id, "title": title, "text": item[passage]}, ensure_ascii=False) + "\n")
            qa_id = "nq-" + hashlib.sha256(item["question"].encode()).hexdigest()[:12]
            row = {"id": qa_id, "question": item["question"], "answers": [item[answer]], "doc_ids": [doc_id]}
            qa.write(json.dumps(row, ensure_ascii=False) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("archive", type=Path, help="bigbench-1.0.0.tar.gz (the PyPI sdist)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    parser.add_argument("--questions", type=int, default=300)
    parser.add_argument("--seed", type=int, default=20261130)
    parser.add_argument("--max-words", type=int, default=180)
    args = parser.parse_args()
    with tarfile.open(args.archive) as tar:
        task = json.load(tar.extractfile(MEMBER))
    items = select(task["examples"], args.questions, args.seed, args.max_words)
    write(items, args.out, "real", "answer")
    write(items, args.out / "changed", "changed", "substitute")
    print(f"{len(items)} questions and passages -> {args.out} (and the changed facts under {args.out / 'changed'})")


if __name__ == "__main__":
    main()
