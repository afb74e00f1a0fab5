"""What happened: observed 12-month default rates per class, grade or segment, beside the mean PD.

Jeffreys intervals and the one-sided Jeffreys test; counts of merchant-months, threshold on distinct merchants.
"""

from __future__ import annotations

import polars as pl

from core.vocabulary import CLASSES
from regulator.common import (
    ViewError,
    count_grid,
    grade_order,
    lazy,
    month_range,
    rounded,
    suppression_note,
)
from regulator.labels import label
from regulator.suppression import Protected, protect
from training.evaluate import jeffreys_pvalue

OUTCOMES = ("defaults", "performing")
INTERVAL_LEVEL = 0.95


def labelled(history, panel, chosen: list[str]) -> pl.DataFrame:
    """History rows of the ``chosen`` months that have a 12-month outcome in ``panel``, with ``outcome``."""
    outcomes = (
        lazy(panel)
        .select("merchant_id", pl.col("as_of").cast(pl.Date), pl.col("bad"))
        .filter(pl.col("bad").is_not_null())
    )
    return (
        lazy(history)
        .filter(pl.col("month").is_in(chosen))
        .join(outcomes, on=["merchant_id", "as_of"], how="inner")
        .with_columns(outcome=pl.when(pl.col("bad") == 1).then(pl.lit("defaults")).otherwise(pl.lit("performing")))
        .collect()
    )


def jeffreys_interval(defaults: int, n: int, level: float = INTERVAL_LEVEL) -> tuple[float, float]:
    """Equal-tailed Jeffreys interval for a default rate: Beta(d + 1/2, n - d + 1/2) quantiles.

    By convention the lower end is 0 when there is no default and the upper end 1 when all defaulted.
    """
    from scipy.stats import beta

    a = (1 - level) / 2
    lo = 0.0 if defaults == 0 else float(beta.ppf(a, defaults + 0.5, n - defaults + 0.5))
    hi = 1.0 if defaults == n else float(beta.ppf(1 - a, defaults + 0.5, n - defaults + 0.5))
    return lo, hi


def outcome_rows(frame: pl.DataFrame, dim: str, keys: list[str], k: int) -> tuple[list[dict], dict, Protected]:
    """Per ``dim`` value (``keys``) and in total: merchant-months, defaults, rate, interval, mean PD, Jeffreys p."""
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
            "n": t.cell(i, n),
            "defaults": t.cell(i, 0),
            "default_rate": rounded(defaults / total) if known else None,
            "interval": {"low": rounded(interval[0]), "high": rounded(interval[1]), "level": INTERVAL_LEVEL}
            if known
            else None,
            "mean_pd": rounded(mpd) if total is not None else None,
            "jeffreys_p": rounded(p) if p is not None else None,
        }

    rows = [{"key": key, "label": label(dim, key), **row(i, key)} for i, key in enumerate(keys)]
    return rows, row(m, None), t


def outcomes(
    history,
    panel,
    *,
    k: int,
    by: str = "class",
    from_month: str | None = None,
    to_month: str | None = None,
    grades: list[str] | None = None,
) -> dict:
    """Observed 12-month default rate per class (or grade) where outcomes exist, months pooled.

    ``panel``: the feature panel (``merchant_id``, ``as_of``, ``bad``); a history row has an
    outcome when the panel labels the same merchant at the same ``as_of`` (a borrower whose
    12 months are fully observed). ``n`` and ``defaults`` count merchant-months; the small-cell
    threshold applies to distinct merchants. ``jeffreys_p``: one-sided test that the default
    rate exceeds the mean PD (small: PD underestimated).
    """
    if by not in ("class", "grade"):
        raise ViewError(f"by must be class or grade, got {by!r}")
    chosen = month_range(history, from_month, to_month)
    frame = labelled(history, panel, chosen)
    with_outcomes = sorted(frame["month"].unique().to_list()) if frame.height else []
    if by == "class":
        keys = list(CLASSES)
    else:
        keys = sorted(set(frame["grade"].to_list()) | set(grades or []), key=grade_order)
    rows, total, t = outcome_rows(frame, by, keys, k)
    return {
        "view": "outcomes",
        "by": by,
        "from": chosen[0],
        "to": chosen[-1],
        "months_with_outcomes": with_outcomes,
        "definition_en": "Default: 90+ days past due, default or write-off within 12 months after the month's as_of "
        "date (borrowers whose 12 months are fully observed).",
        "definition_zh": "违约：评估基准日后12个月内逾期90天以上、违约或核销（仅含12个月表现期已完整观察的借款商户）。",
        "rows": rows,
        "total": total,
        "suppressed_cells": t.n_suppressed,
        **suppression_note(k),
    }
