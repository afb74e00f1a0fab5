"""Feature values against a naive per-row reference computed straight from the raw events."""

from __future__ import annotations

import math
from collections import Counter
from datetime import date, timedelta

import polars as pl
import pytest

from features import RawTables, compute_features, load_catalog
from features.tables import local_date
from market_frames import tiny_market

AS_OF = [date(2023, 9, 1), date(2024, 3, 1), date(2024, 7, 17), date(2024, 12, 1)]


def _naive(market: dict[str, pl.DataFrame], m: str, a: date) -> dict[str, object]:
    """Each feature of one row, computed event by event (slow, obviously point in time)."""
    t = (
        market["transactions"]
        .with_columns(local_date("ts").alias("day"))
        .filter((pl.col("merchant_id") == m) & (pl.col("day") < a))
    )
    sales = t.filter(pl.col("txn_type") == "sale")
    refunds = t.filter(pl.col("txn_type") == "refund")
    out: dict[str, object] = {}

    def win(df: pl.DataFrame, w: int, start: int = 0) -> pl.DataFrame:
        return df.filter((pl.col("day") >= a - timedelta(days=w + start)) & (pl.col("day") < a - timedelta(days=start)))

    def net(w: int, start: int = 0) -> float:
        return (win(sales, w, start)["amount_fen"].sum() - win(refunds, w, start)["amount_fen"].sum()) / 100

    first = sales["day"].min()
    hist = (a - first).days if first is not None else None
    for w in (30, 90, 180, 365):
        s, r = win(sales, w), win(refunds, w)
        out[f"sales_gross_yuan_{w}d"] = s["amount_fen"].sum() / 100
        out[f"sales_net_yuan_{w}d"] = net(w)
        out[f"sale_count_{w}d"] = s.height
        out[f"active_days_{w}d"] = s["day"].n_unique()
        if w != 180:
            out[f"refund_rate_count_{w}d"] = r.height / s.height if s.height else None
            out[f"refund_rate_amount_{w}d"] = r["amount_fen"].sum() / s["amount_fen"].sum() if s.height else None
            out[f"avg_ticket_yuan_{w}d"] = s["amount_fen"].sum() / 100 / s.height if s.height else None
        if w in (90, 365):
            first_txn = t["day"].min()
            n = min(w, (a - first_txn).days if first_txn is not None else 0)
            daily = {d: 0.0 for d in (a - timedelta(days=k) for k in range(1, n + 1))}
            for d, amt in win(sales, w).select("day", "amount_fen").iter_rows():
                daily[d] += amt / 100
            for d, amt in win(refunds, w).select("day", "amount_fen").iter_rows():
                if d in daily:
                    daily[d] -= amt / 100
            vals = list(daily.values())
            mean = sum(vals) / n if n else 0
            sd = math.sqrt(max(0.0, sum(v * v for v in vals) / n - mean * mean)) if n else 0
            out[f"daily_sales_cv_{w}d"] = sd / mean if n >= 2 and mean > 0 else None
            wk = s.filter(pl.col("day").dt.weekday() >= 6)["amount_fen"].sum()
            out[f"weekend_share_{w}d"] = wk / s["amount_fen"].sum() if s.height else None
            out[f"digital_rmb_share_{w}d"] = (s["channel"] == "digital_rmb").sum() / s.height if s.height else None
            cust = s.filter(pl.col("customer_hash").is_not_null())
            counts = Counter(cust["customer_hash"].to_list())
            out[f"distinct_customers_{w}d"] = len(counts)
            out[f"repeat_customer_share_{w}d"] = sum(c >= 2 for c in counts.values()) / len(counts) if counts else None
            if w == 90:
                out["single_visit_sale_share_90d"] = (
                    sum(c == 1 for c in counts.values()) / cust.height if cust.height else None
                )
                amts = cust.group_by("customer_hash").agg(pl.col("amount_fen").sum())["amount_fen"].to_list()
                tot = sum(amts)
                out["customer_top10_share_90d"] = sum(sorted(amts, reverse=True)[:10]) / tot if tot else None
                out["customer_hhi_90d"] = sum((x / tot) ** 2 for x in amts) if tot else None
    buckets = [net(30, 30 * k) for k in range(6)][::-1]
    mean = sum(buckets) / 6
    slope = sum((x - 2.5) * y for x, y in enumerate(buckets)) / 17.5
    out["sales_trend_180d"] = slope / mean if hist is not None and hist >= 180 and mean > 0 else None
    base = net(30, 30)
    out["sales_growth_mom"] = net(30) / base - 1 if hist is not None and hist >= 60 and base > 0 else None
    base = net(90, 365)
    out["sales_growth_yoy"] = net(90) / base - 1 if hist is not None and hist >= 455 and base > 0 else None
    g90 = win(sales, 90)["amount_fen"].sum()
    out["sales_share_30d_in_90d"] = (
        win(sales, 30)["amount_fen"].sum() / g90 if hist is not None and hist >= 90 and g90 > 0 else None
    )
    first_txn = t["day"].min()
    year_days = min(365, (a - first_txn).days) if first_txn is not None else 0
    n365 = win(sales, 365).height

    def level(num: float, days: int, min_hist: int, per_year: float) -> float | None:
        ok = hist is not None and hist >= min_hist and per_year > 0
        return num / days / (per_year / year_days) if ok else None

    out["sale_count_level_30d_vs_365d"] = level(win(sales, 30).height, 30, 90, n365)
    out["sale_count_level_90d_vs_365d"] = level(win(sales, 90).height, 90, 180, n365)
    weights = [0.6**k for k in range(6)]
    ewm = sum(wt * win(sales, 30, 30 * k).height for k, wt in enumerate(weights)) / sum(weights)
    out["sale_count_ewm_level_vs_365d"] = level(ewm, 30, 180, n365)
    out["active_days_level_30d_vs_365d"] = level(
        win(sales, 30)["day"].n_unique(), 30, 90, win(sales, 365)["day"].n_unique()
    )
    rr90 = win(refunds, 90).height / win(sales, 90).height if win(sales, 90).height else None
    rr365 = win(refunds, 365).height / n365 if n365 else None
    out["refund_rate_90d_vs_365d"] = (
        rr90 / rr365 if hist is not None and hist >= 180 and rr90 is not None and rr365 else None
    )
    out["days_since_last_sale"] = (a - sales["day"].max()).days if sales.height else None
    out["sales_history_days"] = min(hist, 365) if hist is not None else None  # capped at the observation window
    out["thin_file"] = hist is None or hist < 90

    c = (
        market["complaints"]
        .with_columns(local_date("received_at").alias("recv"), local_date("resolved_at").alias("res"))
        .filter((pl.col("merchant_id") == m) & (pl.col("recv") < a))
    )
    c365 = c.filter(pl.col("recv") >= a - timedelta(days=365))
    c90 = c.filter(pl.col("recv") >= a - timedelta(days=90))
    out["complaints_30d"] = c.filter(pl.col("recv") >= a - timedelta(days=30)).height
    out["complaints_90d"] = c90.height
    out["complaint_severity_sum_90d"] = int(c90["severity"].cast(pl.Int64).sum())
    out["complaints_unresolved_90d"] = c90.filter(pl.col("res").is_null() | (pl.col("res") >= a)).height
    out["complaints_365d"] = c365.height
    out["complaint_severity_sum_365d"] = int(c365["severity"].cast(pl.Int64).sum())
    unresolved = c365.filter(pl.col("res").is_null() | (pl.col("res") >= a)).height
    out["complaints_unresolved_share_365d"] = unresolved / c365.height if c365.height else None
    done = c365.filter(pl.col("res") < a)
    days = [(r - q).total_seconds() / 86400 for q, r in done.select("received_at", "resolved_at").iter_rows()]
    out["complaint_median_days_to_resolve_365d"] = (
        sorted(days)[len(days) // 2]
        if len(days) % 2
        else ((sorted(days)[len(days) // 2 - 1] + sorted(days)[len(days) // 2]) / 2 if days else None)
    )
    out["days_since_last_complaint"] = (a - c["recv"].max()).days if c.height else None
    s365 = out["sale_count_365d"]
    out["complaints_per_1k_txn_365d"] = c365.height * 1000 / s365 if s365 else None

    p = market["loan_performance"].filter((pl.col("merchant_id") == m) & (pl.col("reported_on") < a))
    p365 = p.filter(pl.col("reported_on") >= a - timedelta(days=365))
    out["worst_dpd_ever"] = p["days_past_due"].max()
    out["worst_dpd_365d"] = p365["days_past_due"].max()
    out["delinquent_months_365d"] = (p365["days_past_due"] > 0).sum() if p365.height else None
    loans = market["loans"].filter((pl.col("merchant_id") == m) & (pl.col("disbursed_on") < a))
    out["prior_loans"] = loans.height
    out["has_credit_history"] = loans.height > 0
    bal, n_open = 0, 0
    for lid, principal in loans.select("loan_id", "principal_fen").iter_rows():
        rep = p.filter(pl.col("loan_id") == lid).sort("reported_on")
        status, o = (rep["status"][-1], rep["outstanding_fen"][-1]) if rep.height else ("current", principal)
        if status != "closed":
            n_open, bal = n_open + 1, bal + o
    out["open_loans"] = n_open
    out["current_outstanding_yuan"] = bal / 100 if loans.height else None

    r = market["public_records"].filter((pl.col("merchant_id") == m) & (pl.col("published_on") < a))
    current = pl.col("removed_on").is_null() | (pl.col("removed_on") >= a)  # removed before as_of: not current
    pen = r.filter(pl.col("record_type") == "administrative_penalty")
    out["penalties_ever"] = pen.height
    out["penalties_365d"] = pen.filter((pl.col("published_on") >= a - timedelta(days=365)) & current).height
    for kind in ("abnormal_operation", "serious_violation"):
        ins = r.filter((pl.col("record_type") == f"{kind}_listed") & current)["published_on"].max()
        outs = r.filter(pl.col("record_type") == f"{kind}_removed")["published_on"].max()
        out[f"{kind}_listed"] = ins is not None and (outs is None or ins > outs)
    return out


def _close(got: object, want: object) -> bool:
    if want is None or got is None:
        return want is None and got is None
    if isinstance(want, float) or isinstance(got, float):
        return math.isclose(float(got), float(want), rel_tol=1e-9, abs_tol=1e-9)
    return got == want


DENSE_AS_OF = [date(2024, m, 1) for m in range(1, 10)] + [date(2024, 7, 17), date(2024, 7, 20)]
"""Close dates: each 90-day window spans several segments, and a customer's presences own short runs of as_of."""


@pytest.mark.parametrize(("seed", "as_of"), [(s, AS_OF) for s in range(6)] + [(s, DENSE_AS_OF) for s in range(3)])
def test_features_match_naive_reference(seed, as_of):
    market = tiny_market(seed, merchants=3, txns=1500, customers=12)
    feats = compute_features(RawTables.from_frames(**market), as_of)
    checked = 0
    for row in feats.iter_rows(named=True):
        want = _naive(market, row["merchant_id"], row["as_of"])
        bad = {k: (row[k], v) for k, v in want.items() if not _close(row[k], v)}
        assert not bad, f"{row['merchant_id']} @ {row['as_of']}: (pipeline, reference) {bad}"
        checked += len(want)
    assert checked > 0


def test_output_columns_follow_catalogue():
    catalog = load_catalog()
    feats = compute_features(RawTables.from_frames(**tiny_market(7)), AS_OF)
    assert feats.columns == ["merchant_id", "as_of", *catalog.names]
    assert dict(feats.schema) == {"merchant_id": pl.String, "as_of": pl.Date, **catalog.schema()}


def test_profile_features():
    market = tiny_market(3, merchants=4)
    market["merchants"] = market["merchants"].with_columns(
        region_code=pl.Series(["110101", "110229", "320106", "440321"]),
        registered_on=pl.Series([date(2020, 3, 15), date(2020, 3, 1), date(2024, 1, 1), date(2010, 1, 1)]),
        registered_capital_fen=pl.Series([None, 0, 100_000, 10**10], dtype=pl.Int64),
    )
    f = compute_features(RawTables.from_frames(**market), [date(2024, 3, 1)]).sort("merchant_id")
    assert f["province"].to_list() == ["11", "11", "32", "44"]
    assert f["urban_rural"].to_list() == ["urban", "rural", "urban", "rural"]
    assert f["tenure_months"].to_list() == [47, 48, 2, 170]
    cap = f["registered_capital_log"].to_list()
    assert cap[0] is None and cap[1] == 0.0 and math.isclose(cap[2], math.log1p(1000))


def test_unregistered_merchants_are_not_in_the_population():
    market = tiny_market(4, merchants=2)
    market["merchants"] = market["merchants"].with_columns(
        registered_on=pl.Series([date(2020, 1, 1), date(2024, 6, 1)])
    )
    f = compute_features(RawTables.from_frames(**market), [date(2024, 3, 1), date(2024, 7, 1)])
    assert f.select("merchant_id", "as_of").rows() == [
        ("M00000001", date(2024, 3, 1)),
        ("M00000001", date(2024, 7, 1)),
        ("M00000002", date(2024, 7, 1)),
    ]


def test_peer_percentiles_rank_within_sector_and_province():
    market = tiny_market(5, merchants=4, txns=3000)
    market["merchants"] = market["merchants"].with_columns(sector=pl.lit("retail"), region_code=pl.lit("110101"))
    f = compute_features(RawTables.from_frames(**market), [date(2024, 3, 1)])
    ranks = f.sort("sales_net_yuan_90d")["net_sales_90d_peer_pct"].to_list()
    assert ranks == [0.25, 0.5, 0.75, 1.0]


def test_merchant_batches_give_the_same_features():
    """Batching bounds memory and changes nothing: peers are ranked over all batches together."""
    from polars.testing import assert_frame_equal

    from features.pipeline import merchant_batches

    tables = RawTables.from_frames(**tiny_market(3, merchants=7, txns=3000))
    assert len(merchant_batches(tables, batch_rows=500)) == 6
    one = compute_features(tables, AS_OF)
    many = compute_features(tables, AS_OF, batch_rows=500)
    assert_frame_equal(many, one, check_exact=False, rel_tol=1e-12)


def test_features_for_spine_keeps_spine_order_and_matches_the_population():
    from features import features_for_spine

    tables = RawTables.from_frames(**tiny_market(2, merchants=3, txns=800))
    spine = pl.DataFrame(
        {
            "merchant_id": ["M00000003", "M00000001", "M00000003"],
            "as_of": [date(2024, 7, 17), date(2024, 3, 1), date(2023, 9, 1)],
        }
    )
    got = features_for_spine(tables, spine)
    assert got.select("merchant_id", "as_of").equals(spine)
    full = compute_features(tables, spine["as_of"].unique().to_list())
    assert got.equals(spine.join(full, on=["merchant_id", "as_of"], how="left", maintain_order="left"))
