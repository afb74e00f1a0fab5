"""Realistic data faults, so that validation and quarantine have work to do.

With ``defect_rate`` R, about R of each table's rows are faulty: a share is corrupted in place
(negative or zero money, an unknown merchant, a credit code with a wrong check character or an
illegal character, a zone-less or malformed timestamp, a resolution before the complaint) and
the rest are duplicate keys appended (half exact copies, half copies that disagree on a value).
Timestamp columns of ``transactions`` and ``complaints`` are then written as ISO-8601 strings
(a Parquet column carries one zone, so zone-less values need strings): good rows read like
``2024-03-05T12:34:56+08:00``. Only the faulty rows are touched row by row.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa

from data_contracts.uscc import ALPHABET
from simulation.arrow import TIMESTAMP_COLUMNS, fixed_width, schema

# per table: kind -> share of the faulty rows (duplicates are appended, the rest corrupted in place)
KINDS: dict[str, dict[str, float]] = {
    "merchants": {"bad_credit_code": 0.5, "malformed_credit_code": 0.2, "duplicate_key": 0.3},
    "transactions": {
        "negative_amount": 0.15,
        "zero_amount": 0.05,
        "unknown_merchant": 0.15,
        "zoneless_timestamp": 0.2,
        "malformed_timestamp": 0.15,
        "duplicate_key": 0.3,
    },
    "complaints": {
        "unknown_merchant": 0.2,
        "zoneless_timestamp": 0.2,
        "malformed_timestamp": 0.15,
        "resolved_before_received": 0.2,
        "duplicate_key": 0.25,
    },
    "loans": {"unknown_merchant": 0.3, "negative_amount": 0.2, "zero_amount": 0.1, "duplicate_key": 0.4},
    "loan_performance": {"unknown_merchant": 0.3, "negative_amount": 0.3, "duplicate_key": 0.4},
    "public_records": {
        "unknown_merchant": 0.3,
        "negative_amount": 0.25,
        "removed_before_published": 0.15,
        "duplicate_key": 0.3,
    },
}
AMOUNT = {
    "transactions": "amount_fen",
    "loans": "principal_fen",
    "loan_performance": "outstanding_fen",
    "public_records": "penalty_fen",
}
CONFLICT = {"merchants": "name", "complaints": "severity"}
"""Column that a conflicting duplicate changes, where the table has no amount."""
_LOCAL_OFFSET_S = 8 * 3600


def iso_strings(ts: pa.Array) -> pa.Array:
    """``YYYY-MM-DDTHH:MM:SS+08:00`` for a timestamp[us, Asia/Shanghai] array (nulls stay null)."""
    ts = pa.array(ts)
    valid = ~ts.is_null().to_numpy(zero_copy_only=False)
    us = ts.cast(pa.int64()).fill_null(0).to_numpy(zero_copy_only=False)
    local = np.where(valid, us // 1_000_000, 0) + _LOCAL_OFFSET_S
    day = local // 86400
    lo = int(day.min()) if len(day) else 0
    n_days = int(day.max()) - lo + 1 if len(day) else 1
    days = np.datetime_as_string(np.arange(lo, lo + n_days).astype("datetime64[D]")).astype("S10")
    out = np.empty((len(us), 25), dtype=np.uint8)
    out[:, :10] = days.view(np.uint8).reshape(-1, 10)[day - lo]
    out[:, 10] = ord("T")
    sod = local - day * 86400
    for pos, value in ((11, sod // 3600), (14, sod // 60 % 60), (17, sod % 60)):
        out[:, pos] = 48 + value // 10
        out[:, pos + 1] = 48 + value % 10
    out[:, 13] = out[:, 16] = ord(":")
    out[:, 19:] = np.frombuffer(b"+08:00", dtype=np.uint8)
    return fixed_width(out, valid=valid if not valid.all() else None)


def corrupt(table: str, tbl: pa.Table, rate: float, rng: np.random.Generator) -> tuple[pa.Table, dict[str, int]]:
    """Return the table with faults injected (and string timestamps where they apply), and counts per kind."""
    n = tbl.num_rows
    kinds = KINDS[table]
    names = list(kinds)
    faulty = np.flatnonzero(rng.random(n) < rate)
    kind = rng.choice(len(names), size=len(faulty), p=list(kinds.values()))
    rows = {name: faulty[kind == i] for i, name in enumerate(names)}
    counts = {name: len(idx) for name, idx in rows.items()}
    cols: dict[str, pl.Series] = {c: pl.from_arrow(tbl.column(c)) for c in tbl.column_names}  # type: ignore[misc]

    def edit(col: str, idx: np.ndarray, values) -> None:
        if len(idx):
            cols[col] = cols[col].scatter(idx, pl.Series(values, dtype=cols[col].dtype))

    amount = AMOUNT.get(table)
    if amount is not None:
        neg = rows.get("negative_amount", np.zeros(0, dtype=np.int64))
        current = cols[amount].gather(neg).fill_null(10_000).abs().clip(lower_bound=1)
        edit(amount, neg, -current)
        edit(
            amount,
            rows.get("zero_amount", np.zeros(0, dtype=np.int64)),
            np.zeros(counts.get("zero_amount", 0), dtype=np.int64),
        )
    if "unknown_merchant" in rows:
        idx = rows["unknown_merchant"]
        edit("merchant_id", idx, [f"M9{v:07d}" for v in rng.integers(0, 10**7, len(idx))])
    if table == "merchants":
        idx = rows["bad_credit_code"]
        codes = cols["credit_code"].gather(idx).to_list()
        shift = rng.integers(1, len(ALPHABET), len(idx))
        edit(
            "credit_code",
            idx,
            [c[:17] + ALPHABET[(ALPHABET.index(c[17]) + k) % len(ALPHABET)] for c, k in zip(codes, shift, strict=True)],
        )
        idx = rows["malformed_credit_code"]
        codes = cols["credit_code"].gather(idx).to_list()
        edit("credit_code", idx, [c[:17] if i % 2 else c[:10] + "O" + c[11:] for i, c in enumerate(codes)])
    if table == "complaints":
        idx = rows["resolved_before_received"]
        hours = rng.integers(1, 73, len(idx))
        received = cols["received_at"].gather(idx)
        edit("resolved_at", idx, received - pl.Series(hours * 3_600_000_000, dtype=pl.Int64).cast(pl.Duration("us")))
    if table == "public_records":
        idx = rows["removed_before_published"]
        days = pl.Series(rng.integers(1, 60, len(idx)), dtype=pl.Int64).cast(pl.Duration("ms"))
        edit("removed_on", idx, (cols["published_on"].gather(idx) - days).cast(pl.Date))
    if table in TIMESTAMP_COLUMNS:
        for c in TIMESTAMP_COLUMNS[table]:
            cols[c] = pl.from_arrow(iso_strings(cols[c].to_arrow()))  # type: ignore[assignment]
        first = TIMESTAMP_COLUMNS[table][0]
        idx = rows["zoneless_timestamp"]
        edit(first, idx, [s[:19] for s in cols[first].gather(idx).to_list()])
        idx = rows["malformed_timestamp"]
        edit(
            first,
            idx,
            [
                f"{s[:4]}-13-45 25:{s[14:19]}" if i % 2 else s[:19].replace("-", "/").replace("T", " ")
                for i, s in enumerate(cols[first].gather(idx).to_list())
            ],
        )
    out = pl.DataFrame(cols)
    dup = rows["duplicate_key"]
    if len(dup):
        copies = out[dup]
        conflict = np.flatnonzero(rng.random(len(dup)) < 0.5)
        target = amount or CONFLICT.get(table)
        if target is not None and len(conflict):
            changed = copies[target].gather(conflict)
            changed = (
                changed + "分店"
                if changed.dtype == pl.String
                else (changed + 100 if target == amount else changed * 0 + 3)
            )
            copies = copies.with_columns(copies[target].scatter(conflict, changed))
        out = pl.concat([out, copies])
    result = out.to_arrow().cast(schema(table, string_timestamps=table in TIMESTAMP_COLUMNS))
    return result, counts
