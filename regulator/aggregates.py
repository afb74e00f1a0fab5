"""Regulator views of the class history: one module for the API, the dashboard and the report.

Every function takes plain frames (the class history, the feature panel's outcomes, the audit
log's decisions) and returns a JSON-able dict; nothing here reads settings or files (see
:mod:`regulator.views` for that). Every count of merchants goes through
:mod:`regulator.suppression`: a suppressed cell is ``{"count": null, "suppressed":
true}``, and every value derived from it (share, rate, mean, interval) is null too.

Views:

* :func:`distribution`: merchants per class by sector, province, city, business form,
  urban/rural (one month), or by month. All tables of one month share the suppression of the
  month's class totals, so no table publishes a class total another one hides.
* :func:`outcomes`: observed 12-month default rate per class or grade, with Jeffreys
  intervals and the one-sided Jeffreys test of the mean PD, where outcomes exist.
* :func:`stability`: PSI of the class and score distributions, month over month.
* :func:`migration`: class migration matrix between two months, with new and departed
  merchants, row shares and the upgrade / downgrade / stable shares.
* :func:`concentration`: Herfindahl index of the grade distribution per month.
* :func:`inclusion`: approval, referral and decline rates and average approved limit of the
  service's decisions per segment, relative approval, and mean PD against observed default
  rate per segment.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from core.vocabulary import CLASSES, DECISIONS, PSI_BANDS
from regulator.labels import UNKNOWN, dimension_label, label
from regulator.suppression import (
    Protected,
    ProtectionError,
    augment,
    protect,
    recoverable_lp,
)
from training.evaluate import herfindahl, jeffreys_pvalue, psi, psi_from_counts

DIMENSIONS = ("sector", "province", "city", "business_form", "urban_rural")
INCLUSION_DIMENSIONS = ("urban_rural", "business_form", "sector", "province")
OUTCOMES = ("defaults", "performing")
INTERVAL_LEVEL = 0.95
FILTERS = {"sector": ("sector",), "province": ("province", "city")}
"""Which ``by`` tables each filter may narrow: a filter selects rows of the protected table
(a city belongs to one province), never a new sub-table, which could be differenced against
the full one."""


class ViewError(ValueError):
    """A request the views cannot answer (unknown month, dimension or filter); the message says why."""


class UnknownValue(ViewError):
    """A well-formed request for something the history does not hold (a month, a sector, a province)."""


# -- helpers ----------------------------------------------------------------------------------
def _lazy(frame: pl.DataFrame | pl.LazyFrame) -> pl.LazyFrame:
    return frame.lazy()


def months(history: pl.DataFrame | pl.LazyFrame) -> list[str]:
    """Months in the history, oldest first."""
    return sorted(_lazy(history).select(pl.col("month").unique()).collect()["month"].to_list())


def _pick_month(history, month: str | None) -> str:
    available = months(history)
    if not available:
        raise ViewError("the class history is empty: run `lifecredit score-all`")
    if month is None:
        return available[-1]
    if month not in available:
        raise UnknownValue(f"no month {month} in the class history; available: {available[0]} .. {available[-1]}")
    return month


def _month_range(history, from_month: str | None, to_month: str | None) -> list[str]:
    available = months(history)
    if not available:
        raise ViewError("the class history is empty: run `lifecredit score-all`")
    lo, hi = from_month or available[0], to_month or available[-1]
    if lo > hi:
        raise ViewError(f"from {lo} is after to {hi}")
    chosen = [m for m in available if lo <= m <= hi]
    if not chosen:
        raise UnknownValue(f"no month between {lo} and {hi} in the class history; available: "
                           f"{available[0]} .. {available[-1]}")
    return chosen


def previous_month(month: str) -> str:
    y, m = map(int, month.split("-"))
    y, m = divmod(y * 12 + m - 2, 12)
    return f"{y:04d}-{m + 1:02d}"


def psi_band(value: float | None) -> str | None:
    """``stable`` below 0.10, ``drifting`` from 0.10 to 0.25, ``shifted`` from 0.25."""
    if value is None:
        return None
    return "stable" if value < PSI_BANDS["stable"] else "drifting" if value < PSI_BANDS["shifted"] else "shifted"


def count_grid(frame: pl.DataFrame, row: str, rows: list[str], col: str, cols: list[str],
               unit: str = "merchant_id") -> tuple[np.ndarray, np.ndarray]:
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


def _segment(col: str) -> pl.Expr:
    return pl.col(col).cast(pl.String).fill_null(UNKNOWN)


def _round(v: float | None, digits: int = 6) -> float | None:
    return None if v is None or not np.isfinite(v) else round(float(v), digits)


def _note(k: int) -> dict:
    return {"min_cell_count": k,
            "suppression_en": f"Counts of fewer than {k} merchants are not published, nor any cell from which "
                              "one could be worked out; shares, rates and means of hidden cells are hidden too.",
            "suppression_zh": f"少于{k}户商户的数据不公布，可据以推算出此类数据的单元格亦不公布；"
                              "被隐藏单元格的占比、比率和均值同样不公布。"}


# -- distribution ------------------------------------------------------------------------------
def _month_frame(history, month: str) -> pl.DataFrame:
    return (_lazy(history).filter(pl.col("month") == month)
            .select("merchant_id", "class", *(_segment(d).alias(d) for d in DIMENSIONS)).collect())


def month_tables(history, month: str, k: int) -> tuple[dict[str, tuple[list[str], Protected]], np.ndarray]:
    """Every segment table of one month, protected with one shared suppression of the class totals.

    Each table may need to hide a class total (the last row of its augmented grid); the union
    over tables is forced on all of them until no table adds another, so every table, and the
    by-month view, publishes the same class totals. Returns ``({dimension: (keys, table)}, totals_mask)``.
    """
    frame = _month_frame(history, month)
    grids = {}
    for dim in DIMENSIONS:
        keys = sorted(frame[dim].unique().to_list())
        grids[dim] = (keys, *count_grid(frame, dim, keys, "class", list(CLASSES)))
    shared = np.zeros(len(CLASSES) + 1, dtype=bool)
    while True:
        tables = {}
        for dim, (keys, counts, distinct) in grids.items():
            force = np.zeros(distinct.shape, dtype=bool)
            force[-1] = shared
            tables[dim] = (keys, protect(counts, k, distinct=distinct, force=force))
        union = np.logical_or.reduce([t.suppressed[-1] for _, t in tables.values()])
        if (union == shared).all():
            return tables, shared
        shared = union


def _class_cells(t: Protected, i: int) -> dict:
    n = t.shape[1]
    return {c: t.cell(i, j, share=t.share(i, j, of=(i, n))) for j, c in enumerate(CLASSES)}


def distribution(history, by: str = "sector", month: str | None = None, *, k: int,
                 sector: str | None = None, province: str | None = None,
                 from_month: str | None = None, to_month: str | None = None) -> dict:
    """Merchants per class by ``by`` in ``month`` (default: the latest), or per month (``by="month"``).

    Each row: the segment's total (and its share of all merchants) and, per class, the count
    and the share of the segment in that class. ``sector`` / ``province`` keep the rows of
    that sector / province (``by`` sector, or province and city).
    """
    if by == "month":
        return _distribution_by_month(history, k=k, from_month=from_month, to_month=to_month, sector=sector,
                                      province=province)
    if by not in DIMENSIONS:
        raise ViewError(f"by must be one of {', '.join((*DIMENSIONS, 'month'))}, got {by!r}")
    for name, value in (("sector", sector), ("province", province)):
        if value is not None and by not in FILTERS[name]:
            raise ViewError(f"filter {name} applies to by={' or by='.join(FILTERS[name])}, not by={by}: a "
                            f"{name} x {by} cross-table is not published (it could be differenced against this one)")
    month = _pick_month(history, month)
    tables, _ = month_tables(history, month, k)
    for name, value in (("sector", sector), ("province", province)):
        if value is not None and value not in tables[name][0]:
            raise UnknownValue(f"no merchant of {name} {value!r} in {month}; {name} values that month: "
                               f"{', '.join(tables[name][0])}")
    keys, t = tables[by]
    m, n = t.shape
    rows = []
    for i, key in enumerate(keys):
        if sector is not None and key != sector:
            continue
        if province is not None and key[:len(province)] != province:  # a province, or its cities
            continue
        rows.append({"key": key, "label": label(by, key), "total": t.cell(i, n, share=t.share(i, n, of=(m, n))),
                     "cells": _class_cells(t, i)})
    return {
        "view": "distribution", "by": by, "by_label": dimension_label(by), "month": month,
        "filters": {k_: v for k_, v in (("sector", sector), ("province", province)) if v is not None},
        "classes": [{"class": c, "label": label("class", c)} for c in CLASSES],
        "rows": rows,
        "total": {"total": t.cell(m, n), "cells": _class_cells(t, m)},
        "suppressed_cells": t.n_suppressed,
        **_note(k),
    }


def _distribution_by_month(history, *, k: int, from_month: str | None, to_month: str | None,
                           sector: str | None = None, province: str | None = None) -> dict:
    """Class counts per month: all merchants, or one sector's / province's row of each month's table.

    A filtered row is the very row :func:`distribution` publishes for that month (same
    suppression), so the series adds no new table.
    """
    if sector is not None and province is not None:
        raise ViewError("give sector or province, not both: a sector x province table is not published")
    dim, key = ("sector", sector) if sector is not None else ("province", province) if province is not None \
        else (None, None)
    chosen = _month_range(history, from_month, to_month)
    rows = []
    suppressed = 0
    seen = False
    for month in chosen:
        tables, shared = month_tables(history, month, k)
        if dim is None:
            frame = _month_frame(history, month)
            counts = np.array([[int((frame["class"] == c).sum()) for c in CLASSES]])
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
        rows.append({"key": month, "label": {"en": month, "zh": month},
                     "total": _cell_1d(values, mask, len(CLASSES), share=False), "cells": cells})
    if dim is not None and not seen:
        raise UnknownValue(f"no merchant of {dim} {key!r} in {chosen[0]} .. {chosen[-1]}")
    filters = {n: v for n, v in (("sector", sector), ("province", province)) if v is not None}
    return {
        "view": "distribution", "by": "month", "by_label": dimension_label("month"),
        "from": chosen[0], "to": chosen[-1], "filters": filters,
        "classes": [{"class": c, "label": label("class", c)} for c in CLASSES],
        "rows": rows, "total": None, "suppressed_cells": suppressed, **_note(k),
    }


def _cell_1d(values: np.ndarray, mask: np.ndarray, j: int, share: bool = True) -> dict:
    from regulator.suppression import cell

    total = None if mask[-1] else int(values[-1])
    if not share:
        return cell(values[j], bool(mask[j]))
    s = None if mask[j] or total in (None, 0) else int(values[j]) / total
    return cell(values[j], bool(mask[j]), share=s)


# -- outcomes --------------------------------------------------------------------------------
def _labelled(history, panel, chosen: list[str]) -> pl.DataFrame:
    outcomes = (_lazy(panel).select("merchant_id", pl.col("as_of").cast(pl.Date), pl.col("bad"))
                .filter(pl.col("bad").is_not_null()))
    return (_lazy(history).filter(pl.col("month").is_in(chosen))
            .join(outcomes, on=["merchant_id", "as_of"], how="inner")
            .with_columns(outcome=pl.when(pl.col("bad") == 1).then(pl.lit("defaults")).otherwise(pl.lit("performing")))
            .collect())


def jeffreys_interval(defaults: int, n: int, level: float = INTERVAL_LEVEL) -> tuple[float, float]:
    """Equal-tailed Jeffreys interval for a default rate: Beta(d + 1/2, n - d + 1/2) quantiles.

    By convention the lower end is 0 when there is no default and the upper end 1 when all defaulted.
    """
    from scipy.stats import beta

    a = (1 - level) / 2
    lo = 0.0 if defaults == 0 else float(beta.ppf(a, defaults + 0.5, n - defaults + 0.5))
    hi = 1.0 if defaults == n else float(beta.ppf(1 - a, defaults + 0.5, n - defaults + 0.5))
    return lo, hi


def _outcome_rows(frame: pl.DataFrame, dim: str, keys: list[str], k: int, dim_for_label: str) -> tuple[list[dict], dict, Protected]:
    counts, distinct = count_grid(frame, dim, keys, "outcome", list(OUTCOMES))
    t = protect(counts, k, distinct=distinct)
    mean_pd = dict(frame.group_by(dim).agg(pl.col("pd").mean()).iter_rows()) if frame.height else {}
    m, n = t.shape

    def row(i: int, key: str | None) -> dict:
        total, defaults = t.count(i, n), t.count(i, 0)
        known = total is not None and defaults is not None and total > 0
        interval = jeffreys_interval(defaults, total) if known else (None, None)
        mpd = (frame["pd"].mean() if key is None else mean_pd.get(key)) if total else None
        p = jeffreys_pvalue(total, defaults, mpd) if known and mpd is not None else None
        return {
            "n": t.cell(i, n), "defaults": t.cell(i, 0),
            "default_rate": _round(defaults / total) if known else None,
            "interval": {"low": _round(interval[0]), "high": _round(interval[1]), "level": INTERVAL_LEVEL}
            if known else None,
            "mean_pd": _round(mpd) if total is not None else None,
            "jeffreys_p": _round(p) if p is not None else None,
        }

    rows = [{"key": key, "label": label(dim_for_label, key), **row(i, key)} for i, key in enumerate(keys)]
    return rows, row(m, None), t


def outcomes(history, panel, *, k: int, by: str = "class", from_month: str | None = None,
             to_month: str | None = None, grades: list[str] | None = None) -> dict:
    """Observed 12-month default rate per class (or grade) where outcomes exist, months pooled.

    ``panel``: the feature panel (``merchant_id``, ``as_of``, ``bad``); a history row has an
    outcome when the panel labels the same merchant at the same ``as_of`` (a borrower whose
    12 months are fully observed). ``n`` and ``defaults`` count merchant-months; the small-cell
    threshold applies to distinct merchants. ``jeffreys_p``: one-sided test that the default
    rate exceeds the mean PD (small: PD underestimated).
    """
    if by not in ("class", "grade"):
        raise ViewError(f"by must be class or grade, got {by!r}")
    chosen = _month_range(history, from_month, to_month)
    frame = _labelled(history, panel, chosen)
    with_outcomes = sorted(frame["month"].unique().to_list()) if frame.height else []
    if by == "class":
        keys = list(CLASSES)
    else:
        present = sorted(set(frame["grade"].to_list()) | set(grades or []), key=_grade_order)
        keys = present
    rows, total, t = _outcome_rows(frame, by, keys, k, by)
    return {
        "view": "outcomes", "by": by, "from": chosen[0], "to": chosen[-1], "months_with_outcomes": with_outcomes,
        "definition_en": "Default: 90+ days past due, default or write-off within 12 months after the month's as_of "
                         "date (borrowers whose 12 months are fully observed).",
        "definition_zh": "违约：评估基准日后12个月内逾期90天以上、违约或核销（仅含12个月表现期已完整观察的借款商户）。",
        "rows": rows, "total": total, "suppressed_cells": t.n_suppressed, **_note(k),
    }


def _grade_order(g: str) -> tuple[int, str]:
    return (0, f"{int(g):04d}") if g.isdigit() else (1, g)


# -- stability -------------------------------------------------------------------------------
def stability(history, *, k: int, from_month: str | None = None, to_month: str | None = None) -> dict:
    """PSI of the class distribution and of the score distribution, each month against the month before.

    Score PSI uses 10 equal-count bins of the earlier month's scores (``training.evaluate.psi``);
    bands: below 0.10 stable, 0.10-0.25 drifting, 0.25 and above shifted. A month with fewer
    than k merchants gets no PSI.
    """
    chosen = _month_range(history, from_month, to_month)
    first = previous_month(chosen[0])
    wanted = [first, *chosen] if first in months(history) else chosen
    frame = (_lazy(history).filter(pl.col("month").is_in(wanted)).select("month", "class", "score").collect())
    by_month = {m: part for (m,), part in frame.partition_by("month", as_dict=True).items()}
    rows = []
    for prev, cur in zip(wanted, wanted[1:], strict=False):
        a, b = by_month[prev], by_month[cur]
        ok = a.height >= k and b.height >= k
        counts = [[int((f["class"] == c).sum()) for c in CLASSES] for f in (a, b)]
        psi_class = psi_from_counts(*counts) if ok else None
        psi_score = psi(a["score"].to_numpy().astype(float), b["score"].to_numpy().astype(float)) if ok else None
        rows.append({"month": cur, "previous": prev, "psi_class": _round(psi_class), "band_class": psi_band(psi_class),
                     "psi_score": _round(psi_score), "band_score": psi_band(psi_score)})
    return {
        "view": "stability", "from": chosen[0], "to": chosen[-1], "rows": rows,
        "bands": {"stable_below": PSI_BANDS["stable"], "shifted_from": PSI_BANDS["shifted"]},
        "definition_en": "PSI = sum over bins of (b - a) ln(b / a), a and b the shares of the previous and current "
                         "month; classes are the bins for the class PSI, 10 equal-count score bins of the previous "
                         "month for the score PSI.",
        "definition_zh": "PSI = Σ(本月占比 − 上月占比) × ln(本月占比 / 上月占比)；分类PSI以A–D类为分箱，"
                         "评分PSI以上月评分的10个等频分箱计算。低于0.10为稳定，0.10–0.25为轻微漂移，0.25及以上为显著变化。",
        **_note(k),
    }


# -- migration -------------------------------------------------------------------------------
MIGRATION_ROWS = (*CLASSES, "new")
MIGRATION_COLS = (*CLASSES, "exited")


def migration(history, *, k: int, from_month: str | None = None, to_month: str | None = None) -> dict:
    """Class migration between two months (default: the latest month and the one before it).

    Rows: the class in ``from`` (plus ``new``: merchants scored in ``to`` only); columns: the
    class in ``to`` (plus ``exited``: merchants scored in ``from`` only). Row totals of A-D are
    the ``from`` month's class totals and column totals the ``to`` month's, published exactly
    as the distribution view publishes them. Row shares: each cell over its row total.
    Upgrades (to a lower-risk class), downgrades and stable merchants are shares of the
    merchants scored in both months; they are withheld when publishing them would let a
    hidden cell be worked out.
    """
    to_month = _pick_month(history, to_month)
    from_month = _pick_month(history, from_month or previous_month(to_month))
    if from_month >= to_month:
        raise ViewError(f"from {from_month} must be before to {to_month}")
    lf = _lazy(history)
    a = lf.filter(pl.col("month") == from_month).select("merchant_id", pl.col("class").alias("from_class"))
    b = lf.filter(pl.col("month") == to_month).select("merchant_id", pl.col("class").alias("to_class"))
    pairs = (a.join(b, on="merchant_id", how="full", coalesce=True)
             .with_columns(pl.col("from_class").fill_null("new"), pl.col("to_class").fill_null("exited")).collect())
    counts, _ = count_grid(pairs, "from_class", list(MIGRATION_ROWS), "to_class", list(MIGRATION_COLS))
    t = _protect_migration(history, counts, from_month, to_month, k)
    m, n = t.shape
    rows = []
    for i, key in enumerate(MIGRATION_ROWS):
        cells = {c: t.cell(i, j, share=t.share(i, j, of=(i, n))) for j, c in enumerate(MIGRATION_COLS)}
        rows.append({"key": key, "label": label("migration" if key == "new" else "class", key),
                     "total": t.cell(i, n), "cells": cells})
    col_totals = {c: t.cell(m, j) for j, c in enumerate(MIGRATION_COLS)}
    return {
        "view": "migration", "from": from_month, "to": to_month,
        "rows_are": "class in from (new: not scored in from)", "columns_are": "class in to (exited: not scored in to)",
        "rows": rows, "column_totals": col_totals, "total": t.cell(m, n),
        "summary": _migration_summary(t, k, _month_sums(history, from_month, to_month, k)),
        "suppressed_cells": t.n_suppressed, **_note(k),
    }


def _month_sums(history, from_month: str, to_month: str, k: int) -> list[np.ndarray]:
    """Coefficient grids of the two months' merchant counts (published by the distribution view) on the matrix."""
    (_, from_mask), (_, to_mask) = month_tables(history, from_month, k), month_tables(history, to_month, k)
    shape = (len(MIGRATION_ROWS) + 1, len(MIGRATION_COLS) + 1)
    out = []
    for published, where in ((not from_mask[-1], (slice(0, 4), -1)), (not to_mask[-1], (-1, slice(0, 4)))):
        if published:
            e = np.zeros(shape)
            e[where] = 1
            out.append(e)
    return out


def _protect_migration(history, counts: np.ndarray, from_month: str, to_month: str, k: int) -> Protected:
    """Protect the matrix consistently with what the two months' distribution views publish.

    The A-D margins are those views' class totals: suppressed exactly as there, never
    re-decided here (locked). Those views also publish each month's merchant count, i.e. the
    sum of the A-D row totals and of the A-D column totals: two more equations the final check
    includes. If the matrix cannot be protected under these constraints, every interior count
    is hidden; failing that, everything but the locked margins (zeros too).
    """
    (_, from_mask), (_, to_mask) = month_tables(history, from_month, k), month_tables(history, to_month, k)
    shape = (len(MIGRATION_ROWS) + 1, len(MIGRATION_COLS) + 1)
    force = np.zeros(shape, dtype=bool)
    force[:4, -1] = from_mask[:4]
    force[-1, :4] = to_mask[:4]
    locked = np.zeros(shape, dtype=bool)
    locked[:4, -1] = locked[-1, :4] = True
    extra = _month_sums(history, from_month, to_month, k)
    interior = np.zeros(shape, dtype=bool)
    interior[:-1, :-1] = counts > 0
    everything = ~(locked & ~force)
    for hide in (force, force | interior):
        try:
            return protect(counts, k, force=hide, locked=locked, extra=extra)
        except ProtectionError:
            continue
    return protect(counts, k, force=everything, locked=locked, extra=extra)


def _migration_summary(t: Protected, k: int, month_sums: list[np.ndarray]) -> dict:
    stay = t.values[:4, :4]
    kinds = {"upgrades": np.tril(np.ones((4, 4)), -1), "downgrades": np.triu(np.ones((4, 4)), 1),
             "stable": np.eye(4)}
    both = int(stay.sum())
    counts = {name: int((stay * w).sum()) for name, w in kinds.items()}
    extra = []
    for w in kinds.values():
        e = np.zeros(t.values.shape)
        e[:4, :4] = w
        extra.append(e)
    exposed = recoverable_lp(t.values, t.suppressed, [*month_sums, *extra]) if t.n_suppressed else []
    safe = both >= k and all(v == 0 or v >= k for v in counts.values()) and not exposed
    out = {"merchants_in_both": both if safe else None, "suppressed": not safe}
    for name, v in counts.items():
        out[f"{name}_share"] = _round(v / both) if safe and both else None
    return out


# -- concentration ---------------------------------------------------------------------------
def concentration(history, *, k: int, from_month: str | None = None, to_month: str | None = None,
                  grades: list[str] | None = None) -> dict:
    """Herfindahl index of the grade distribution per month (``training.evaluate.herfindahl``).

    ``grades``: the scale's non-default grades (the normalised index needs their number);
    default: the grades seen. Grade counts are not published here: with the index they
    could pin hidden counts (the distribution view publishes classes).
    """
    chosen = _month_range(history, from_month, to_month)
    frame = _lazy(history).filter(pl.col("month").is_in(chosen)).group_by("month", "grade").len().collect()
    order = sorted(set(grades or frame["grade"].unique().to_list()) - {"D"}, key=_grade_order)
    rows = []
    for month in chosen:
        part = dict(frame.filter(pl.col("month") == month).select("grade", "len").iter_rows())
        counts = [part.get(g, 0) for g in order]
        n = sum(counts)
        hi = herfindahl(counts) if n >= k else None
        rows.append({"month": month, "merchants": n if n >= k else None, "suppressed": n < k,
                     "herfindahl": _round(hi["herfindahl"], 4) if hi else None,
                     "herfindahl_normalised": _round(hi["herfindahl_normalised"], 4) if hi else None})
    return {
        "view": "concentration", "from": chosen[0], "to": chosen[-1], "grades": order, "rows": rows,
        "definition_en": f"Herfindahl index: sum of squared shares of the {len(order)} grades (1/{len(order)} = "
                         f"evenly spread, 1 = all in one grade); normalised: rescaled to 0-1.",
        "definition_zh": f"赫芬达尔指数：{len(order)}个评级占比的平方和（1/{len(order)}为完全分散，1为全部集中于一个评级）；"
                         "标准化指数将其换算到0–1。",
        **_note(k),
    }


# -- inclusive finance -----------------------------------------------------------------------
def inclusion(history, decisions: pl.DataFrame, *, k: int, by: str = "urban_rural", from_month: str | None = None,
              to_month: str | None = None, panel=None) -> dict:
    """Decisions of the service per segment, and mean PD against observed default rate per segment.

    ``decisions``: ``merchant_id``, ``month`` (YYYY-MM of the decision), ``decision``
    (approve / refer / decline), ``approved_limit_fen`` (e.g. :func:`regulator.views.read_decisions`).
    A decision's segment is the merchant's in its latest history month. Rates count decisions;
    the threshold counts distinct merchants. ``approval_ratio``: the segment's approval rate
    over the overall rate (1 = on par). Calibration (``panel`` given): the same segments'
    merchant-months with 12-month outcomes in the period, mean PD beside the observed rate.
    """
    if by not in INCLUSION_DIMENSIONS:
        raise ViewError(f"by must be one of {', '.join(INCLUSION_DIMENSIONS)}, got {by!r}")
    lf = _lazy(history)
    available = months(history)
    if not available:
        raise ViewError("the class history is empty: run `lifecredit score-all`")
    lo, hi = from_month or "0000-00", to_month or "9999-99"
    segments = lf.group_by("merchant_id").agg(_segment(by).sort_by("month").last().alias("segment")).collect()
    dec = (decisions.lazy().filter((pl.col("month") >= lo) & (pl.col("month") <= hi))
           .join(segments.lazy(), on="merchant_id", how="left")
           .with_columns(pl.col("segment").fill_null(UNKNOWN)).collect())
    keys = sorted(dec["segment"].unique().to_list()) if dec.height else []
    counts, distinct = count_grid(dec, "segment", keys, "decision", list(DECISIONS))
    t = protect(counts, k, distinct=distinct)
    m, n = t.shape
    limits = (dict(dec.filter(pl.col("decision") == "approve").group_by("segment")
                   .agg(pl.col("approved_limit_fen").mean()).iter_rows()) if dec.height else {})
    overall_rate = t.share(m, 0, of=(m, n))

    def row(i: int, key: str | None) -> dict:
        rate = t.share(i, 0, of=(i, n))
        limit = (dec.filter(pl.col("decision") == "approve")["approved_limit_fen"].mean() if key is None
                 else limits.get(key))
        return {
            "decisions": t.cell(i, n),
            "cells": {d: t.cell(i, j, rate=_round(t.share(i, j, of=(i, n)))) for j, d in enumerate(DECISIONS)},
            "approval_rate": _round(rate),
            "approval_ratio": _round(rate / overall_rate) if rate is not None and overall_rate else None,
            "average_approved_limit_fen": (round(float(limit)) if limit is not None and t.count(i, 0) else None),
        }

    rows = [{"key": key, "label": label(by, key), **row(i, key)} for i, key in enumerate(keys)]
    out = {
        "view": "inclusion", "by": by, "by_label": dimension_label(by), "from": from_month, "to": to_month,
        "rows": rows, "total": row(m, None), "suppressed_cells": t.n_suppressed, "calibration": None, **_note(k),
    }
    if panel is not None:
        chosen = [mo for mo in available if lo <= mo <= hi]
        labelled = _labelled(history, panel, chosen).with_columns(_segment(by).alias(by)) if chosen else None
        if labelled is not None and labelled.height:
            seg_keys = sorted(labelled[by].unique().to_list())
            cal_rows, cal_total, ct = _outcome_rows(labelled, by, seg_keys, k, by)
            for r in [*cal_rows, cal_total]:
                r["pd_minus_observed"] = (_round(r["mean_pd"] - r["default_rate"])
                                          if r["mean_pd"] is not None and r["default_rate"] is not None else None)
            out["calibration"] = {"rows": cal_rows, "total": cal_total, "suppressed_cells": ct.n_suppressed,
                                  "months_with_outcomes": sorted(labelled["month"].unique().to_list())}
    return out
