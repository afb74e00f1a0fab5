"""Sales, refund and channel features: one merchant-day rollup, then windows by cumulative sums.

The rollup is computed once from transactions (one streaming pass). Each window total is
``cum(as_of) - cum(as_of - w)``, where ``cum(t)`` is the running total over days strictly
before ``t`` (an as-of join without exact matches), so no event on or after ``as_of`` enters.
"""

from __future__ import annotations

import polars as pl

CHANNELS = ("wechat_pay", "alipay", "unionpay_qr", "bank_card", "digital_rmb", "other")
SUM_WINDOWS = (30, 90, 180, 365)
OFFSETS = (0, 30, 60, 90, 120, 150, 180, 365, 455)
"""Days before ``as_of`` at which running totals are read (windows, trend buckets, growth bases)."""
HISTORY_CAP_DAYS = 365
"""``sales_history_days`` reads at most the observation window: an established merchant reads 365
whatever the as_of, so the feature tells entrants and thin files apart and is no calendar clock."""

_COUNTS = (
    "sale_amt",
    "sale_cnt",
    "id_cnt",
    "refund_amt",
    "refund_cnt",
    "active",
    "net",
    "wkd_amt",
    *(f"ch_{c}" for c in CHANNELS),
)
_CUMS = (*_COUNTS, "net_sq")


def daily_rollup(facts: pl.LazyFrame) -> pl.LazyFrame:
    """Merchant x local day: sale and refund amounts (fen) and counts, sale counts per channel and of
    identified customers; ``facts`` from ``features.tables.transaction_facts``."""
    sale = pl.col("sale")
    amt = pl.col("amount_fen")
    return (
        facts.select(
            "mkey",
            "day",
            pl.when(sale).then(amt).otherwise(0).alias("sale_amt"),
            sale.cast(pl.Int32).alias("sale_cnt"),
            (sale & pl.col("customer_hash").is_not_null()).cast(pl.Int32).alias("id_cnt"),
            pl.when(sale).then(0).otherwise(amt).alias("refund_amt"),
            (~sale).cast(pl.Int32).alias("refund_cnt"),
            *((sale & (pl.col("channel") == c)).cast(pl.Int32).alias(f"ch_{c}") for c in CHANNELS),
        )
        .group_by("mkey", "day")
        .agg(pl.all().sum())
    )


def _running_totals(daily: pl.LazyFrame) -> pl.LazyFrame:
    """Per merchant and day, totals over all days up to and including that day."""
    net = pl.col("sale_amt") - pl.col("refund_amt")
    return (
        daily.sort("mkey", "day")
        .with_columns(
            net.alias("net"),
            (pl.col("sale_cnt") > 0).cast(pl.Int64).alias("active"),
            pl.when(pl.col("day").dt.weekday() >= 6).then(pl.col("sale_amt")).otherwise(0).alias("wkd_amt"),
            ((net / 100.0) ** 2).alias("net_sq"),
        )
        .select(
            "mkey",
            "day",
            *(pl.col(c).cast(pl.Float64 if c == "net_sq" else pl.Int64).cum_sum().over("mkey").alias(c) for c in _CUMS),
            pl.when(pl.col("sale_cnt") > 0).then(pl.col("day")).forward_fill().over("mkey").alias("last_sale_day"),
        )
    )


def win(c: str, w: int, start: int = 0) -> pl.Expr:
    """Total of ``c`` over [as_of - w - start, as_of - start), from the running totals read at those offsets."""
    return pl.col(f"{c}@{start}") - pl.col(f"{c}@{start + w}")


def ratio(num: pl.Expr, den: pl.Expr) -> pl.Expr:
    """``num / den``, null when ``den`` is not positive."""
    return pl.when(den > 0).then(num / den).otherwise(None)


def sales_features(daily: pl.LazyFrame, pop: pl.LazyFrame) -> pl.LazyFrame:
    """Sales, refund, channel, trend and history features for every (merchant_id, as_of) of ``pop``.

    ``pop`` has merchant_id, as_of and mkey, sorted by (mkey, as_of).
    """
    totals = _running_totals(daily)
    first_sale = daily.group_by("mkey").agg(
        pl.col("day").filter(pl.col("sale_cnt") > 0).min().alias("first_sale_day"),
        pl.col("day").min().alias("first_txn_day"),
    )
    reads = []
    for o in OFFSETS:
        read = pop.select("mkey", (pl.col("as_of") - pl.duration(days=o)).alias("t")).join_asof(
            totals,
            left_on="t",
            right_on="day",
            by="mkey",
            strategy="backward",
            allow_exact_matches=False,
            check_sortedness=False,
        )
        cols = [pl.col(c).fill_null(0).alias(f"{c}@{o}") for c in _CUMS]
        if o == 0:
            cols.append(pl.col("last_sale_day"))
        reads.append(read.select(cols))
    wide = pl.concat([pop, *reads], how="horizontal")

    history = (pl.col("as_of") - pl.col("first_sale_day")).dt.total_days()
    history = pl.when(pl.col("first_sale_day") < pl.col("as_of")).then(history).otherwise(None)
    out: list[pl.Expr] = []
    for w in SUM_WINDOWS:
        out += [
            (win("sale_amt", w) / 100.0).alias(f"sales_gross_yuan_{w}d"),
            (win("net", w) / 100.0).alias(f"sales_net_yuan_{w}d"),
            win("sale_cnt", w).alias(f"sale_count_{w}d"),
            win("active", w).alias(f"active_days_{w}d"),
        ]
    for w in (30, 90, 365):
        out += [
            ratio(win("sale_amt", w) / 100.0, win("sale_cnt", w)).alias(f"avg_ticket_yuan_{w}d"),
            ratio(win("refund_cnt", w), win("sale_cnt", w)).alias(f"refund_rate_count_{w}d"),
            ratio(win("refund_amt", w), win("sale_amt", w)).alias(f"refund_rate_amount_{w}d"),
        ]
    txn_days = pl.when(pl.col("first_txn_day") < pl.col("as_of")).then(
        (pl.col("as_of") - pl.col("first_txn_day")).dt.total_days()
    )
    for w in (90, 365):
        n = pl.min_horizontal(pl.lit(w), txn_days.fill_null(0)).cast(pl.Float64)
        mean = win("net", w) / 100.0 / n
        var = (win("net_sq", w) / n - mean**2).clip(lower_bound=0.0)
        out += [
            pl.when((n >= 2) & (mean > 0)).then(var.sqrt() / mean).otherwise(None).alias(f"daily_sales_cv_{w}d"),
            ratio(win("wkd_amt", w), win("sale_amt", w)).alias(f"weekend_share_{w}d"),
            ratio(win("ch_digital_rmb", w), win("sale_cnt", w)).alias(f"digital_rmb_share_{w}d"),
        ]
    buckets = [win("net", 30, 30 * k) for k in range(6)]  # k = 0 is the latest 30 days
    bucket_mean = pl.sum_horizontal(buckets) / 6.0
    slope = pl.sum_horizontal([(2.5 - k) * b for k, b in enumerate(buckets)]) / 17.5
    out += [
        pl.when((history >= 180) & (bucket_mean > 0))
        .then(slope / bucket_mean)
        .otherwise(None)
        .alias("sales_trend_180d"),
        pl.when(history >= 60).then(ratio(win("net", 30), win("net", 30, 30)) - 1.0).alias("sales_growth_mom"),
        pl.when(history >= 455).then(ratio(win("net", 90), win("net", 90, 365)) - 1.0).alias("sales_growth_yoy"),
        pl.when(history >= 90).then(ratio(win("sale_amt", 30), win("sale_amt", 90))).alias("sales_share_30d_in_90d"),
        pl.when(history >= 90)
        .then(ratio(win("sale_amt", 30) / 30.0, win("sale_amt", 365) / pl.min_horizontal(pl.lit(365), txn_days)))
        .alias("sales_level_30d_vs_365d"),
        (pl.col("as_of") - pl.col("last_sale_day")).dt.total_days().alias("days_since_last_sale"),
        history.clip(upper_bound=HISTORY_CAP_DAYS).alias("sales_history_days"),
        history.fill_null(0).lt(90).alias("thin_file"),
    ]
    out += _latent_state(history, txn_days)
    for c in ("wechat_pay", "alipay", "unionpay_qr", "bank_card", "other"):
        out.append(ratio(win(f"ch_{c}", 365), win("sale_cnt", 365)).alias(f"channel_share_{c}_365d"))
    out.append(
        pl.sum_horizontal([(win(f"ch_{c}", 365) > 0).cast(pl.Int64) for c in CHANNELS]).alias("channels_used_365d")
    )

    return wide.join(first_sale, on="mkey", how="left", maintain_order="left").select("merchant_id", "as_of", *out)


def _refund_rate(w: int) -> pl.Expr:
    return ratio(win("refund_cnt", w), win("sale_cnt", w))


EWM_DECAY = 0.6
"""Weight of each older 30-day bucket relative to the next newer one in the weighted recent level."""


def _latent_state(history: pl.Expr, txn_days: pl.Expr) -> list[pl.Expr]:
    """Recent levels against the merchant's own yearly baseline: estimates of its current health.

    A merchant's size cancels out of these ratios, so they read how far the recent months sit
    from its own normal: counts (less noisy than amounts, which carry the ticket spread),
    an exponentially weighted level over six 30-day buckets, refund rates and trading days.
    """
    year_days = pl.min_horizontal(pl.lit(365), txn_days).cast(pl.Float64)

    def level(c: str, num: pl.Expr, days: float, min_history: int) -> pl.Expr:
        return pl.when(history >= min_history).then(ratio(num / days, win(c, 365) / year_days))

    weights = [EWM_DECAY**k for k in range(6)]
    ewm = pl.sum_horizontal([wt * win("sale_cnt", 30, 30 * k) for k, wt in enumerate(weights)]) / sum(weights)
    return [
        level("sale_cnt", win("sale_cnt", 30), 30.0, 90).alias("sale_count_level_30d_vs_365d"),
        level("sale_cnt", win("sale_cnt", 90), 90.0, 180).alias("sale_count_level_90d_vs_365d"),
        level("sale_cnt", ewm, 30.0, 180).alias("sale_count_ewm_level_vs_365d"),
        level("active", win("active", 30), 30.0, 90).alias("active_days_level_30d_vs_365d"),
        pl.when(history >= 180).then(ratio(_refund_rate(90), _refund_rate(365))).alias("refund_rate_90d_vs_365d"),
        win("id_cnt", 90).alias(IDENTIFIED_SALES_90D),
    ]


IDENTIFIED_SALES_90D = "_identified_sales_90d"
"""Sales with a known customer in the last 90 days: the denominator of the single-visit share (not a feature)."""
