"""The validated raw tables a feature build reads, as lazy frames.

Input is the output of ``data_contracts.validate_dir``: ``<table>.parquet`` per table, with the
columns and dtypes of ``data_contracts/contracts/*.yaml``. Nothing here reads ``truth``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import polars as pl

from core.files import file_sha256

TZ = "Asia/Shanghai"

REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "merchants": ("merchant_id", "sector", "region_code", "business_form", "registered_on", "registered_capital_fen"),
    "transactions": ("merchant_id", "ts", "txn_type", "amount_fen", "channel", "customer_hash"),
    "complaints": ("merchant_id", "received_at", "resolved_at", "category", "severity"),
    "loans": ("loan_id", "merchant_id", "disbursed_on", "principal_fen", "term_months"),
    "loan_performance": ("loan_id", "merchant_id", "reported_on", "days_past_due", "outstanding_fen", "status"),
    "public_records": ("record_id", "merchant_id", "record_type", "published_on", "penalty_fen", "removed_on"),
}


class FeatureInputError(ValueError):
    """An input table is missing or lacks a column the feature build needs."""


@dataclass(frozen=True)
class RawTables:
    """The six validated tables as lazy frames; ``paths`` is set when they come from files."""

    merchants: pl.LazyFrame
    transactions: pl.LazyFrame
    complaints: pl.LazyFrame
    loans: pl.LazyFrame
    loan_performance: pl.LazyFrame
    public_records: pl.LazyFrame
    paths: dict[str, Path] | None = None

    @classmethod
    def scan(cls, raw: Path) -> RawTables:
        """Scan ``raw/<table>.parquet`` for every table (lazily; nothing is read yet)."""
        raw = Path(raw)
        paths = {name: raw / f"{name}.parquet" for name in REQUIRED_COLUMNS}
        missing = [str(p) for p in paths.values() if not p.is_file()]
        if missing:
            raise FeatureInputError(f"missing validated table(s): {', '.join(missing)}")
        tables = cls(**{n: pl.scan_parquet(p) for n, p in paths.items()}, paths=paths)
        tables.check()
        return tables

    @classmethod
    def from_frames(cls, **frames: pl.DataFrame | pl.LazyFrame) -> RawTables:
        """Wrap in-memory frames (tests, serving); every table must be given."""
        tables = cls(**{n: f.lazy() for n, f in frames.items()})
        tables.check()
        return tables

    def table_names(self) -> list[str]:
        return [f.name for f in fields(self) if f.name != "paths"]

    def check(self) -> None:
        """Fail early, naming table and column, when a needed column is absent (schema only, no data read)."""
        for name, cols in REQUIRED_COLUMNS.items():
            schema = getattr(self, name).collect_schema()
            absent = [c for c in cols if c not in schema]
            if absent:
                raise FeatureInputError(f"{name}: missing column(s) {absent}; found {list(schema)}")

    def merchant_range(self, first: str, stop: str | None) -> RawTables:
        """The same tables restricted to merchant ids in ``[first, stop)`` (``stop`` None: no upper end)."""
        keep = pl.col("merchant_id") >= first
        if stop is not None:
            keep = keep & (pl.col("merchant_id") < stop)
        frames = {n: getattr(self, n).filter(keep) for n in self.table_names()}
        return RawTables(**frames, paths=self.paths)

    def transaction_rows(self) -> int:
        """Number of transaction rows (from Parquet metadata when scanned from a file)."""
        return int(self.transactions.select(pl.len()).collect().item())

    def file_hashes(self) -> dict[str, str]:
        """SHA-256 of every input file (empty when the tables did not come from files)."""
        out = {}
        for name, path in (self.paths or {}).items():
            out[name] = file_sha256(path)
        return out


_UTC_OFFSET_US = 8 * 3600 * 1_000_000
_DAY_US = 86_400 * 1_000_000


def local_date(col: str) -> pl.Expr:
    """Calendar date in Asia/Shanghai of a time-zone-aware timestamp column.

    An event at a timestamp is visible to ``as_of`` iff it happened before ``as_of`` 00:00
    Asia/Shanghai, i.e. iff this date is strictly before ``as_of``. Asia/Shanghai has kept
    UTC+8 without daylight saving since 1991 (contract timestamps start in 2000), so the date is
    plain arithmetic on the UTC epoch, several times faster than a time-zone conversion.
    """
    return ((pl.col(col).dt.epoch("us") + _UTC_OFFSET_US) // _DAY_US).cast(pl.Int32).cast(pl.Date)


def merchant_key(col: str = "merchant_id") -> pl.Expr:
    """Integer key of a contract merchant id (``M`` + 8 digits) for fast joins and sorts."""
    return pl.col(col).str.slice(1).cast(pl.UInt32, strict=True).alias("mkey")


def customer_key(col: str = "customer_hash") -> pl.Expr:
    """The 16-hex-digit customer hash as an unsigned 64-bit integer (same information, cheaper to group)."""
    return pl.col(col).str.to_integer(base=16, dtype=pl.UInt64, strict=True).alias("ckey")


def transaction_facts(transactions: pl.LazyFrame) -> pl.LazyFrame:
    """Transactions with merchant key, local day and sale flag decoded once: the one input of both
    rollups (daily and customer), which share this scan through common-subplan elimination."""
    return transactions.select(
        merchant_key(),
        local_date("ts").alias("day"),
        (pl.col("txn_type") == "sale").alias("sale"),
        "amount_fen",
        "channel",
        "customer_hash",
    )
