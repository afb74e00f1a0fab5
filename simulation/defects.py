"""Realistic data faults, so that validation and quarantine have work to do.

With ``defect_rate`` R, about R of each table's rows are faulty: a share is corrupted in place
(negative or zero money, an unknown merchant, a credit code with a wrong check character or an
illegal character, a zone-less or malformed timestamp, a resolution before the complaint) and
the rest are duplicate keys appended (half exact copies, half copies that disagree on a value).
Timestamp columns of ``transactions`` and ``complaints`` are then written as ISO-8601 strings
(a Parquet column carries one zone, so zone-less values need strings): good rows read like
``2024-03-05T12:34:56+08:00``.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa

from simulation.arrow import TIMESTAMP_COLUMNS, schema

ISO = "%Y-%m-%dT%H:%M:%S%:z"
TZ = "Asia/Shanghai"

# per table: kind -> share of the faulty rows (duplicates are appended, the rest corrupted in place)
KINDS: dict[str, dict[str, float]] = {
    "merchants": {"bad_credit_code": 0.5, "malformed_credit_code": 0.2, "duplicate_key": 0.3},
    "transactions": {"negative_amount": 0.15, "zero_amount": 0.05, "unknown_merchant": 0.15,
                     "zoneless_timestamp": 0.2, "malformed_timestamp": 0.15, "duplicate_key": 0.3},
    "complaints": {"unknown_merchant": 0.2, "zoneless_timestamp": 0.2, "malformed_timestamp": 0.15,
                   "resolved_before_received": 0.2, "duplicate_key": 0.25},
    "loans": {"unknown_merchant": 0.3, "negative_amount": 0.2, "zero_amount": 0.1, "duplicate_key": 0.4},
    "loan_performance": {"unknown_merchant": 0.3, "negative_amount": 0.3, "duplicate_key": 0.4},
    "public_records": {"unknown_merchant": 0.4, "negative_amount": 0.3, "duplicate_key": 0.3},
}
AMOUNT = {"transactions": "amount_fen", "loans": "principal_fen", "loan_performance": "outstanding_fen",
          "public_records": "penalty_fen"}


def as_strings(df: pl.DataFrame, table: str) -> pl.DataFrame:
    """Timestamp columns of ``table`` as ISO-8601 strings with offset."""
    cols = TIMESTAMP_COLUMNS.get(table, ())
    return df.with_columns(pl.col(c).dt.convert_time_zone(TZ).dt.to_string(ISO) for c in cols)


def corrupt(table: str, tbl: pa.Table, rate: float, rng: np.random.Generator) -> tuple[pa.Table, dict[str, int]]:
    """Return the table with faults injected (and string timestamps where they apply), and counts per kind."""
    df = pl.from_arrow(tbl)
    assert isinstance(df, pl.DataFrame)
    n = df.height
    kinds = KINDS[table]
    names = list(kinds)
    counts = dict.fromkeys(names, 0)
    faulty = rng.random(n) < rate
    kind = np.full(n, -1)
    kind[faulty] = rng.choice(len(names), size=int(faulty.sum()), p=list(kinds.values()))
    dup_code = names.index("duplicate_key")
    dup_rows = np.flatnonzero(kind == dup_code)
    kind[kind == dup_code] = -1  # duplicated rows stay intact; their copies are appended
    u = rng.random(n)

    def mask(name: str) -> pl.Series:
        m = kind == names.index(name) if name in kinds else np.zeros(n, dtype=bool)
        if name in kinds:
            counts[name] = int(m.sum())
        return pl.Series(m)

    exprs = []
    amount = AMOUNT.get(table)
    if amount is not None:
        neg, zero = mask("negative_amount"), mask("zero_amount")
        exprs.append(pl.when(neg).then(-pl.col(amount).fill_null(100_00).abs().clip(lower_bound=1))
                     .when(zero).then(pl.lit(0, dtype=pl.Int64)).otherwise(pl.col(amount)).alias(amount))
    if "unknown_merchant" in kinds:
        unknown = mask("unknown_merchant")
        fake = pl.lit("M9") + pl.Series(rng.integers(0, 10**7, n)).cast(pl.String).str.zfill(7)
        exprs.append(pl.when(unknown).then(fake).otherwise(pl.col("merchant_id")).alias("merchant_id"))
    if table == "merchants":
        bad, malformed = mask("bad_credit_code"), mask("malformed_credit_code")
        shift = pl.Series(1 + (u * 29).astype(np.int64))
        alphabet = "0123456789ABCDEFGHJKLMNPQRTUWXY"
        lookup = {c: i for i, c in enumerate(alphabet)}
        last = pl.col("credit_code").str.slice(17, 1).replace_strict(lookup, return_dtype=pl.Int64)
        wrong = ((last + shift) % 31).replace_strict(dict(enumerate(alphabet)), return_dtype=pl.String)
        exprs.append(
            pl.when(bad).then(pl.col("credit_code").str.slice(0, 17) + wrong)
            .when(malformed & pl.Series(u < 0.5)).then(pl.col("credit_code").str.slice(0, 17))
            .when(malformed).then(pl.col("credit_code").str.slice(0, 10) + "O" + pl.col("credit_code").str.slice(11, 7))
            .otherwise(pl.col("credit_code")).alias("credit_code")
        )
    if table == "complaints":
        before = mask("resolved_before_received")
        exprs.append(
            pl.when(before).then(pl.col("received_at") - pl.duration(hours=pl.lit(1) + pl.Series(u * 72).cast(pl.Int64)))
            .otherwise(pl.col("resolved_at")).alias("resolved_at")
        )
    if exprs:
        df = df.with_columns(exprs)
    if table in TIMESTAMP_COLUMNS:
        df = as_strings(df, table)
        zoneless, malformed = mask("zoneless_timestamp"), mask("malformed_timestamp")
        col = TIMESTAMP_COLUMNS[table][0]
        iso = pl.col(col)
        broken = pl.when(pl.Series(u < 0.5)).then(iso.str.slice(0, 4) + "-13-45 25:" + iso.str.slice(14, 5)) \
            .otherwise(iso.str.slice(0, 19).str.replace_all("-", "/").str.replace("T", " "))
        df = df.with_columns(
            pl.when(zoneless).then(iso.str.slice(0, 19)).when(malformed).then(broken).otherwise(iso).alias(col)
        )
    if len(dup_rows):
        dups = df[dup_rows]
        conflict = pl.Series(rng.random(len(dup_rows)) < 0.5)
        if amount is not None:
            dups = dups.with_columns(
                pl.when(conflict).then(pl.col(amount) + 100).otherwise(pl.col(amount)).alias(amount))
        elif table == "merchants":
            dups = dups.with_columns(pl.when(conflict).then(pl.col("name") + "分店").otherwise(pl.col("name")).alias("name"))
        elif table == "complaints":
            dups = dups.with_columns(
                pl.when(conflict).then(pl.lit(3, dtype=pl.Int8)).otherwise(pl.col("severity")).alias("severity"))
        df = pl.concat([df, dups])
        counts["duplicate_key"] = len(dup_rows)
    out = df.to_arrow().cast(schema(table, string_timestamps=table in TIMESTAMP_COLUMNS))
    return out, counts
