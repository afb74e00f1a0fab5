"""Inclusive finance: the service's approve / refer / decline decisions per segment, and calibration per segment.

Rates count decisions; the small-cell threshold counts distinct merchants.
"""

from __future__ import annotations

import polars as pl

from core.vocabulary import DECISIONS
from regulator.common import (
    INCLUSION_DIMENSIONS,
    ViewError,
    available_months,
    count_grid,
    lazy,
    rounded,
    segment,
    suppression_note,
)
from regulator.labels import UNKNOWN, dimension_label, label
from regulator.outcomes import labelled, outcome_rows
from regulator.suppression import protect


def inclusion(
    history,
    decisions: pl.DataFrame,
    *,
    k: int,
    by: str = "urban_rural",
    from_month: str | None = None,
    to_month: str | None = None,
    panel=None,
) -> dict:
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
    available = available_months(history)
    lo, hi = from_month or "0000-00", to_month or "9999-99"
    segments = lazy(history).group_by("merchant_id").agg(segment(by).sort_by("month").last().alias("segment")).collect()
    dec = (
        decisions.lazy()
        .filter((pl.col("month") >= lo) & (pl.col("month") <= hi))
        .join(segments.lazy(), on="merchant_id", how="left")
        .with_columns(pl.col("segment").fill_null(UNKNOWN))
        .collect()
    )
    keys = sorted(dec["segment"].unique().to_list()) if dec.height else []
    counts, distinct = count_grid(dec, "segment", keys, "decision", list(DECISIONS))
    t = protect(counts, k, distinct=distinct)
    m, n = t.shape
    approved = dec.filter(pl.col("decision") == "approve")
    limits = (
        dict(approved.group_by("segment").agg(pl.col("approved_limit_fen").mean()).iter_rows()) if dec.height else {}
    )
    overall_rate = t.share(m, 0, of=(m, n))

    def row(i: int, key: str | None) -> dict:
        rate = t.share(i, 0, of=(i, n))
        limit = approved["approved_limit_fen"].mean() if key is None else limits.get(key)
        return {
            "decisions": t.cell(i, n),
            "cells": {d: t.cell(i, j, rate=rounded(t.share(i, j, of=(i, n)))) for j, d in enumerate(DECISIONS)},
            "approval_rate": rounded(rate),
            "approval_ratio": rounded(rate / overall_rate) if rate is not None and overall_rate else None,
            "average_approved_limit_fen": (round(float(limit)) if limit is not None and t.count(i, 0) else None),
        }

    rows = [{"key": key, "label": label(by, key), **row(i, key)} for i, key in enumerate(keys)]
    out = {
        "view": "inclusion",
        "by": by,
        "by_label": dimension_label(by),
        "from": from_month,
        "to": to_month,
        "rows": rows,
        "total": row(m, None),
        "suppressed_cells": t.n_suppressed,
        "calibration": None,
        **suppression_note(k),
    }
    if panel is not None:
        out["calibration"] = _calibration(history, panel, by, [mo for mo in available if lo <= mo <= hi], k)
    return out


def _calibration(history, panel, by: str, chosen: list[str], k: int) -> dict | None:
    """Mean PD beside the observed default rate per ``by`` segment, over ``chosen`` months (None without outcomes)."""
    frame = labelled(history, panel, chosen).with_columns(segment(by).alias(by)) if chosen else None
    if frame is None or not frame.height:
        return None
    rows, total, t = outcome_rows(frame, by, sorted(frame[by].unique().to_list()), k)
    for r in [*rows, total]:
        r["pd_minus_observed"] = (
            rounded(r["mean_pd"] - r["default_rate"])
            if r["mean_pd"] is not None and r["default_rate"] is not None
            else None
        )
    return {
        "rows": rows,
        "total": total,
        "suppressed_cells": t.n_suppressed,
        "months_with_outcomes": sorted(frame["month"].unique().to_list()),
    }
