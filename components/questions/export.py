"""The review file: generated pairs as CSV for people to read, fix or delete, and bring back with ``data add --qa``.

One row per pair, in the QA schema (``answers`` as a JSON list, read back as one), plus the passage
the question was written from (ignored on the way back in). Rows keep ``origin: generated``; a QA
file in ``data/raw`` that holds them marks them ``reviewed`` (a person has passed them).
"""

from __future__ import annotations

import csv
import io
import json

COLUMNS = ["id", "question", "answers", "doc_ids", "group", "origin", "chunk_id", "passage"]


def review_csv(records: list[dict]) -> str:
    """The records (as ``generated.jsonl`` holds them) as CSV text with :data:`COLUMNS`."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for r in records:
        writer.writerow(
            [r["id"], r["question"], json.dumps(r["answers"], ensure_ascii=False), json.dumps(r["doc_ids"]),
             r.get("group", ""), r.get("origin", "generated"), r.get("chunk_id", ""), r.get("passage", "")]
        )  # fmt: skip
    return out.getvalue()
