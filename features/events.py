"""Complaint, credit-history, public-record and profile features.

These tables are small next to transactions: each is joined to the (merchant_id, as_of)
population and filtered to events strictly before ``as_of``.
"""

from __future__ import annotations

import polars as pl

from features.tables import local_date

COMPLAINT_CATEGORIES = (
    "food_safety",
    "hygiene",
    "service_quality",
    "price_dispute",
    "refund_dispute",
    "false_advertising",
    "property_damage",
    "other",
)
DAYS_PER_MONTH = 30.44


def _since(col: str, w: int) -> pl.Expr:
    """``col`` (a date) lies in [as_of - w days, as_of)."""
    return pl.col(col) >= pl.col("as_of") - pl.duration(days=w)


def complaint_features(complaints: pl.LazyFrame, pop: pl.LazyFrame) -> pl.LazyFrame:
    """Complaint counts, severity, resolution and category mix; the per-1,000 rate is added later."""
    c = (
        complaints.select(
            "merchant_id",
            "category",
            pl.col("severity").cast(pl.Int64),
            local_date("received_at").alias("recv"),
            local_date("resolved_at").alias("res"),
            ((pl.col("resolved_at") - pl.col("received_at")).dt.total_seconds() / 86400.0).alias("days_to_resolve"),
        )
        .join(pop, on="merchant_id", how="inner")
        .filter(pl.col("recv") < pl.col("as_of"))
    )
    y = _since("recv", 365)
    resolved = pl.col("res") < pl.col("as_of")  # null (never resolved) is unresolved
    agg = c.group_by("merchant_id", "as_of").agg(
        _since("recv", 30).sum().cast(pl.Int64).alias("complaints_30d"),
        _since("recv", 90).sum().cast(pl.Int64).alias("complaints_90d"),
        pl.col("severity").filter(_since("recv", 90)).sum().alias("complaint_severity_sum_90d"),
        (_since("recv", 90) & ~resolved.fill_null(False)).sum().cast(pl.Int64).alias("complaints_unresolved_90d"),
        y.sum().cast(pl.Int64).alias("complaints_365d"),
        pl.col("severity").filter(y).sum().alias("complaint_severity_sum_365d"),
        (y & ~resolved.fill_null(False)).sum().cast(pl.Int64).alias("_unresolved"),
        pl.col("days_to_resolve")
        .filter(y & resolved.fill_null(False))
        .median()
        .alias("complaint_median_days_to_resolve_365d"),
        pl.col("recv").max().alias("_last"),
        *(
            (y & (pl.col("category") == k)).sum().cast(pl.Int64).alias(f"complaints_{k}_365d")
            for k in COMPLAINT_CATEGORIES
        ),
    )
    counts = [
        "complaints_30d",
        "complaints_90d",
        "complaints_365d",
        "complaint_severity_sum_90d",
        "complaint_severity_sum_365d",
        "complaints_unresolved_90d",
        *(f"complaints_{k}_365d" for k in COMPLAINT_CATEGORIES),
    ]
    return (
        pop.join(agg, on=["merchant_id", "as_of"], how="left")
        .with_columns(pl.col(counts).fill_null(0))
        .with_columns(
            pl.when(pl.col("complaints_365d") > 0)
            .then(pl.col("_unresolved") / pl.col("complaints_365d"))
            .alias("complaints_unresolved_share_365d"),
            (pl.col("as_of") - pl.col("_last")).dt.total_days().alias("days_since_last_complaint"),
        )
        .drop("_unresolved", "_last")
    )


def credit_features(loans: pl.LazyFrame, performance: pl.LazyFrame, pop: pl.LazyFrame) -> pl.LazyFrame:
    """Prior loans, open balance and delinquency history as reported before ``as_of``."""
    ln = (
        loans.select("loan_id", "merchant_id", "disbursed_on", "principal_fen", "term_months")
        .join(pop, on="merchant_id", how="inner")
        .filter(pl.col("disbursed_on") < pl.col("as_of"))
    )
    perf = (
        performance.select("loan_id", "merchant_id", "reported_on", "days_past_due", "outstanding_fen", "status")
        .join(pop, on="merchant_id", how="inner")
        .filter(pl.col("reported_on") < pl.col("as_of"))
    )
    last = perf.group_by("loan_id", "as_of").agg(
        pl.col("status").sort_by("reported_on").last().alias("last_status"),
        pl.col("outstanding_fen").sort_by("reported_on").last().alias("last_outstanding"),
        pl.col("days_past_due").sort_by("reported_on").last().alias("last_dpd"),
    )
    per_loan = ln.join(last, on=["loan_id", "as_of"], how="left").with_columns(
        open=pl.col("last_status").fill_null("current") != "closed",
        balance=pl.col("last_outstanding").fill_null(pl.col("principal_fen")),
        maturity=pl.col("disbursed_on").dt.offset_by(pl.format("{}mo", pl.col("term_months"))),
    )
    loan_agg = per_loan.group_by("merchant_id", "as_of").agg(
        pl.len().cast(pl.Int64).alias("prior_loans"),
        pl.col("open").sum().cast(pl.Int64).alias("open_loans"),
        (pl.col("balance").filter(pl.col("open")).sum() / 100.0).alias("current_outstanding_yuan"),
        pl.col("last_dpd").fill_null(0).filter(pl.col("open")).max().cast(pl.Int64).alias("current_dpd"),
        pl.col("maturity").filter(pl.col("open")).max().alias("_maturity"),
    )
    y = _since("reported_on", 365)
    perf_agg = perf.group_by("merchant_id", "as_of").agg(
        pl.col("days_past_due").max().cast(pl.Int64).alias("worst_dpd_ever"),
        pl.col("days_past_due").filter(y).max().cast(pl.Int64).alias("worst_dpd_365d"),
        pl.when(y.any()).then((y & (pl.col("days_past_due") > 0)).sum()).cast(pl.Int64).alias("delinquent_months_365d"),
        pl.col("reported_on").filter(pl.col("days_past_due") > 0).max().alias("_last_delinq"),
    )
    has = pl.col("prior_loans").is_not_null()
    return (
        pop.join(loan_agg, on=["merchant_id", "as_of"], how="left")
        .join(perf_agg, on=["merchant_id", "as_of"], how="left")
        .select(
            "merchant_id",
            "as_of",
            has.alias("has_credit_history"),
            pl.col("prior_loans").fill_null(0),
            pl.col("open_loans").fill_null(0),
            pl.when(has).then(pl.col("current_outstanding_yuan").fill_null(0.0)).alias("current_outstanding_yuan"),
            "current_dpd",
            ((pl.col("_maturity") - pl.col("as_of")).dt.total_days() / DAYS_PER_MONTH).alias("months_to_maturity"),
            "worst_dpd_ever",
            "worst_dpd_365d",
            "delinquent_months_365d",
            ((pl.col("as_of") - pl.col("_last_delinq")).dt.total_days() / DAYS_PER_MONTH).alias(
                "months_since_last_delinquency"
            ),
        )
    )


def public_record_features(records: pl.LazyFrame, pop: pl.LazyFrame) -> pl.LazyFrame:
    """Penalties and list status (abnormal operation, serious violation) as published before ``as_of``.

    A record whose ``removed_on`` is before ``as_of`` (credit repair, publicity ended, taken off a
    list) is no longer current: it leaves the 365-day penalty counts and the "listed" flags, and
    stays only in the "ever" features, as the catalogue describes them.
    """
    r = (
        records.select("record_id", "merchant_id", "record_type", "published_on", "penalty_fen", "removed_on")
        .join(pop, on="merchant_id", how="inner")
        .filter(pl.col("published_on") < pl.col("as_of"))
    )
    pen = pl.col("record_type") == "administrative_penalty"
    y = _since("published_on", 365)
    current = pl.col("removed_on").is_null() | (pl.col("removed_on") >= pl.col("as_of"))

    def listed(kind: str) -> pl.Expr:
        """On the list: a current listing later than the latest removal row (a same-day removal wins)."""
        day = pl.col("published_on")
        last_in = day.filter((pl.col("record_type") == f"{kind}_listed") & current).max()
        last_out = day.filter(pl.col("record_type") == f"{kind}_removed").max()
        return (last_in.is_not_null() & (last_out.is_null() | (last_in > last_out))).fill_null(False)

    agg = r.group_by("merchant_id", "as_of").agg(
        (pen & y & current).sum().cast(pl.Int64).alias("penalties_365d"),
        pen.sum().cast(pl.Int64).alias("penalties_ever"),
        (pl.col("penalty_fen").filter(pen & y & current).sum() / 100.0).alias("penalty_amount_yuan_365d"),
        listed("abnormal_operation").alias("abnormal_operation_listed"),
        (pl.col("record_type") == "abnormal_operation_listed").any().alias("abnormal_operation_ever"),
        listed("serious_violation").alias("serious_violation_listed"),
    )
    return pop.join(agg, on=["merchant_id", "as_of"], how="left").select(
        "merchant_id",
        "as_of",
        pl.col("penalties_365d").fill_null(0),
        pl.col("penalties_ever").fill_null(0),
        pl.col("penalty_amount_yuan_365d").fill_null(0.0),
        pl.col("abnormal_operation_listed").fill_null(False),
        pl.col("abnormal_operation_ever").fill_null(False),
        pl.col("serious_violation_listed").fill_null(False),
    )


def profile_features(merchants: pl.LazyFrame, pop: pl.LazyFrame) -> pl.LazyFrame:
    """Sector, province, urban/rural, business form, tenure and registered capital."""
    reg, a = pl.col("registered_on"), pl.col("as_of")
    months = (a.dt.year() - reg.dt.year()).cast(pl.Int64) * 12 + (a.dt.month() - reg.dt.month()).cast(pl.Int64)
    months = months - (a.dt.day() < reg.dt.day()).cast(pl.Int64)
    return pop.join(merchants, on="merchant_id", how="left").select(
        "merchant_id",
        "as_of",
        "sector",
        pl.col("region_code").str.slice(0, 2).alias("province"),
        pl.when(pl.col("region_code").str.slice(4, 2).cast(pl.Int32, strict=False) < 21)
        .then(pl.lit("urban"))
        .when(pl.col("region_code").is_not_null())
        .then(pl.lit("rural"))
        .alias("urban_rural"),
        "business_form",
        months.alias("tenure_months"),
        (pl.col("registered_capital_fen") / 100.0).log1p().alias("registered_capital_log"),
    )
