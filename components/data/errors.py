"""The two exceptions of input validation, shared by the readers and the ingest checks."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class InputError:
    """One problem in the input, precise enough to fix without a debugger.

    ``line`` is the line of a text file, the record of a CSV file or the page of a PDF (1-based);
    None when the problem concerns the whole file.
    """

    file: str
    line: int | None
    field: str | None
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


class DataValidationError(ValueError):
    """The input has problems; ``errors`` lists every one of them, grouped by file."""

    def __init__(self, errors: list[InputError], context: str = "the input"):
        self.errors = sorted(errors, key=lambda e: (e.file, e.line or 0))
        self.context = context
        shown = "\n".join(f"  {e}" for e in self.errors[:50])
        more = f"\n  ... and {len(errors) - 50} more" if len(errors) > 50 else ""
        super().__init__(f"{len(errors)} problem(s) in {context}:\n{shown}{more}")
