"""Whether a split can decide anything: dev chooses and test confirms, so neither may be empty or tiny.

:func:`split_problems` reads the ingest report's group counts: a split with no question group is a
refusal (nothing could choose or confirm), one with fewer than ``min_groups`` groups
(``statistics.min_groups``, the figure below which the report calls its intervals untrustworthy)
is a warning. ``ragtune data check`` prints both and exits 1 on a refusal.
"""

from __future__ import annotations

CHECKED = {"dev": "chooses the recommendation", "test": "confirms it"}


def split_problems(report: dict, min_groups: int) -> tuple[list[str], list[str]]:
    """(warnings, refusals) about the dev and test splits of an ingest ``report``; both empty when fine."""
    warnings, refusals = [], []
    if not report.get("questions"):
        return warnings, refusals  # documents only: the questions stage generates them
    for split, role in CHECKED.items():
        groups, questions = report.get(f"groups_{split}", 0), report.get(f"questions_{split}", 0)
        if groups == 0:
            refusals.append(
                f"the {split} split is empty ({report['questions']} questions in all): {split} {role}, so nothing "
                f"could; add questions (or move split.{split} in params/data.yaml)"
            )
        elif groups < min_groups:
            warnings.append(
                f"the {split} split has {groups} question groups ({questions} questions), fewer than "
                f"statistics.min_groups = {min_groups}: its intervals will be too wide to trust"
            )
    return warnings, refusals
