"""Where the merchants are: class distribution per segment or per month, and grade concentration.

Every table of one month shares the suppression of the month's class totals (:func:`month_tables`), and
its province and city tables are protected together, since a province is the sum of its prefectures.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from core.vocabulary import CLASSES
from regulator.common import (
    DIMENSIONS,
    UnknownValue,
    ViewError,
    class_counts,
    count_grid,
    grade_order,
    lazy,
    month_range,
    pick_month,
    rounded,
    segment,
    suppression_note,
)
from regulator.joint_suppression import joint_additions
from regulator.labels import dimension_label, label
from regulator.suppression import Protected, augment, cell, protect
from training.evaluate import herfindahl

FILTERS = {"sector": ("sector",), "province": ("province", "city")}
"""Which ``by`` tables each filter may narrow: a filter selects rows of the protected table
(a city belongs to one province), never a new sub-table, which could be differenced against
the full one."""
DEFAULT_GRADE = "D"
"""The master scale's grade of an observed default: no share of the live grades."""


def _month_frame(history, month: str) -> pl.DataFrame:
    return (
        lazy(history)
        .filter(pl.col("month") == month)
        .select("merchant_id", "class", *(segment(d).alias(d) for d in DIMENSIONS))
        .collect()
    )


def month_tables(history, month: str, k: int) -> tuple[dict[str, tuple[list[str], Protected]], np.ndarray]:
    """Every segment table of one month, protected with one shared suppression of the class totals.

    Each table may need to hide a class total (the last row of its augmented grid); the union
    over tables is forced on all of them until no table adds another, so every table, and the
    by-month view, publishes the same class totals. The province and city tables are then checked
    together (:func:`regulator.joint_suppression.joint_additions`: a province is the sum of its
    prefectures) and hide more until no small cell follows from both. Returns
    ``({dimension: (keys, table)}, totals_mask)``.
    """
    frame = _month_frame(history, month)
    grids = {}
    for dim in DIMENSIONS:
        keys = sorted(frame[dim].unique().to_list())
        grids[dim] = (keys, *count_grid(frame, dim, keys, "class", list(CLASSES)))
    pairs = _pairs(frame)
    shared = np.zeros(len(CLASSES) + 1, dtype=bool)
    more = {dim: np.zeros(distinct.shape, dtype=bool) for dim, (_, _, distinct) in grids.items()}
    while True:
        tables = {}
        for dim, (keys, counts, distinct) in grids.items():
            force = more[dim].copy()
            force[-1] = shared
            tables[dim] = (keys, protect(counts, k, distinct=distinct, force=force))
        union = np.logical_or.reduce([t.suppressed[-1] for _, t in tables.values()])
        if not (union == shared).all():
            shared = union
            continue
        add = joint_additions(pairs, tables["province"][0], tables["province"][1], tables["city"][0], tables["city"][1])
        if add is None:
            return tables, shared
        for dim, extra in zip(("province", "city"), add, strict=True):  # keep what is hidden, hide more
            more[dim] = tables[dim][1].suppressed | extra


def _pairs(frame: pl.DataFrame) -> list[tuple[str, str, np.ndarray]]:
    """Merchants per class of each (province, prefecture) in the month: how the two levels nest."""
    counts = frame.group_by("province", "city", "class").len()
    out: dict[tuple[str, str], np.ndarray] = {}
    for p, c, cls, n in counts.iter_rows():
        out.setdefault((p, c), np.zeros(len(CLASSES), dtype=np.int64))[CLASSES.index(cls)] = n
    return [(p, c, v) for (p, c), v in sorted(out.items())]


def _class_cells(t: Protected, i: int) -> dict:
    n = t.shape[1]
    return {c: t.cell(i, j, share=t.share(i, j, of=(i, n))) for j, c in enumerate(CLASSES)}


def _class_labels() -> list[dict]:
    return [{"class": c, "label": label("class", c)} for c in CLASSES]


def _filters(sector: str | None, province: str | None) -> dict:
    return {name: v for name, v in (("sector", sector), ("province", province)) if v is not None}


def distribution(
    history,
    by: str = "sector",
    month: str | None = None,
    *,
    k: int,
    sector: str | None = None,
    province: str | None = None,
    from_month: str | None = None,
    to_month: str | None = None,
) -> dict:
    """Merchants per class by ``by`` in ``month`` (default: the latest), or per month (``by="month"``).

    Each row: the segment's total (and its share of all merchants) and, per class, the count
    and the share of the segment in that class. ``sector`` / ``province`` keep the rows of
    that sector / province (``by`` sector, or province and city).
    """
    if by == "month":
        return _distribution_by_month(
            history, k=k, from_month=from_month, to_month=to_month, sector=sector, province=province
        )
    if by not in DIMENSIONS:
        raise ViewError(f"by must be one of {', '.join((*DIMENSIONS, 'month'))}, got {by!r}")
    filters = _filters(sector, province)
    for name in filters:
        if by not in FILTERS[name]:
            raise ViewError(
                f"filter {name} applies to by={' or by='.join(FILTERS[name])}, not by={by}: a "
                f"{name} x {by} cross-table is not published (it could be differenced against this one)"
            )
    month = pick_month(history, month)
    tables, _ = month_tables(history, month, k)
    for name, value in filters.items():
        if value not in tables[name][0]:
            raise UnknownValue(
                f"no merchant of {name} {value!r} in {month}; {name} values that month: {', '.join(tables[name][0])}"
            )
    keys, t = tables[by]
    m, n = t.shape
    rows = []
    for i, key in enumerate(keys):
        if sector is not None and key != sector:
            continue
        if province is not None and key[: len(province)] != province:  # a province, or its cities
            continue
        rows.append(
            {
                "key": key,
                "label": label(by, key),
                "total": t.cell(i, n, share=t.share(i, n, of=(m, n))),
                "cells": _class_cells(t, i),
            }
        )
    return {
        "view": "distribution",
        "by": by,
        "by_label": dimension_label(by),
        "month": month,
        "filters": filters,
        "classes": _class_labels(),
        "rows": rows,
        "total": {"total": t.cell(m, n), "cells": _class_cells(t, m)},
        "suppressed_cells": t.n_suppressed,
        **suppression_note(k),
    }


def _distribution_by_month(
    history,
    *,
    k: int,
    from_month: str | None,
    to_month: str | None,
    sector: str | None = None,
    province: str | None = None,
) -> dict:
    """Class counts per month: all merchants, or one sector's / province's row of each month's table.

    A filtered row is the very row :func:`distribution` publishes for that month (same
    suppression), so the series adds no new table.
    """
    if sector is not None and province is not None:
        raise ViewError("give sector or province, not both: a sector x province table is not published")
    dim, key = (
        ("sector", sector) if sector is not None else ("province", province) if province is not None else (None, None)
    )
    chosen = month_range(history, from_month, to_month)
    rows = []
    suppressed = 0
    seen = False
    for month in chosen:
        tables, shared = month_tables(history, month, k)
        if dim is None:
            counts = np.array([class_counts(_month_frame(history, month))])
            values, mask = augment(counts)[-1], shared  # class totals and the month's total
        else:
            keys, t = tables[dim]
            i = keys.index(key) if key in keys else None
            seen |= i is not None
            if i is None:  # not present this month: nothing to publish, nothing to hide
                values, mask = np.zeros(len(CLASSES) + 1, dtype=np.int64), np.zeros(len(CLASSES) + 1, dtype=bool)
            else:
                values, mask = t.values[i], t.suppressed[i]
        cells = {c: _cell_1d(values, mask, j) for j, c in enumerate(CLASSES)}
        suppressed += int(mask.sum())
        rows.append(
            {
                "key": month,
                "label": {"en": month, "zh": month},
                "total": _cell_1d(values, mask, len(CLASSES), share=False),
                "cells": cells,
            }
        )
    if dim is not None and not seen:
        raise UnknownValue(f"no merchant of {dim} {key!r} in {chosen[0]} .. {chosen[-1]}")
    return {
        "view": "distribution",
        "by": "month",
        "by_label": dimension_label("month"),
        "from": chosen[0],
        "to": chosen[-1],
        "filters": _filters(sector, province),
        "classes": _class_labels(),
        "rows": rows,
        "total": None,
        "suppressed_cells": suppressed,
        **suppression_note(k),
    }


def _cell_1d(values: np.ndarray, mask: np.ndarray, j: int, share: bool = True) -> dict:
    total = None if mask[-1] else int(values[-1])
    if not share:
        return cell(values[j], bool(mask[j]))
    s = None if mask[j] or total in (None, 0) else int(values[j]) / total
    return cell(values[j], bool(mask[j]), share=s)


def concentration(
    history, *, k: int, from_month: str | None = None, to_month: str | None = None, grades: list[str] | None = None
) -> dict:
    """Herfindahl index of the grade distribution per month (``training.evaluate.herfindahl``).

    ``grades``: the scale's non-default grades (the normalised index needs their number);
    default: the grades seen. Grade counts are not published here: with the index they
    could pin hidden counts (the distribution view publishes classes).
    """
    chosen = month_range(history, from_month, to_month)
    frame = lazy(history).filter(pl.col("month").is_in(chosen)).group_by("month", "grade").len().collect()
    order = sorted(set(grades or frame["grade"].unique().to_list()) - {DEFAULT_GRADE}, key=grade_order)
    rows = []
    for month in chosen:
        part = dict(frame.filter(pl.col("month") == month).select("grade", "len").iter_rows())
        counts = [part.get(g, 0) for g in order]
        n = sum(counts)
        hi = herfindahl(counts) if n >= k else None
        rows.append(
            {
                "month": month,
                "merchants": n if n >= k else None,
                "suppressed": n < k,
                "herfindahl": rounded(hi["herfindahl"], 4) if hi else None,
                "herfindahl_normalised": rounded(hi["herfindahl_normalised"], 4) if hi else None,
            }
        )
    return {
        "view": "concentration",
        "from": chosen[0],
        "to": chosen[-1],
        "grades": order,
        "rows": rows,
        "definition_en": f"Herfindahl index: sum of squared shares of the {len(order)} grades (1/{len(order)} = "
        f"evenly spread, 1 = all in one grade); normalised: rescaled to 0-1.",
        "definition_zh": f"赫芬达尔指数：{len(order)}个评级占比的平方和（1/{len(order)}为完全分散，1为全部集中于一个评级）；"
        "标准化指数将其换算到0–1。",
        **suppression_note(k),
    }
