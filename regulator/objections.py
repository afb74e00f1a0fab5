"""Merchants' objections (异议) and credit-repair requests (信用修复) as regulators see them.

Per month of receipt, or per sector or province for one month of receipt: objections received,
resolved, corrected, upheld, open and overdue (open past the 20-day deadline of
:mod:`core.objections`, or resolved after it), resolved in time and open in time, the median
days to resolve and the share resolved within the deadline. ``kind`` narrows to objections or
to repair requests. A merchant's sector and province are those of its latest month in the class
history (as :func:`regulator.inclusion.inclusion` places decisions): every regulator table then
segments a merchant alike, whatever the serving snapshot says today; a merchant the history
does not hold is ``unknown``, counted rather than dropped.

**Protection.** Each published table is two protected grids over the same rows
(:func:`regulator.suppression.protect`, threshold on distinct merchants): *outcome* (corrected,
upheld, open) and *deadline* (resolved in time, overdue, open in time), both adding up to
*received*; each for both kinds together and for each kind. These six grids are linked (one
received column, and all = objection + repair cell by cell), so hiding follows the links until
no link gives a hidden cell away; then an exact check (:func:`exposed`) solves for every hidden
small cell from all the table publishes, with non-negativity, over the underlying counts (per
row: kind x corrected / upheld / open x in time / late). While it pins one, a published cell
its bounds rest on is hidden too. *Resolved* is published only where the grids already give it
away and it counts no small number of merchants; the median days and the share resolved in time
only where it is.
The sector table, the province table and the month's row of the by-month view publish the same
month totals: they share one suppression of them (as :func:`regulator.distribution.month_tables`
does for class totals), and the by-month view publishes no total over months, so no table can
be differenced against a part of itself.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import polars as pl

from core.objections import DEADLINE_DAYS, KINDS, Objection
from regulator.common import ViewError, count_grid, lazy, rounded, segment, suppression_note
from regulator.labels import UNKNOWN, dimension_label, label
from regulator.suppression import Protected, cell, protect

OBJECTION_DIMENSIONS = ("month", "sector", "province")
SEGMENTS = ("sector", "province")
SCOPES = ("all", *KINDS)
"""The kinds a table counts: both (``all``), or one."""
FINE = ("corrected_in_time", "corrected_late", "upheld_in_time", "upheld_late", "open_in_time", "open_overdue")
"""Where an objection stands (as of ``now``): every published count is a sum of these."""
GRIDS: dict[str, dict[str, tuple[int, ...]]] = {
    "outcome": {"corrected": (0, 1), "upheld": (2, 3), "open": (4, 5)},
    "deadline": {"resolved_in_time": (0, 2), "overdue": (1, 3, 5), "open_in_time": (4,)},
}
"""The two protected grids of a table: their columns, each a set of :data:`FINE` states (indices)."""
COLUMN_OF = {g: {FINE[f]: col for col, fs in cols.items() for f in fs} for g, cols in GRIDS.items()}
MEASURES = ("received", "resolved", "corrected", "upheld", "open", "overdue", "resolved_in_time", "open_in_time")
MONTH = re.compile(r"\d{4}-(0[1-9]|1[0-2])")
FRAME_SCHEMA = {
    "merchant_id": pl.String,
    "kind": pl.String,
    "month": pl.String,
    "fine": pl.String,
    "days": pl.Float64,
}
Key = tuple[str, str]
"""(scope, grid) of one protected grid."""


# -- the objections as rows ------------------------------------------------------------------------
def _utc(now: datetime | None) -> datetime:
    now = now or datetime.now(UTC)
    return now if now.tzinfo else now.replace(tzinfo=UTC)


def _state(o: Objection, now: datetime) -> tuple[str, float | None]:
    """The objection's :data:`FINE` state as of ``now``, and its days to resolve (None while open)."""
    received, due = datetime.fromisoformat(o.received_at), datetime.fromisoformat(o.due_by)
    done = datetime.fromisoformat(o.resolved_at) if o.resolved_at else None
    if done is not None and done <= now:
        return f"{o.outcome}_{'late' if done > due else 'in_time'}", (done - received).total_seconds() / 86400
    return ("open_overdue" if now > due else "open_in_time"), None


def objection_frame(records: Iterable[Objection], now: datetime | None = None, history=None) -> pl.DataFrame:
    """One row per objection received by ``now``: merchant, kind, month of receipt (UTC), state, days, segments
    (sector and province of the merchant's latest month in ``history``; without one, ``unknown``)."""
    now = _utc(now)
    rows = []
    for o in records:
        received = datetime.fromisoformat(o.received_at)
        if received > now:
            continue
        rows.append((o.merchant_id, o.kind, received.astimezone(UTC).strftime("%Y-%m"), *_state(o, now)))
    frame = pl.DataFrame(rows, schema=FRAME_SCHEMA, orient="row")
    if history is not None and frame.height:
        latest = (
            lazy(history)
            .group_by("merchant_id")
            .agg(*(segment(d).sort_by("month").last().alias(d) for d in SEGMENTS))
            .collect()
        )
        frame = frame.join(latest, on="merchant_id", how="left")
    else:
        frame = frame.with_columns(*(pl.lit(None, dtype=pl.String).alias(d) for d in SEGMENTS))
    return frame.with_columns(
        *(pl.col(d).fill_null(UNKNOWN) for d in SEGMENTS),
        *(pl.col("fine").replace_strict(COLUMN_OF[g], return_dtype=pl.String).alias(g) for g in GRIDS),
    )


# -- linked protection -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Family:
    """One table's protected grids (every scope and grid) over ``keys``, and the counts they hold."""

    keys: list[str]
    tables: dict[Key, Protected]
    fine: np.ndarray
    """(rows, kinds, :data:`FINE`) counts of objections: what every published count adds up."""


def _scope(frame: pl.DataFrame, scope: str) -> pl.DataFrame:
    return frame if scope == "all" else frame.filter(pl.col("kind") == scope)


def _grids(frame: pl.DataFrame, dim: str, keys: list[str]) -> dict[Key, tuple[np.ndarray, np.ndarray]]:
    return {
        (scope, g): count_grid(_scope(frame, scope), dim, keys, g, list(cols))
        for scope in SCOPES
        for g, cols in GRIDS.items()
    }


def _fine(frame: pl.DataFrame, dim: str, keys: list[str]) -> np.ndarray:
    x = np.zeros((len(keys), len(KINDS), len(FINE)), dtype=np.int64)
    at = {key: i for i, key in enumerate(keys)}
    if frame.height:
        for key, kind, state, n in frame.group_by(dim, "kind", "fine").len().iter_rows():
            x[at[key], KINDS.index(kind), FINE.index(state)] = n
    return x


def _weights(m: int, key: Key, i: int, j: int) -> np.ndarray:
    """Which underlying counts (rows x kinds x :data:`FINE`, flattened) augmented cell (i, j) of grid ``key`` adds up."""
    scope, g = key
    rows = np.ones(m, dtype=bool) if i == m else np.arange(m) == i
    kinds = np.ones(len(KINDS), dtype=bool) if scope == "all" else np.array([k == scope for k in KINDS])
    return (rows[:, None, None] & kinds[None, :, None] & _STATES[g][j][None, None, :]).ravel().astype(float)


_STATES = {
    g: [*(np.isin(np.arange(len(FINE)), fs) for fs in cols.values()), np.ones(len(FINE), dtype=bool)]
    for g, cols in GRIDS.items()
}
"""Per grid, per augmented column: which :data:`FINE` states it counts (the last column: all of them)."""


def _links(tables: dict[Key, Protected]) -> dict[Key, np.ndarray]:
    """Published cells a link gives away (received is in both grids of a scope; all = objection + repair cell by
    cell, so of three such cells a lone hidden one takes the smallest non-zero other): hide them too."""
    add = {key: np.zeros_like(t.suppressed) for key, t in tables.items()}
    for scope in SCOPES:
        a, b = tables[(scope, "outcome")], tables[(scope, "deadline")]
        hidden = a.suppressed[:, -1] | b.suppressed[:, -1]
        add[(scope, "outcome")][:, -1] |= hidden & ~a.suppressed[:, -1]
        add[(scope, "deadline")][:, -1] |= hidden & ~b.suppressed[:, -1]
    for g in GRIDS:
        trio = [tables[(scope, g)] for scope in SCOPES]
        hidden = np.stack([t.suppressed for t in trio])
        for i, j in zip(*np.nonzero(hidden.sum(axis=0) == 1)):
            options = [(int(t.values[i, j]), s) for s, t in enumerate(trio) if not hidden[s, i, j] and t.values[i, j]]
            if options:
                add[(SCOPES[min(options)[1]], g)][i, j] = True
    return add


def _protect_linked(grids: dict[Key, tuple[np.ndarray, np.ndarray]], k: int, force: dict[Key, np.ndarray]):
    """Protect every grid, forcing what the links give away, until no link gives anything away."""
    force = {key: f.copy() for key, f in force.items()}
    while True:
        tables = {key: protect(c, k, distinct=d, force=force[key]) for key, (c, d) in grids.items()}
        add = _links(tables)
        if not any(a.any() for a in add.values()):
            return tables
        for key in force:
            force[key] |= add[key]


Cell = tuple[Key, int, int]
"""(grid, i, j): one augmented cell of one grid."""


def exposed(fine: np.ndarray, tables: dict[Key, Protected]) -> dict[Cell, list[Cell]]:
    """Hidden small cells pinned to a range under 1 by the published cells as equations over the non-negative
    ``fine`` counts (linear programming), each with the published cells its bounds rest on (non-zero duals)."""
    from scipy.optimize import linprog

    m = fine.shape[0]
    published, values, where, hidden = [], [], [], []
    for key, t in tables.items():
        for i, j in np.ndindex(t.values.shape):
            if t.suppressed[i, j]:
                if t.primary[i, j]:
                    hidden.append((key, i, j))
            else:
                published.append(_weights(m, key, i, j))
                values.append(float(t.values[i, j]))
                where.append((key, i, j))
    if not hidden:
        return {}
    w, v = np.array(published), np.array(values)
    zero = (w[v == 0] > 0).any(axis=0) if (v == 0).any() else np.zeros(w.shape[1], dtype=bool)
    a_eq = w[:, ~zero]  # counts inside a published zero are zero: leave them out
    keep = a_eq.any(axis=1)
    a_eq, b_eq, where = a_eq[keep], v[keep], [c for c, kept in zip(where, keep) if kept]
    c = np.array([_weights(m, key, i, j)[~zero] for key, i, j in hidden])
    truth = np.array([tables[key].values[i, j] for key, i, j in hidden], dtype=float)
    cap = float(fine.sum()) * 4 + 4  # a bound the true counts keep: points found under it are feasible without it

    def solve(objective: np.ndarray, bounded: bool):
        return linprog(objective, A_eq=a_eq, b_eq=b_eq, bounds=(0, cap if bounded else None), method="highs")

    # One optimum moves many hidden cells at once, and every cell it moves by 1 or more is not pinned: push
    # the unproven cells down, then up, twice; then one cell at a time (minimum and maximum) for the rest.
    free = np.zeros(len(hidden), dtype=bool)
    for sign in (1.0, -1.0, 1.0, -1.0):
        if free.all():
            return {}
        res = solve(sign * c[~free].sum(axis=0), bounded=True)
        if res.status == 0:
            free |= np.abs(c @ res.x - truth) >= 1 - 1e-9
    found = {}
    for t in np.flatnonzero(~free):
        lo, hi = solve(c[t], bounded=False), solve(-c[t], bounded=False)
        low = c[t] @ lo.x if lo.status == 0 else -np.inf
        top = c[t] @ hi.x if hi.status == 0 else np.inf
        if top - low < 1 - 1e-9:
            duals = sum(np.abs(r.eqlin.marginals) for r in (lo, hi) if r.status == 0 and len(b_eq))
            found[hidden[t]] = [where[e] for e in np.flatnonzero(np.asarray(duals) > 1e-9)] if len(b_eq) else []
    return found


def _priority(tables: dict[Key, Protected], cell_: Cell) -> tuple:
    """Which published cell to hide first: interior before margins before the grand total, then the smallest."""
    key, i, j = cell_
    t = tables[key]
    return ((i == t.shape[0]) + (j == t.shape[1]), int(t.values[i, j]), key, i, j)


def family(frame: pl.DataFrame, dim: str, k: int, totals: dict[Key, np.ndarray] | None = None) -> Family:
    """The protected table of ``frame`` by ``dim`` (``totals``: total-row cells to hide); while :func:`exposed` pins a
    cell, a cell its bounds rest on is hidden too; failing that, every non-zero count (then nothing can pin one)."""
    keys = sorted(frame[dim].unique().to_list()) if frame.height else []
    grids = _grids(frame, dim, keys)
    fine = _fine(frame, dim, keys)
    force = {}
    for key, (_, distinct) in grids.items():
        force[key] = np.zeros(distinct.shape, dtype=bool)
        if totals is not None:
            force[key][-1] = totals[key]
    while True:
        tables = _protect_linked(grids, k, force)
        pinned = exposed(fine, tables)
        if not pinned:
            return Family(keys, tables, fine)
        more = {min(cells, key=lambda c: _priority(tables, c)) for cells in pinned.values() if cells}
        if not more:
            break
        for key, i, j in more:
            force[key][i, j] = True
    everything = {key: force[key] | (distinct > 0) for key, (_, distinct) in grids.items()}
    return Family(keys, _protect_linked(grids, k, everything), fine)


def month_families(frame: pl.DataFrame, k: int) -> dict[str, Family]:
    """The sector and province tables of one month's objections: the union of the totals they hide is forced on both
    until stable, so they, and the month's row of the by-month view, publish the same totals."""
    shared = {(scope, g): np.zeros(len(cols) + 1, dtype=bool) for scope in SCOPES for g, cols in GRIDS.items()}
    while True:
        families = {dim: family(frame, dim, k, shared) for dim in SEGMENTS}
        union = {key: np.logical_or.reduce([f.tables[key].suppressed[-1] for f in families.values()]) for key in shared}
        if all((union[key] == shared[key]).all() for key in shared):
            return families
        shared = union


# -- the view --------------------------------------------------------------------------------------
def check_query(by: str, month: str | None, kind: str | None) -> None:
    """Refuse what :func:`objections` cannot answer before anything is read."""
    if by not in OBJECTION_DIMENSIONS:
        raise ViewError(f"by must be one of {', '.join(OBJECTION_DIMENSIONS)}, got {by!r}")
    if kind is not None and kind not in KINDS:
        raise ViewError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if month is not None and by == "month":
        raise ViewError("no month with by=month: every month of receipt is a row")
    if month is not None and not MONTH.fullmatch(month):
        raise ViewError(f"month must be YYYY-MM, got {month!r}")


def _row(tables: dict[Key, Protected], scope: str, i: int, part: pl.DataFrame, k: int) -> dict:
    """The published measures of row ``i`` (the total row when ``i`` is the last), ``part``: its objections."""
    a, b = tables[(scope, "outcome")], tables[(scope, "deadline")]
    n = a.shape[1]
    resolved = part.filter(pl.col("days").is_not_null())
    value = int(a.values[i, 0] + a.values[i, 1])
    merchants = resolved["merchant_id"].n_unique()
    derivable = (a.count(i, 0) is not None and a.count(i, 1) is not None) or (
        a.count(i, n) is not None and a.count(i, 2) is not None
    )
    shown = derivable and (merchants == 0 or merchants >= k)
    in_time = b.count(i, 0)
    cells = {
        "received": a.cell(i, n),
        "resolved": cell(value, not shown),
        **{c: a.cell(i, j) for j, c in enumerate(GRIDS["outcome"])},
        **{c: b.cell(i, j) for j, c in enumerate(GRIDS["deadline"])},
    }
    return {
        "cells": {name: cells[name] for name in MEASURES},
        "median_days_to_resolve": rounded(float(resolved["days"].median()), 1) if shown and value else None,
        "resolved_within_deadline_share": rounded(in_time / value, 4)
        if shown and value and in_time is not None
        else None,
    }


def _month_span(months: list[str]) -> list[str]:
    """Every month from the first to the last of ``months`` (months without objections included)."""
    if not months:
        return []
    y, m = map(int, months[0].split("-"))
    out = []
    while f"{y:04d}-{m:02d}" <= months[-1]:
        out.append(f"{y:04d}-{m:02d}")
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


def objections(
    records: Iterable[Objection],
    history=None,
    *,
    k: int,
    by: str = "month",
    month: str | None = None,
    kind: str | None = None,
    now: datetime | None = None,
) -> dict:
    """Objections received, resolved, corrected, upheld, open and overdue per month of receipt, sector or province
    (``month``: a sector or province table's, default the latest; ``kind``: one kind), as of ``now``."""
    check_query(by, month, kind)
    now = _utc(now)
    frame = objection_frame(records, now, history)
    months = sorted(frame["month"].unique().to_list())
    scope = kind or "all"
    rows, total = [], None
    if by == "month":
        for mo in _month_span(months):
            part = frame.filter(pl.col("month") == mo)
            tables = month_families(part, k)["sector"].tables
            m = tables[(scope, "outcome")].shape[0]
            rows.append({"key": mo, "label": {"en": mo, "zh": mo}, **_row(tables, scope, m, _scope(part, scope), k)})
    else:
        month = month or (months[-1] if months else now.strftime("%Y-%m"))
        part = frame.filter(pl.col("month") == month)
        fam = month_families(part, k)[by]
        m = len(fam.keys)
        mine = _scope(part, scope)
        for i, key in enumerate(fam.keys):
            cells = _row(fam.tables, scope, i, mine.filter(pl.col(by) == key), k)
            rows.append({"key": key, "label": label(by, key), **cells})
        total = _row(fam.tables, scope, m, mine, k)
    published = [c for r in [*rows, *([total] if total else [])] for c in r["cells"].values()]
    return {
        "view": "objections",
        "by": by,
        "by_label": dimension_label(by),
        "month": None if by == "month" else month,
        "from": months[0] if by == "month" and months else None,
        "to": months[-1] if by == "month" and months else None,
        "months": months,
        "kind": kind,
        "kind_label": label("kind", kind)
        if kind
        else {"en": "Objections and repair requests", "zh": "异议及信用修复申请"},
        "as_of": now.astimezone(UTC).isoformat(timespec="seconds"),
        "deadline_days": DEADLINE_DAYS,
        "measures": [{"key": name, "label": label("objection", name)} for name in MEASURES],
        "rows": rows,
        "total": total,
        "suppressed_cells": sum(c["suppressed"] for c in published),
        "definition_en": f"Counted by month of receipt (UTC). Overdue: still open more than {DEADLINE_DAYS} days "
        "after receipt, or resolved after that deadline. Counts are objections; the threshold counts the merchants "
        "behind them. A merchant's sector and province: its latest month in the class history.",
        "definition_zh": f"按受理月份（UTC）统计。逾期：受理后超过{DEADLINE_DAYS}日仍未办结，或在期限届满后才办结。"
        "计数单位为异议件数，公布门槛按涉及的商户户数计算。商户的行业和省份取其在分类历史中最近一个月的记录。",
        **suppression_note(k),
    }
