"""The one error that stops a validation run: a table that cannot be read as its contract says."""

from __future__ import annotations

from pathlib import Path


class TableError(Exception):
    """A whole table is unusable (unreadable file, missing column, uncastable type, wrong encoding).

    Row-level problems never raise this: those rows go to quarantine. The message names the
    file, the column ("-" when the problem is the whole file), what the contract expected,
    what was found, and what to do about it.
    """

    def __init__(self, file: Path | str, column: str | None, expected: str, found: str, fix: str = "") -> None:
        self.file = Path(file)
        self.column = column or "-"
        self.expected = expected
        self.found = found
        self.fix = fix or "fix the file (or the contract, if the contract is wrong) and run validate again"
        super().__init__(str(self))

    def __str__(self) -> str:
        return (
            f"{self.file}: column {self.column}: expected {self.expected}, found {self.found}. What to do: {self.fix}."
        )

    def __reduce__(self):  # keep the attributes across pickling (multiprocessing, pytest-xdist)
        return (type(self), (self.file, self.column, self.expected, self.found, self.fix))
