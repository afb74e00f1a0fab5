"""How the classes move: PSI month over month, and the class migration matrix between two months.

The migration matrix is protected consistently with what the two months' distribution views publish.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from core.vocabulary import CLASSES, PSI_BANDS
from regulator.common import (
    ViewError,
    class_counts,
    count_grid,
    lazy,
    month_range,
    months,
    pick_month,
    previous_month,
    rounded,
    suppression_note,
)
from regulator.distribution import month_tables
from regulator.labels import label
from regulator.suppression import Protected, ProtectionError, protect, recoverable_lp
from training.evaluate import psi, psi_from_counts

MIGRATION_ROWS = (*CLASSES, "new")
MIGRATION_COLS = (*CLASSES, "exited")
N_CLASSES = len(CLASSES)
PSI_STABLE, PSI_SHIFTED = PSI_BANDS["stable"], PSI_BANDS["shifted"]


def psi_band(value: float | None) -> str | None:
    """``stable`` below ``PSI_BANDS["stable"]``, ``drifting`` up to ``PSI_BANDS["shifted"]``, ``shifted`` from there."""
    if value is None:
        return None
    return "stable" if value < PSI_STABLE else "drifting" if value < PSI_SHIFTED else "shifted"


def stability(history, *, k: int, from_month: str | None = None, to_month: str | None = None) -> dict:
    """PSI of the class distribution and of the score distribution, each month against the month before.

    Score PSI uses 10 equal-count bins of the earlier month's scores (``training.evaluate.psi``);
    bands (:data:`core.vocabulary.PSI_BANDS`): stable, drifting, shifted. A month with fewer
    than k merchants gets no PSI.
    """
    chosen = month_range(history, from_month, to_month)
    first = previous_month(chosen[0])
    wanted = [first, *chosen] if first in months(history) else chosen
    frame = lazy(history).filter(pl.col("month").is_in(wanted)).select("month", "class", "score").collect()
    by_month = {m: part for (m,), part in frame.partition_by("month", as_dict=True).items()}
    rows = []
    for prev, cur in zip(wanted, wanted[1:], strict=False):
        a, b = by_month[prev], by_month[cur]
        ok = a.height >= k and b.height >= k
        psi_class = psi_from_counts(class_counts(a), class_counts(b)) if ok else None
        psi_score = psi(a["score"].to_numpy().astype(float), b["score"].to_numpy().astype(float)) if ok else None
        rows.append(
            {
                "month": cur,
                "previous": prev,
                "psi_class": rounded(psi_class),
                "band_class": psi_band(psi_class),
                "psi_score": rounded(psi_score),
                "band_score": psi_band(psi_score),
            }
        )
    return {
        "view": "stability",
        "from": chosen[0],
        "to": chosen[-1],
        "rows": rows,
        "bands": {"stable_below": PSI_STABLE, "shifted_from": PSI_SHIFTED},
        "definition_en": "PSI = sum over bins of (b - a) ln(b / a), a and b the shares of the previous and current "
        "month; classes are the bins for the class PSI, 10 equal-count score bins of the previous "
        "month for the score PSI.",
        "definition_zh": "PSI = Σ(本月占比 − 上月占比) × ln(本月占比 / 上月占比)；分类PSI以A–D类为分箱，"
        f"评分PSI以上月评分的10个等频分箱计算。低于{PSI_STABLE:.2f}为稳定，{PSI_STABLE:.2f}–"
        f"{PSI_SHIFTED:.2f}为轻微漂移，{PSI_SHIFTED:.2f}及以上为显著变化。",
        **suppression_note(k),
    }


def migration(history, *, k: int, from_month: str | None = None, to_month: str | None = None) -> dict:
    """Class migration between two months (default: the latest month and the one before it).

    Rows: the class in ``from`` (plus ``new``: merchants scored in ``to`` only); columns: the
    class in ``to`` (plus ``exited``: merchants scored in ``from`` only). Row totals of the
    classes are the ``from`` month's class totals and column totals the ``to`` month's, published
    exactly as the distribution view publishes them. Row shares: each cell over its row total.
    Upgrades (to a lower-risk class), downgrades and stable merchants are shares of the
    merchants scored in both months; they are withheld when publishing them would let a
    hidden cell be worked out.
    """
    to_month = pick_month(history, to_month)
    from_month = pick_month(history, from_month or previous_month(to_month))
    if from_month >= to_month:
        raise ViewError(f"from {from_month} must be before to {to_month}")
    lf = lazy(history)
    a = lf.filter(pl.col("month") == from_month).select("merchant_id", pl.col("class").alias("from_class"))
    b = lf.filter(pl.col("month") == to_month).select("merchant_id", pl.col("class").alias("to_class"))
    pairs = (
        a.join(b, on="merchant_id", how="full", coalesce=True)
        .with_columns(pl.col("from_class").fill_null("new"), pl.col("to_class").fill_null("exited"))
        .collect()
    )
    counts, _ = count_grid(pairs, "from_class", list(MIGRATION_ROWS), "to_class", list(MIGRATION_COLS))
    (_, from_mask), (_, to_mask) = month_tables(history, from_month, k), month_tables(history, to_month, k)
    month_sums = _month_sums(from_mask, to_mask)
    t = _protect_migration(counts, from_mask, to_mask, k, month_sums)
    m, n = t.shape
    rows = []
    for i, key in enumerate(MIGRATION_ROWS):
        cells = {c: t.cell(i, j, share=t.share(i, j, of=(i, n))) for j, c in enumerate(MIGRATION_COLS)}
        rows.append(
            {
                "key": key,
                "label": label("migration" if key == "new" else "class", key),
                "total": t.cell(i, n),
                "cells": cells,
            }
        )
    col_totals = {c: t.cell(m, j) for j, c in enumerate(MIGRATION_COLS)}
    return {
        "view": "migration",
        "from": from_month,
        "to": to_month,
        "rows_are": "class in from (new: not scored in from)",
        "columns_are": "class in to (exited: not scored in to)",
        "rows": rows,
        "column_totals": col_totals,
        "total": t.cell(m, n),
        "summary": _migration_summary(t, k, month_sums),
        "suppressed_cells": t.n_suppressed,
        **suppression_note(k),
    }


def _month_sums(from_mask: np.ndarray, to_mask: np.ndarray) -> list[np.ndarray]:
    """Coefficient grids of the two months' merchant counts (published by the distribution view) on the matrix.

    ``from_mask`` / ``to_mask``: which class totals (and, last, the month's total) each month's views hide.
    """
    shape = (len(MIGRATION_ROWS) + 1, len(MIGRATION_COLS) + 1)
    out = []
    for published, where in (
        (not from_mask[-1], (slice(0, N_CLASSES), -1)),
        (not to_mask[-1], (-1, slice(0, N_CLASSES))),
    ):
        if published:
            e = np.zeros(shape)
            e[where] = 1
            out.append(e)
    return out


def _protect_migration(
    counts: np.ndarray, from_mask: np.ndarray, to_mask: np.ndarray, k: int, month_sums: list[np.ndarray]
) -> Protected:
    """Protect the matrix consistently with what the two months' distribution views publish.

    The class margins are those views' class totals: suppressed exactly as there, never
    re-decided here (locked). Those views also publish each month's merchant count, i.e. the
    sum of the class row totals and of the class column totals (``month_sums``): two more
    equations the final check includes. If the matrix cannot be protected under these
    constraints, every interior count is hidden; failing that, everything but the locked
    margins (zeros too).
    """
    shape = (len(MIGRATION_ROWS) + 1, len(MIGRATION_COLS) + 1)
    force = np.zeros(shape, dtype=bool)
    force[:N_CLASSES, -1] = from_mask[:N_CLASSES]
    force[-1, :N_CLASSES] = to_mask[:N_CLASSES]
    locked = np.zeros(shape, dtype=bool)
    locked[:N_CLASSES, -1] = locked[-1, :N_CLASSES] = True
    interior = np.zeros(shape, dtype=bool)
    interior[:-1, :-1] = counts > 0
    everything = ~(locked & ~force)
    for hide in (force, force | interior):
        try:
            return protect(counts, k, force=hide, locked=locked, extra=month_sums)
        except ProtectionError:
            continue
    return protect(counts, k, force=everything, locked=locked, extra=month_sums)


def _migration_summary(t: Protected, k: int, month_sums: list[np.ndarray]) -> dict:
    stay = t.values[:N_CLASSES, :N_CLASSES]
    ones = np.ones((N_CLASSES, N_CLASSES))
    kinds = {"upgrades": np.tril(ones, -1), "downgrades": np.triu(ones, 1), "stable": np.eye(N_CLASSES)}
    both = int(stay.sum())
    counts = {name: int((stay * w).sum()) for name, w in kinds.items()}
    extra = []
    for w in kinds.values():
        e = np.zeros(t.values.shape)
        e[:N_CLASSES, :N_CLASSES] = w
        extra.append(e)
    exposed = recoverable_lp(t.values, t.suppressed, [*month_sums, *extra]) if t.n_suppressed else []
    safe = both >= k and all(v == 0 or v >= k for v in counts.values()) and not exposed
    out = {"merchants_in_both": both if safe else None, "suppressed": not safe}
    for name, v in counts.items():
        out[f"{name}_share"] = rounded(v / both) if safe and both else None
    return out
