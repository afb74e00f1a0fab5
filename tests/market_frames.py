"""Tiny random markets in the raw-table contracts, built directly as Polars frames.

For unit and property tests of the feature pipeline (no simulator needed). Dense enough that
every feature family sees events, small enough to build in milliseconds. Test-only: importable
as ``market_frames`` from any test (``tests/`` is on ``sys.path`` through its conftest).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl

from features.events import COMPLAINT_CATEGORIES
from features.sales import CHANNELS
from features.tables import TZ

SECTORS = (
    "catering",
    "retail",
    "accommodation",
    "housekeeping",
    "laundry_dyeing",
    "appliance_repair",
    "portrait_photography",
    "beauty_hairdressing",
    "convenience",
)
STATUSES = ("current", "delinquent", "default", "written_off", "closed")
RECORD_TYPES = (
    "administrative_penalty",
    "abnormal_operation_listed",
    "abnormal_operation_removed",
    "serious_violation_listed",
    "serious_violation_removed",
)
TS = pl.Datetime("us", TZ)


def _ts(rng: np.random.Generator, start: date, days: int, n: int) -> list[datetime]:
    base = datetime(start.year, start.month, start.day, tzinfo=ZoneInfo(TZ))
    secs = rng.integers(0, days * 86400, n)
    return [base + timedelta(seconds=int(s)) for s in secs]


def month_ends(first: date, last: date) -> list[date]:
    out, y, m = [], first.year, first.month
    while True:
        nxt = date(y + (m == 12), m % 12 + 1, 1)
        end = nxt - timedelta(days=1)
        if end > last:
            return out
        if end >= first:
            out.append(end)
        y, m = nxt.year, nxt.month


def tiny_market(
    seed: int,
    merchants: int = 3,
    start: date = date(2023, 1, 1),
    days: int = 730,
    txns: int = 400,
    customers: int = 15,
) -> dict[str, pl.DataFrame]:
    """A random market of ``merchants`` merchants over ``days`` days from ``start`` (all six tables)."""
    rng = np.random.default_rng(seed)
    ids = [f"M{i:08d}" for i in range(1, merchants + 1)]
    end = start + timedelta(days=days - 1)
    merch = pl.DataFrame(
        {
            "merchant_id": ids,
            "credit_code": ["91110000MA00000000"] * merchants,
            "name": [f"shop {i}" for i in range(merchants)],
            "owner_hash": [f"{i:016x}" for i in range(merchants)],
            "sector": rng.choice(SECTORS[:2], merchants).tolist(),
            "region_code": rng.choice(["110101", "110229", "320106", "320321"], merchants).tolist(),
            "business_form": rng.choice(["individual_business", "enterprise"], merchants).tolist(),
            "registered_on": [start - timedelta(days=int(d)) for d in rng.integers(30, 3000, merchants)],
            "registered_capital_fen": [None if rng.random() < 0.3 else int(rng.integers(0, 10**9)) for _ in ids],
        },
        schema_overrides={"registered_capital_fen": pl.Int64},
    )
    n = txns
    cust = rng.integers(0, customers, n)
    txn = pl.DataFrame(
        {
            "txn_id": np.arange(n, dtype=np.int64),
            "merchant_id": rng.choice(ids, n).tolist(),
            "ts": _ts(rng, start, days, n),
            "txn_type": np.where(rng.random(n) < 0.1, "refund", "sale").tolist(),
            "amount_fen": rng.integers(1, 50_000, n),
            "channel": rng.choice(CHANNELS, n).tolist(),
            "customer_hash": [None if c == 0 else f"{c:016x}" for c in cust],
        },
        schema_overrides={"ts": TS, "customer_hash": pl.String},
    )
    nc = int(rng.integers(0, 4 * merchants + 1))
    recv = _ts(rng, start, days, nc)
    comp = pl.DataFrame(
        {
            "complaint_id": [f"C{i:010d}" for i in range(nc)],
            "merchant_id": rng.choice(ids, nc).tolist(),
            "received_at": recv,
            "resolved_at": [
                None if rng.random() < 0.3 else r + timedelta(hours=int(rng.integers(1, 2000))) for r in recv
            ],
            "category": rng.choice(COMPLAINT_CATEGORIES, nc).tolist(),
            "severity": rng.integers(1, 4, nc).astype(np.int8),
            "source": ["platform"] * nc,
        },
        schema_overrides={"received_at": TS, "resolved_at": TS, "severity": pl.Int8},
    )
    loans_rows, perf_rows = [], []
    for k in range(int(rng.integers(0, 2 * merchants + 1))):
        lid, mid = f"L{k:010d}", str(rng.choice(ids))
        disb = start + timedelta(days=int(rng.integers(0, days - 40)))
        principal = int(rng.integers(100_000, 10_000_000))
        loans_rows.append((lid, mid, "term_loan", disb, principal, 12, 0.1, "B001"))
        dpd, status = 0, "current"
        for i, rep in enumerate(month_ends(disb, end)):
            if status in ("closed", "written_off"):
                break
            dpd = 0 if rng.random() < 0.6 else dpd + int(rng.integers(1, 60))
            status = (
                "closed"
                if rng.random() < 0.08
                else (
                    "written_off"
                    if dpd > 150 and rng.random() < 0.3
                    else ("default" if dpd >= 90 else ("delinquent" if dpd > 0 else "current"))
                )
            )
            perf_rows.append((lid, rep, mid, dpd, max(0, principal - i * principal // 12), status))
    loans = pl.DataFrame(
        loans_rows,
        schema={
            "loan_id": pl.String,
            "merchant_id": pl.String,
            "product": pl.String,
            "disbursed_on": pl.Date,
            "principal_fen": pl.Int64,
            "term_months": pl.Int16,
            "annual_rate": pl.Float64,
            "lender_code": pl.String,
        },
        orient="row",
    )
    perf = pl.DataFrame(
        perf_rows,
        schema={
            "loan_id": pl.String,
            "reported_on": pl.Date,
            "merchant_id": pl.String,
            "days_past_due": pl.Int32,
            "outstanding_fen": pl.Int64,
            "status": pl.String,
        },
        orient="row",
    )
    npr = int(rng.integers(0, 3 * merchants + 1))
    rtype = rng.choice(RECORD_TYPES, npr).tolist()
    recs = pl.DataFrame(
        {
            "record_id": [f"P{i:010d}" for i in range(npr)],
            "merchant_id": rng.choice(ids, npr).tolist(),
            "record_type": rtype,
            "published_on": [start + timedelta(days=int(d)) for d in rng.integers(0, days, npr)],
            "penalty_fen": [int(rng.integers(0, 10**6)) if t == "administrative_penalty" else None for t in rtype],
        },
        schema_overrides={"penalty_fen": pl.Int64, "published_on": pl.Date, "record_type": pl.String},
    )
    # about a third of the penalties and listings removed later (credit repair, publicity ended, off the list)
    gone = (rng.random(npr) < 0.35) & ~recs["record_type"].str.ends_with("_removed").to_numpy()
    later = rng.integers(0, days, npr)
    recs = recs.with_columns(
        removed_on=pl.Series(
            [p + timedelta(days=int(k)) if g else None for p, k, g in zip(recs["published_on"], later, gone)],
            dtype=pl.Date,
        )
    )
    tables = {
        "merchants": merch,
        "transactions": txn,
        "complaints": comp,
        "loans": loans,
        "loan_performance": perf,
        "public_records": recs,
    }
    return {
        name: df.cast({c: t for c, t in CONTRACT_DTYPES[name].items() if c in df.columns})
        for name, df in tables.items()
    }


S, I64, D = pl.String, pl.Int64, pl.Date
CONTRACT_DTYPES: dict[str, dict[str, pl.DataType]] = {
    "merchants": {
        "merchant_id": S,
        "credit_code": S,
        "name": S,
        "owner_hash": S,
        "sector": S,
        "region_code": S,
        "business_form": S,
        "registered_on": D,
        "registered_capital_fen": I64,
    },
    "transactions": {
        "txn_id": I64,
        "merchant_id": S,
        "ts": TS,
        "txn_type": S,
        "amount_fen": I64,
        "channel": S,
        "customer_hash": S,
    },
    "complaints": {
        "complaint_id": S,
        "merchant_id": S,
        "received_at": TS,
        "resolved_at": TS,
        "category": S,
        "severity": pl.Int8,
        "source": S,
    },
    "loans": {
        "loan_id": S,
        "merchant_id": S,
        "product": S,
        "disbursed_on": D,
        "principal_fen": I64,
        "term_months": pl.Int16,
        "annual_rate": pl.Float64,
        "lender_code": S,
    },
    "loan_performance": {
        "loan_id": S,
        "reported_on": D,
        "merchant_id": S,
        "days_past_due": pl.Int32,
        "outstanding_fen": I64,
        "status": S,
    },
    "public_records": {
        "record_id": S,
        "merchant_id": S,
        "record_type": S,
        "published_on": D,
        "penalty_fen": I64,
        "removed_on": D,
    },
}
"""Column dtypes of the raw-table contracts (data_contracts/contracts/*.yaml)."""
