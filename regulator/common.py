"""What every aggregate view shares: its errors, dimensions, month picking, count grids and suppression note.

Pure functions of frames; the views in :mod:`regulator.aggregates` build on them.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from core.vocabulary import CLASSES
from regulator.labels import UNKNOWN

DIMENSIONS = ("sector", "province", "city", "business_form", "urban_rural")
INCLUSION_DIMENSIONS = ("urban_rural", "business_form", "sector", "province")
EMPTY_HISTORY = "the class history is empty: run `lifecredit score-all`"


class ViewError(ValueError):
    """A request the views cannot answer (unknown month, dimension or filter); the message says why."""


class UnknownValue(ViewError):
    """A well-formed request for something the history does not hold (a month, a sector, a province)."""


def lazy(frame: pl.DataFrame | pl.LazyFrame) -> pl.LazyFrame:
    return frame.lazy()


def months(history: pl.DataFrame | pl.LazyFrame) -> list[str]:
    """Months in the history, oldest first."""
    return sorted(lazy(history).select(pl.col("month").unique()).collect()["month"].to_list())


def available_months(history) -> list[str]:
    """:func:`months`, raising :class:`ViewError` when the history holds none."""
    available = months(history)
    if not available:
        raise ViewError(EMPTY_HISTORY)
    return available


def pick_month(history, month: str | None) -> str:
    """``month`` if the history holds it, the latest month when None."""
    available = available_months(history)
    if month is None:
        return available[-1]
    if month not in available:
        raise UnknownValue(f"no month {month} in the class history; available: {available[0]} .. {available[-1]}")
    return month


def month_range(history, from_month: str | None, to_month: str | None) -> list[str]:
    """The history's months from ``from_month`` to ``to_month`` (default: all of them)."""
    available = available_months(history)
    lo, hi = from_month or available[0], to_month or available[-1]
    if lo > hi:
        raise ViewError(f"from {lo} is after to {hi}")
    chosen = [m for m in available if lo <= m <= hi]
    if not chosen:
        raise UnknownValue(
            f"no month between {lo} and {hi} in the class history; available: {available[0]} .. {available[-1]}"
        )
    return chosen


def previous_month(month: str) -> str:
    y, m = map(int, month.split("-"))
    y, m = divmod(y * 12 + m - 2, 12)
    return f"{y:04d}-{m + 1:02d}"


def grade_order(g: str) -> tuple[int, str]:
    """Sort key of grades: numbered grades in number order, then the others (the default grade)."""
    return (0, f"{int(g):04d}") if g.isdigit() else (1, g)


def count_grid(
    frame: pl.DataFrame, row: str, rows: list[str], col: str, cols: list[str], unit: str = "merchant_id"
) -> tuple[np.ndarray, np.ndarray]:
    """Counts of ``frame`` rows per (row, col) value, and distinct ``unit`` per augmented cell.

    Returns the m x n interior counts and the (m + 1) x (n + 1) augmented grid of distinct
    units (the threshold applies to merchants, not to merchant-months or decisions).
    """
    ri = {v: i for i, v in enumerate(rows)}
    ci = {v: j for j, v in enumerate(cols)}
    counts = np.zeros((len(rows), len(cols)), dtype=np.int64)
    distinct = np.zeros((len(rows) + 1, len(cols) + 1), dtype=np.int64)
    if frame.height == 0:
        return counts, distinct
    inner = frame.group_by(row, col).agg(pl.len().alias("n"), pl.col(unit).n_unique().alias("d"))
    for r, c, n, d in inner.iter_rows():
        counts[ri[r], ci[c]] = n
        distinct[ri[r], ci[c]] = d
    for r, d in frame.group_by(row).agg(pl.col(unit).n_unique()).iter_rows():
        distinct[ri[r], -1] = d
    for c, d in frame.group_by(col).agg(pl.col(unit).n_unique()).iter_rows():
        distinct[-1, ci[c]] = d
    distinct[-1, -1] = frame[unit].n_unique()
    return counts, distinct


def class_counts(frame: pl.DataFrame) -> list[int]:
    """Merchants of ``frame`` per class, in :data:`~core.vocabulary.CLASSES` order."""
    return [int((frame["class"] == c).sum()) for c in CLASSES]


def segment(col: str) -> pl.Expr:
    """A segment column as text, a missing value as ``unknown`` (so it is counted, not dropped)."""
    return pl.col(col).cast(pl.String).fill_null(UNKNOWN)


def rounded(v: float | None, digits: int = 6) -> float | None:
    """``v`` rounded for JSON; None for a missing or non-finite value."""
    return None if v is None or not np.isfinite(v) else round(float(v), digits)


def suppression_note(k: int) -> dict:
    """The threshold and the bilingual sentence every view carries about hidden cells."""
    return {
        "min_cell_count": k,
        "suppression_en": f"Counts of fewer than {k} merchants are not published, nor any cell from which "
        "one could be worked out; shares, rates and means of hidden cells are hidden too.",
        "suppression_zh": f"少于{k}户商户的数据不公布，可据以推算出此类数据的单元格亦不公布；"
        "被隐藏单元格的占比、比率和均值同样不公布。",
    }
