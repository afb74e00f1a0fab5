"""Bring each raw column to its contract type: per-cell failures become row rules, impossible casts TableErrors.

Every typed column is a "wide" value first (Int64 for integers, Float64, Date, the contract's
Datetime), so range rules can still see a value that does not fit a narrow dtype such as Int8;
valid output then casts the wide value to the contract dtype, which cannot fail for a valid row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl

from data_contracts.contract import Column
from data_contracts.errors import TableError

# ISO-8601 with a T or a space; %.f: optional fraction; %#z: +08:00, +0800 or Z
_TS_AWARE = ("%Y-%m-%dT%H:%M:%S%.f%#z", "%Y-%m-%d %H:%M:%S%.f%#z")
_TS_NAIVE = ("%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f")


@dataclass(frozen=True)
class Typed:
    """How one column becomes typed.

    wide: expression over the raw column giving the typed value (null where it failed).
    can_fail: whether a non-null raw value can come out null (so a `type` rule is needed).
    naive: for timestamp strings, true where the cell is a valid time without a UTC offset.
    stages: helper columns that `wide` and `naive` read, each stage computed after the one before.
    """

    column: Column
    raw_dtype: pl.DataType
    wide: pl.Expr
    can_fail: bool
    naive: pl.Expr | None = None
    stages: list[list[pl.Expr]] = field(default_factory=list)

    @property
    def narrows(self) -> bool:
        """True when the wide dtype is wider than the contract dtype (a second, narrowing cast)."""
        return self.column.dtype.is_integer() and self.column.dtype != pl.Int64 and self.raw_dtype != self.column.dtype


def typed(column: Column, raw_dtype: pl.DataType, file: Path | str) -> Typed:
    """Plan the cast of one raw column, raising TableError when no cell of that dtype could ever fit."""
    target = column.dtype
    raw = pl.col(column.name)
    if target.is_float() and (
        raw_dtype.is_numeric() and not isinstance(raw_dtype, pl.Decimal) or raw_dtype == pl.String
    ):
        number = raw.cast(pl.Float64, strict=False)
        return Typed(column, raw_dtype, pl.when(number.is_finite()).then(number), can_fail=True)  # NaN, inf: type
    if raw_dtype == target:
        return Typed(column, raw_dtype, raw, can_fail=False)
    if raw_dtype == pl.Null:
        return Typed(column, raw_dtype, raw.cast(_wide_dtype(target)), can_fail=False)
    if target == pl.String:
        if raw_dtype.is_integer() or isinstance(raw_dtype, (pl.Categorical, pl.Enum)):
            return Typed(column, raw_dtype, raw.cast(pl.String), can_fail=False)
    elif target.is_integer():
        if raw_dtype.is_integer():
            return Typed(column, raw_dtype, raw.cast(pl.Int64, strict=False), can_fail=True)
        if raw_dtype.is_float():
            whole = raw.is_finite() & (raw == raw.floor())
            return Typed(column, raw_dtype, pl.when(whole).then(raw.cast(pl.Int64, strict=False)), can_fail=True)
        if raw_dtype == pl.String:
            return Typed(column, raw_dtype, raw.cast(pl.Int64, strict=False), can_fail=True)
    elif target == pl.Date:
        if raw_dtype == pl.String:
            return Typed(column, raw_dtype, raw.str.to_date("%Y-%m-%d", strict=False), can_fail=True)
    elif isinstance(target, pl.Datetime):
        if isinstance(raw_dtype, pl.Datetime):
            if raw_dtype.time_zone is None:
                raise TableError(
                    file,
                    column.name,
                    f"timestamps with a time zone ({column.physical_type})",
                    f"naive timestamps with no time zone ({raw_dtype})",
                    "write the column as a time-zone-aware Datetime (e.g. Asia/Shanghai) or as ISO-8601 strings with an offset",
                )
            converted = raw.dt.convert_time_zone(target.time_zone).dt.cast_time_unit(target.time_unit)
            return Typed(column, raw_dtype, converted, can_fail=False)
        if raw_dtype == pl.String:
            stages, value, naive = parse_timestamps(raw, target, prefix=f"__parse__{column.name}__")
            return Typed(column, raw_dtype, value, can_fail=True, naive=naive, stages=stages)
    raise TableError(
        file,
        column.name,
        f"{column.physical_type} (or values castable to it)",
        f"{raw_dtype}",
        f"write {column.name} as {column.physical_type}",
    )


def parse_timestamps(text: pl.Expr, target: pl.Datetime, prefix: str) -> tuple[list[list[pl.Expr]], pl.Expr, pl.Expr]:
    """(helper column stages, instant in the target zone, "valid but has no offset" flag) for ISO-8601 text.

    Text in the common shape with the zone's usual offset (``2024-03-05T12:34:56+08:00``) is
    parsed with that offset as a literal in the format, which Polars parses several times
    faster than a format with ``%z``; rows of any other shape (another offset, fractions, ``Z``,
    a space, no offset, garbage) take the flexible formats, which the common rows skip as
    nulls. Intermediate results are helper columns named ``<prefix>…``, computed in stages so
    no parse runs twice.
    """
    unit, zone = target.time_unit, target.time_zone
    offset = datetime.now(ZoneInfo(zone)).utcoffset() or timedelta(0)
    sign, minutes = ("-", -offset) if offset < timedelta(0) else ("+", offset)
    hours, rest = divmod(int(minutes.total_seconds()) // 60, 60)
    common_format = f"%Y-%m-%dT%H:%M:%S{sign}{hours:02d}:{rest:02d}"
    common, other, flexible, naive_ok = (pl.col(prefix + part) for part in ("common", "other", "flex", "naive"))
    stages = [
        [(text.str.to_datetime(common_format, strict=False, time_unit=unit) - offset).alias(prefix + "common")],
        [pl.when(common.is_null()).then(text).alias(prefix + "other")],
        [
            pl.coalesce(other.str.to_datetime(f, strict=False, time_unit=unit) for f in _TS_AWARE).alias(
                prefix + "flex"
            ),
            pl.any_horizontal(
                other.str.to_datetime(f, strict=False, time_unit=unit).is_not_null() for f in _TS_NAIVE
            ).alias(prefix + "naive"),
        ],
    ]
    value = pl.coalesce(common.dt.replace_time_zone("UTC"), flexible).dt.convert_time_zone(zone)
    return stages, value, flexible.is_null() & naive_ok


def _wide_dtype(target: pl.DataType) -> pl.DataType:
    return pl.Int64 if target.is_integer() else target


def plan_casts(columns: list[Column], schema: pl.Schema, file: Path | str) -> dict[str, Typed]:
    """Typed plans for every contract column, after checking none is missing from `schema`.

    A column the contract marks ``mayBeAbsent`` (one added in a later contract version, e.g.
    ``public_records.removed_on``) may be missing from a delivery: it is read as all null.
    """
    absent = {
        c.name: Typed(c, pl.Null, pl.lit(None, dtype=_wide_dtype(c.dtype)), can_fail=False)
        for c in columns
        if c.name not in schema and c.properties.get("mayBeAbsent")
    }
    missing = [c.name for c in columns if c.name not in schema and c.name not in absent]
    if missing:
        raise TableError(
            file,
            ", ".join(missing),
            f"columns {', '.join(c.name for c in columns)}",
            f"columns {', '.join(schema.names()) or '(none)'}",
            "add the missing column(s) or fix their header names",
        )
    return {c.name: absent.get(c.name) or typed(c, schema[c.name], file) for c in columns}
