"""Property tests: a row's features see exactly the events strictly before its ``as_of``.

Random tiny markets and random ``as_of`` dates (hypothesis). Adding, deleting or changing any
event at or after ``as_of`` (including at ``as_of`` 00:00 Asia/Shanghai exactly) never changes
that row; an event just before ``as_of`` changes the features that should see it.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from features import RawTables, compute_features
from features.tables import TZ, local_date
from market_frames import CONTRACT_DTYPES, tiny_market

START = date(2023, 1, 1)
SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _at(d: date, t: time = time(0)) -> datetime:
    return datetime.combine(d, t, tzinfo=ZoneInfo(TZ))


def _rows(market: dict[str, pl.DataFrame], a: date, extra: list[date]) -> pl.DataFrame:
    feats = compute_features(RawTables.from_frames(**market), [a, *extra])
    return feats.filter(pl.col("as_of") == a)


def _append(df: pl.DataFrame, rows: dict, name: str) -> pl.DataFrame:
    new = pl.DataFrame(rows).cast({c: t for c, t in CONTRACT_DTYPES[name].items() if c in rows})
    return pl.concat([df, new.select(df.columns)], how="vertical")


def drop_future(m: dict[str, pl.DataFrame], a: date) -> dict[str, pl.DataFrame]:
    """Delete every event at or after ``a`` (a resolution after ``a`` is an event too)."""
    out = dict(m)
    out["transactions"] = m["transactions"].filter(local_date("ts") < a)
    out["complaints"] = (
        m["complaints"]
        .filter(local_date("received_at") < a)
        .with_columns(resolved_at=pl.when(local_date("resolved_at") < a).then(pl.col("resolved_at")))
    )
    out["loans"] = m["loans"].filter(pl.col("disbursed_on") < a)
    out["loan_performance"] = m["loan_performance"].filter(pl.col("reported_on") < a)
    out["public_records"] = (
        m["public_records"]
        .filter(pl.col("published_on") < a)
        .with_columns(
            removed_on=pl.when(pl.col("removed_on") < a).then(pl.col("removed_on"))  # a removal at or after a: not yet
        )
    )
    return out


def add_future(m: dict[str, pl.DataFrame], a: date, seed: int) -> dict[str, pl.DataFrame]:
    """Add events at or after ``a``, the first exactly at ``a`` 00:00, reusing merchants, customers and loans."""
    rng = np.random.default_rng(seed)
    out = dict(m)
    ids = m["merchants"]["merchant_id"].to_list()
    custs = [c for c in m["transactions"]["customer_hash"].unique().to_list() if c is not None] or ["00000000000000ab"]
    n = 40
    ts = [_at(a)] + [_at(a) + timedelta(seconds=int(s)) for s in rng.integers(0, 400 * 86400, n - 1)]
    out["transactions"] = _append(
        m["transactions"],
        {
            "txn_id": list(range(10**9, 10**9 + n)),
            "merchant_id": rng.choice(ids, n).tolist(),
            "ts": ts,
            "txn_type": rng.choice(["sale", "refund"], n).tolist(),
            "amount_fen": rng.integers(1, 10**6, n).tolist(),
            "channel": rng.choice(["digital_rmb", "alipay"], n).tolist(),
            "customer_hash": rng.choice(custs, n).tolist(),
        },
        "transactions",
    )
    k = 5
    recv = [_at(a)] + [_at(a) + timedelta(days=int(d)) for d in rng.integers(0, 300, k - 1)]
    out["complaints"] = _append(
        m["complaints"],
        {
            "complaint_id": [f"C9{i:09d}" for i in range(k)],
            "merchant_id": rng.choice(ids, k).tolist(),
            "received_at": recv,
            "resolved_at": [r + timedelta(days=3) for r in recv],
            "category": ["hygiene"] * k,
            "severity": [3] * k,
            "source": ["platform"] * k,
        },
        "complaints",
    )
    loans = m["loans"]
    if loans.height:
        pick = loans.sample(min(3, loans.height), seed=seed)
        reps = [a + timedelta(days=int(d)) for d in rng.integers(0, 200, pick.height)]
        out["loan_performance"] = _append(
            m["loan_performance"],
            {
                "loan_id": pick["loan_id"].to_list(),
                "reported_on": reps,
                "merchant_id": pick["merchant_id"].to_list(),
                "days_past_due": [400] * pick.height,
                "outstanding_fen": [1] * pick.height,
                "status": ["written_off"] * pick.height,
            },
            "loan_performance",
        ).unique(["loan_id", "reported_on"], keep="first")
    out["loans"] = _append(
        loans,
        {
            "loan_id": ["L9999999999"],
            "merchant_id": [ids[0]],
            "product": ["term_loan"],
            "disbursed_on": [a],
            "principal_fen": [10**7],
            "term_months": [12],
            "annual_rate": [0.1],
            "lender_code": ["B001"],
        },
        "loans",
    )
    out["public_records"] = _append(
        m["public_records"],
        {
            "record_id": ["P9999999998", "P9999999999"],
            "merchant_id": [ids[0], ids[-1]],
            "record_type": ["serious_violation_listed", "administrative_penalty"],
            "published_on": [a, a + timedelta(days=1)],
            "penalty_fen": [None, 10**6],
            "removed_on": [a + timedelta(days=30), None],
        },
        "public_records",
    )
    return out


def change_future(m: dict[str, pl.DataFrame], a: date, seed: int) -> dict[str, pl.DataFrame]:
    """Change every attribute of events at or after ``a``; move resolutions at or after ``a`` (or drop them)."""
    rng = np.random.default_rng(seed)
    out = dict(m)
    fut = local_date("ts") >= a
    t = m["transactions"]
    out["transactions"] = t.with_columns(
        amount_fen=pl.when(fut).then(pl.col("amount_fen") * 7 + 3).otherwise(pl.col("amount_fen")),
        txn_type=pl.when(fut).then(pl.lit("refund")).otherwise(pl.col("txn_type")),
        channel=pl.when(fut).then(pl.lit("digital_rmb")).otherwise(pl.col("channel")),
        customer_hash=pl.when(fut).then(pl.lit("00000000000000ff")).otherwise(pl.col("customer_hash")),
        merchant_id=pl.when(fut).then(pl.lit(m["merchants"]["merchant_id"][0])).otherwise(pl.col("merchant_id")),
        ts=pl.when(fut).then(pl.col("ts") + pl.duration(days=int(rng.integers(0, 30)))).otherwise(pl.col("ts")),
    )
    c = m["complaints"]
    late = local_date("resolved_at") >= a
    out["complaints"] = c.with_columns(
        severity=pl.when(local_date("received_at") >= a).then(pl.lit(3, dtype=pl.Int8)).otherwise(pl.col("severity")),
        resolved_at=pl.when(late & (pl.col("severity") == 1))
        .then(None)
        .when(late)
        .then(pl.col("resolved_at") + pl.duration(days=40))
        .otherwise(pl.col("resolved_at")),
    )
    out["loan_performance"] = m["loan_performance"].with_columns(
        days_past_due=pl.when(pl.col("reported_on") >= a)
        .then(pl.lit(999, dtype=pl.Int32))
        .otherwise(pl.col("days_past_due")),
        status=pl.when(pl.col("reported_on") >= a).then(pl.lit("default")).otherwise(pl.col("status")),
    )
    out["public_records"] = m["public_records"].with_columns(
        record_type=pl.when(pl.col("published_on") >= a)
        .then(pl.lit("abnormal_operation_listed"))
        .otherwise(pl.col("record_type")),
        penalty_fen=pl.when(pl.col("published_on") >= a).then(None).otherwise(pl.col("penalty_fen")),
        # every removal not yet made by a now falls exactly on a (or later): still not seen at a
        removed_on=pl.when(pl.col("removed_on").is_null() | (pl.col("removed_on") >= a))
        .then(pl.lit(a) + pl.duration(days=int(rng.integers(0, 3))))
        .otherwise(pl.col("removed_on")),
    )
    return out


market_args = dict(
    seed=st.integers(0, 10**6),
    merchants=st.integers(1, 4),
    txns=st.integers(0, 800),
    as_of_day=st.integers(1, 760),
    extra_day=st.integers(1, 760),
)


@SETTINGS
@given(**market_args)
def test_future_events_never_change_features(seed, merchants, txns, as_of_day, extra_day):
    market = tiny_market(seed, merchants=merchants, txns=txns)
    a = START + timedelta(days=as_of_day)
    extra = [START + timedelta(days=extra_day)]
    base = _rows(market, a, extra)
    for variant in (drop_future(market, a), add_future(market, a, seed), change_future(market, a, seed)):
        assert_frame_equal(_rows(variant, a, extra), base, check_exact=False, rel_tol=1e-12, abs_tol=1e-12)


@SETTINGS
@given(**market_args)
def test_events_just_before_as_of_are_seen(seed, merchants, txns, as_of_day, extra_day):
    market = tiny_market(seed, merchants=merchants, txns=txns)
    a = START + timedelta(days=as_of_day)
    extra = [START + timedelta(days=extra_day)]
    m = market["merchants"]["merchant_id"][0]
    base = _rows(market, a, extra).filter(pl.col("merchant_id") == m).row(0, named=True)
    last_moment = _at(a - timedelta(days=1), time(23, 59, 59, 999999))
    changed = dict(market)
    changed["transactions"] = _append(
        market["transactions"],
        {
            "txn_id": [10**9, 10**9 + 1],
            "merchant_id": [m, m],
            "ts": [last_moment, last_moment],
            "txn_type": ["sale", "sale"],
            "amount_fen": [12_345, 55],
            "channel": ["digital_rmb", "digital_rmb"],
            "customer_hash": ["00000000000000ee", "00000000000000ee"],
        },
        "transactions",
    )
    changed["complaints"] = _append(
        market["complaints"],
        {
            "complaint_id": ["C9999999999"],
            "merchant_id": [m],
            "received_at": [last_moment],
            "resolved_at": [None],
            "category": ["food_safety"],
            "severity": [3],
            "source": ["hotline_12315"],
        },
        "complaints",
    )
    changed["public_records"] = _append(
        market["public_records"],
        {
            "record_id": ["P9999999999"],
            "merchant_id": [m],
            "record_type": ["serious_violation_listed"],
            "published_on": [a - timedelta(days=1)],
            "penalty_fen": [None],
            "removed_on": [None],
        },
        "public_records",
    )
    changed["loans"] = _append(
        market["loans"],
        {
            "loan_id": ["L9999999999"],
            "merchant_id": [m],
            "product": ["term_loan"],
            "disbursed_on": [a - timedelta(days=40)],
            "principal_fen": [10**6],
            "term_months": [12],
            "annual_rate": [0.1],
            "lender_code": ["B001"],
        },
        "loans",
    )
    changed["loan_performance"] = _append(
        market["loan_performance"],
        {
            "loan_id": ["L9999999999"],
            "reported_on": [a - timedelta(days=1)],
            "merchant_id": [m],
            "days_past_due": [45],
            "outstanding_fen": [900_000],
            "status": ["delinquent"],
        },
        "loan_performance",
    )
    new = _rows(changed, a, extra).filter(pl.col("merchant_id") == m).row(0, named=True)
    for w in (30, 90, 180, 365):
        assert abs(new[f"sales_gross_yuan_{w}d"] - base[f"sales_gross_yuan_{w}d"] - 124.0) < 1e-6
        assert new[f"sale_count_{w}d"] == base[f"sale_count_{w}d"] + 2
    assert new["days_since_last_sale"] == 1
    assert new["digital_rmb_share_90d"] > (base["digital_rmb_share_90d"] or 0) - 1e-12
    assert new["distinct_customers_90d"] == base["distinct_customers_90d"] + 1
    assert new["complaints_90d"] == base["complaints_90d"] + 1
    assert new["complaints_food_safety_365d"] == base["complaints_food_safety_365d"] + 1
    assert new["days_since_last_complaint"] == 1
    assert new["complaints_unresolved_share_365d"] > 0
    assert new["serious_violation_listed"] is True
    assert new["prior_loans"] == base["prior_loans"] + 1
    assert new["worst_dpd_365d"] >= 45
    assert new["months_since_last_delinquency"] < 0.1
