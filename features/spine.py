"""``as_of`` dates, the training and scoring spines, and the 12-month ``bad`` label.

Point-in-time rule: a row (``merchant_id``, ``as_of``) sees an event iff it happened strictly
before ``as_of`` (timestamps: before ``as_of`` 00:00 Asia/Shanghai; dated events such as
``reported_on``: date < ``as_of``). The label looks only at the outcome window
(``as_of``, ``as_of`` + 12 months]: as instants, so a dated event on day D counts when
``as_of`` <= D < ``as_of`` + 12 months.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import polars as pl

from features.tables import RawTables, local_date, merchant_key

LABEL_MONTHS = 12
BAD_DPD = 90
DEFAULT_STATUSES = ("default", "written_off")


def month_start_after(d: date) -> date:
    """First day of the month following ``d``."""
    return date(d.year + (d.month == 12), d.month % 12 + 1, 1)


HISTORY_MONTHS = 12
"""Calendar months of data that the first monthly ``as_of`` has behind it (its 365-day windows)."""


def months_after(d: date, months: int) -> date:
    """First day of the month ``months`` months after ``d``'s month."""
    m = d.year * 12 + d.month - 1 + months
    return date(m // 12, m % 12 + 1, 1)


def monthly_as_of(first_day: date, last_day: date) -> list[date]:
    """Month starts from the first one with a full year of data behind it to the first one after ``last_day``.

    The first ``as_of`` is the first month start on or after ``first_day`` (``first_day`` itself
    when it is the 1st of a month) plus ``HISTORY_MONTHS`` months: its 365-day windows lie wholly
    inside the data, so no feature of the panel is truncated by where the data happen to begin.
    The last ``as_of`` sees all the data (the latest snapshot). When the data span less than that
    (short test markets), the month starts run from the first one after ``first_day``, which sees
    at least one day of data.
    """
    base = first_day if first_day.day == 1 else month_start_after(first_day)
    end = month_start_after(last_day)
    d = months_after(base, HISTORY_MONTHS)
    if d > end:
        d = month_start_after(first_day)
    out = []
    while d <= end:
        out.append(d)
        d = month_start_after(d)
    return out


def data_date_range(tables: RawTables) -> tuple[date, date] | None:
    """First and last transaction date (local), or None without transactions."""
    row = (
        tables.transactions.select(first=pl.col("ts").min(), last=pl.col("ts").max())
        .select(local_date("first").alias("first"), local_date("last").alias("last"))
        .collect()
        .row(0)
    )
    return None if row[0] is None else (row[0], row[1])


def as_of_frame(as_of: list[date]) -> pl.LazyFrame:
    return pl.LazyFrame({"as_of": sorted(set(as_of))}, schema={"as_of": pl.Date})


def population(tables: RawTables, as_of: list[date]) -> pl.LazyFrame:
    """Every merchant registered before each ``as_of``: the scoring spine and the peer population."""
    return (
        tables.merchants.select("merchant_id", "registered_on")
        .join(as_of_frame(as_of), how="cross")
        .filter(pl.col("registered_on") < pl.col("as_of"))
        .select("merchant_id", "as_of", merchant_key())
        .sort("mkey", "as_of")
    )


def _last_report_before(tables: RawTables, as_of: list[date]) -> pl.LazyFrame:
    """Per (loan, as_of): status and dpd of the last monthly report dated before ``as_of``."""
    return (
        tables.loan_performance.select("loan_id", "reported_on", "days_past_due", "status")
        .join(as_of_frame(as_of), how="cross")
        .filter(pl.col("reported_on") < pl.col("as_of"))
        .group_by("loan_id", "as_of")
        .agg(
            pl.col("status").sort_by("reported_on").last().alias("last_status"),
            pl.col("days_past_due").sort_by("reported_on").last().alias("last_dpd"),
        )
    )


@dataclass(frozen=True)
class TrainingSpine:
    rows: pl.DataFrame
    """(merchant_id, as_of) rows to label and train on."""
    excluded_in_default: int
    """Candidate rows dropped because the merchant was already in default at ``as_of``."""


def training_spine(tables: RawTables, as_of: list[date]) -> TrainingSpine:
    """Borrowers at each ``as_of``, plus application-time rows, minus merchants already in default.

    A merchant is on the spine at ``as_of`` when it holds a loan disbursed before ``as_of``
    whose last status known before ``as_of`` is not ``closed`` (a loan not yet reported is
    open), or when a loan is disbursed to it in [``as_of``, ``as_of`` + 1 month). Rows where any
    of its loans is known to be in default (status default / written_off, or 90+ dpd) at
    ``as_of`` are excluded and counted.
    """
    loans = tables.loans.select("loan_id", "merchant_id", "disbursed_on").join(as_of_frame(as_of), how="cross")
    state = loans.join(_last_report_before(tables, as_of), on=["loan_id", "as_of"], how="left").with_columns(
        held=(pl.col("disbursed_on") < pl.col("as_of")) & (pl.col("last_status").fill_null("current") != "closed"),
        applying=(pl.col("disbursed_on") >= pl.col("as_of"))
        & (pl.col("disbursed_on") < pl.col("as_of").dt.offset_by("1mo")),
        in_default=(pl.col("disbursed_on") < pl.col("as_of"))
        & (pl.col("last_status").is_in(DEFAULT_STATUSES) | (pl.col("last_dpd") >= BAD_DPD)).fill_null(False),
    )
    per_row = (
        state.group_by("merchant_id", "as_of")
        .agg(pl.col("held").any(), pl.col("applying").any(), pl.col("in_default").any())
        .filter(pl.col("held") | pl.col("applying"))
        .collect()
    )
    excluded = int(per_row["in_default"].sum())
    rows = per_row.filter(~pl.col("in_default")).select("merchant_id", "as_of").sort("as_of", "merchant_id")
    return TrainingSpine(rows=rows, excluded_in_default=excluded)


def observed_until(tables: RawTables) -> date | None:
    """Last loan-performance report date: outcomes are observed up to and including it."""
    return tables.loan_performance.select(pl.col("reported_on").max()).collect().item()


def labels(tables: RawTables, spine: pl.DataFrame | pl.LazyFrame, observed: date | None) -> pl.LazyFrame:
    """``bad`` (Int8) for each spine row, from the outcome window only.

    1 when any loan of the merchant reports 90+ days past due, default or written_off with
    ``as_of`` <= reported_on < ``as_of`` + 12 months; 0 when that window is fully observed
    (``observed`` reaches its last day) without such a report; null when it is not fully
    observed (those rows are scored, never trained on).
    """
    spine = spine.lazy().select("merchant_id", "as_of")
    window_end = pl.col("as_of").dt.offset_by(f"{LABEL_MONTHS}mo")
    bad_events = (
        tables.loan_performance.filter((pl.col("days_past_due") >= BAD_DPD) | pl.col("status").is_in(DEFAULT_STATUSES))
        .select("merchant_id", "reported_on")
        .join(spine, on="merchant_id", how="inner")
        .filter((pl.col("reported_on") >= pl.col("as_of")) & (pl.col("reported_on") < window_end))
        .select("merchant_id", "as_of")
        .unique()
        .with_columns(hit=pl.lit(True))
    )
    fully_observed = pl.lit(False) if observed is None else (window_end - pl.duration(days=1)) <= pl.lit(observed)
    return spine.join(bad_events, on=["merchant_id", "as_of"], how="left", maintain_order="left").select(
        "merchant_id",
        "as_of",
        pl.when(fully_observed)
        .then(pl.col("hit").fill_null(False).cast(pl.Int8))
        .otherwise(pl.lit(None, dtype=pl.Int8))
        .alias("bad"),
    )
