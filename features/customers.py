"""Customer features: distinct and repeat customers (90/365 days), concentration (90 days).

Transactions are rolled up once to merchant x customer x *segment*, where the segments cut the
calendar at every ``as_of`` and every window start ``as_of - w``. Each window [as_of - w, as_of)
is then an exact union of whole segments, for month-start and arbitrary dates alike, and the
rollup is about as coarse as a monthly one.

Distinct and repeat counts avoid re-reading the rollup per ``as_of``: a customer's presence in
a segment "owns" the ``as_of`` dates from the segment's end up to (not including) the end of
that customer's next segment; it counts for window ``w`` while its segment still lies inside the
window. Each presence so adds +1 over an interval of ``as_of`` indices, summed by a difference
array. A customer is *repeat* in a window with two or more sales in it.
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import polars as pl

from features.sales import IDENTIFIED_SALES_90D
from features.tables import customer_key, local_date, merchant_key

COUNT_WINDOWS = (90, 365)
CONCENTRATION_WINDOW = 90


def segment_bounds(as_of: list[date]) -> list[date]:
    """Sorted cut points: every ``as_of`` and every window start."""
    cuts = {a for a in as_of}
    cuts |= {a - timedelta(days=w) for a in as_of for w in (*COUNT_WINDOWS, CONCENTRATION_WINDOW)}
    return sorted(cuts)


def customer_rollup(transactions: pl.LazyFrame, bounds: list[date]) -> pl.LazyFrame:
    """Sales of identified customers per merchant x customer x segment (index into ``bounds``)."""
    b = pl.Series("b", bounds, dtype=pl.Date)
    return (
        transactions.filter((pl.col("txn_type") == "sale") & pl.col("customer_hash").is_not_null())
        .select(merchant_key(), customer_key(), local_date("ts").alias("day"), "amount_fen")
        .filter((pl.col("day") >= bounds[0]) & (pl.col("day") < bounds[-1]))
        .select(
            "mkey",
            "ckey",
            (pl.lit(b).search_sorted(pl.col("day"), side="right").cast(pl.Int32) - 1).alias("seg"),
            "amount_fen",
        )
        .group_by("mkey", "ckey", "seg")
        .agg(pl.len().cast(pl.Int32).alias("cnt"), pl.col("amount_fen").sum().alias("amt"))
    )


def _segment_table(bounds: list[date], as_of: list[date]) -> pl.LazyFrame:
    """Per segment s = [bounds[s], bounds[s+1]): first ``as_of`` index that sees it (``lo``) and,
    per window w, one past the last ``as_of`` index whose window still holds it (``hi_w``)."""
    a = np.array(sorted(as_of), dtype="datetime64[D]")
    b = np.array(bounds, dtype="datetime64[D]")
    start, end = b[:-1], b[1:]
    cols = {"seg": np.arange(len(start), dtype=np.int32), "lo": np.searchsorted(a, end, side="left")}
    for w in sorted({*COUNT_WINDOWS, CONCENTRATION_WINDOW}):
        cols[f"hi_{w}"] = np.searchsorted(a, start + np.timedelta64(w, "D"), side="right")
    cols["start"] = start.astype(np.int64)  # days since epoch
    return pl.LazyFrame({k: v.astype(np.int64) if k != "seg" else v for k, v in cols.items()})


def customer_features(
    rollup: pl.LazyFrame, pop: pl.LazyFrame, bounds: list[date], as_of: list[date], conc_rows: pl.LazyFrame | None = None
) -> pl.LazyFrame:
    """Customer features for every (merchant_id, as_of) of ``pop``; ``as_of`` must hold all its dates.

    ``conc_rows`` (mkey, as_of), when given, limits the costly concentration features to those
    rows (null elsewhere); the distinct and repeat counts are computed for every row.
    """
    as_of = sorted(set(as_of))
    n_as_of = len(as_of)
    segs = _segment_table(bounds, as_of)
    same_next = (pl.col("mkey") == pl.col("mkey").shift(-1)) & (pl.col("ckey") == pl.col("ckey").shift(-1))
    same_prev = (pl.col("mkey") == pl.col("mkey").shift(1)) & (pl.col("ckey") == pl.col("ckey").shift(1))
    pres = (
        rollup.sort("mkey", "ckey", "seg")
        .join(segs, on="seg", how="left", maintain_order="left")
        .with_columns(
            pl.when(same_next).then(pl.col("lo").shift(-1)).otherwise(n_as_of).alias("owner_hi"),
            pl.when(same_prev).then(pl.col("start").shift(1)).alias("prev_start"),
        )
    )
    # the second-latest sale's segment start: this segment when it holds two sales, else the previous one
    t2 = pl.when(pl.col("cnt") >= 2).then(pl.col("start")).otherwise(pl.col("prev_start"))
    a_days = pl.Series(np.array(as_of, dtype="datetime64[D]").astype(np.int64))
    ends = {}
    for w in COUNT_WINDOWS:
        ends[f"dist_{w}"] = pl.min_horizontal("owner_hi", f"hi_{w}")
        rep_hi = pl.lit(a_days).search_sorted(t2 + w, side="right").cast(pl.Int64)
        ends[f"rep_{w}"] = pl.when(t2.is_not_null()).then(pl.min_horizontal(pl.col("owner_hi"), rep_hi)).otherwise(pl.col("lo"))
    intervals = pres.select("mkey", "lo", *(e.alias(k) for k, e in ends.items()))
    keys = list(ends)
    starts = intervals.select(
        "mkey", pl.col("lo").alias("idx"), *((pl.col(k) > pl.col("lo")).cast(pl.Int64).alias(k) for k in keys)
    )
    stops = [
        intervals.filter((pl.col(k) > pl.col("lo")) & (pl.col(k) < n_as_of)).select(
            "mkey", pl.col(k).alias("idx"), *(pl.lit(-1 if j == k else 0, dtype=pl.Int64).alias(j) for j in keys)
        )
        for k in keys
    ]
    deltas = pl.concat([starts, *stops]).group_by("mkey", "idx").agg(pl.col(keys).sum())
    idx_map = pl.LazyFrame({"as_of": as_of, "idx": list(range(n_as_of))}, schema={"as_of": pl.Date, "idx": pl.Int64})
    running = deltas.sort("mkey", "idx").select("mkey", "idx", *(pl.col(k).cum_sum().over("mkey") for k in keys))
    counts = (
        pop.join(idx_map, on="as_of", how="left", maintain_order="left")
        .join_asof(running, on="idx", by="mkey", strategy="backward", check_sortedness=False)
        .select("mkey", "as_of", *(pl.col(k).fill_null(0) for k in keys))
    )
    w = CONCENTRATION_WINDOW
    amounts = rollup.select("mkey", "ckey", "seg", "amt")
    in_window = (
        segs.filter(pl.col(f"hi_{w}") > pl.col("lo"))
        .select("seg", pl.int_ranges("lo", f"hi_{w}").alias("idx"))
        .explode("idx")
    )
    if conc_rows is not None:
        wanted = conc_rows.join(idx_map, on="as_of").select("mkey", "idx")
        amounts = amounts.join(wanted.select("mkey").unique(), on="mkey", how="semi")
        in_window = in_window.join(amounts, on="seg").join(wanted, on=["mkey", "idx"], how="semi")
    else:
        in_window = in_window.join(amounts, on="seg")
    conc = (
        in_window.group_by("mkey", "idx", "ckey")
        .agg(pl.col("amt").sum())
        .group_by("mkey", "idx")
        .agg(
            pl.col("amt").sum().alias("tot"),
            pl.col("amt").top_k(10).sum().alias("top10"),
            (pl.col("amt").cast(pl.Float64) ** 2).sum().alias("sq"),
        )
        .join(idx_map, on="idx")
        .select(
            "mkey",
            "as_of",
            (pl.col("top10") / pl.col("tot")).alias(f"customer_top10_share_{w}d"),
            (pl.col("sq") / pl.col("tot").cast(pl.Float64) ** 2).alias(f"customer_hhi_{w}d"),
        )
    )
    out = []
    for w_ in COUNT_WINDOWS:
        out += [
            pl.col(f"dist_{w_}").alias(f"distinct_customers_{w_}d"),
            pl.when(pl.col(f"dist_{w_}") > 0).then(pl.col(f"rep_{w_}") / pl.col(f"dist_{w_}")).alias(f"repeat_customer_share_{w_}d"),
        ]
    return (
        pop.join(counts, on=["mkey", "as_of"], how="left")
        .join(conc, on=["mkey", "as_of"], how="left")
        .select("merchant_id", "as_of", *out, f"customer_top10_share_{w}d", f"customer_hhi_{w}d")
    )


def single_visit_share() -> pl.Expr:
    """Share of the last 90 days' identified sales made by customers seen only once in them.

    Walk-in customers take a larger share as a business weakens and regulars drift away, so this reads the
    merchant's current health from its customer base. Needs the customer counts and the sales
    features' identified-sale count on the same row.
    """
    dist = pl.col("distinct_customers_90d")
    one_timers = dist - (pl.col("repeat_customer_share_90d") * dist).round()
    n = pl.col(IDENTIFIED_SALES_90D)
    return pl.when(n > 0).then(one_timers / n).alias("single_visit_sale_share_90d")
