"""Fast Arrow column builders and the Arrow schemas of the tables the simulator writes.

Strings are built from fixed-width byte rows (ids, hashes) or by taking from a small dictionary
(channels, statuses), never by formatting Python strings per row.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

TZ = "Asia/Shanghai"
STR = pa.large_string()
TS = pa.timestamp("us", tz=TZ)

SCHEMAS: dict[str, pa.Schema] = {
    "merchants": pa.schema(
        [
            ("merchant_id", STR),
            ("credit_code", STR),
            ("name", STR),
            ("owner_hash", STR),
            ("sector", STR),
            ("region_code", STR),
            ("business_form", STR),
            ("registered_on", pa.date32()),
            ("registered_capital_fen", pa.int64()),
        ]
    ),
    "transactions": pa.schema(
        [
            ("txn_id", pa.int64()),
            ("merchant_id", STR),
            ("ts", TS),
            ("txn_type", STR),
            ("amount_fen", pa.int64()),
            ("channel", STR),
            ("customer_hash", STR),
        ]
    ),
    "complaints": pa.schema(
        [
            ("complaint_id", STR),
            ("merchant_id", STR),
            ("received_at", TS),
            ("resolved_at", TS),
            ("category", STR),
            ("severity", pa.int8()),
            ("source", STR),
        ]
    ),
    "loans": pa.schema(
        [
            ("loan_id", STR),
            ("merchant_id", STR),
            ("product", STR),
            ("disbursed_on", pa.date32()),
            ("principal_fen", pa.int64()),
            ("term_months", pa.int16()),
            ("annual_rate", pa.float64()),
            ("lender_code", STR),
        ]
    ),
    "loan_performance": pa.schema(
        [
            ("loan_id", STR),
            ("reported_on", pa.date32()),
            ("merchant_id", STR),
            ("days_past_due", pa.int32()),
            ("outstanding_fen", pa.int64()),
            ("status", STR),
        ]
    ),
    "public_records": pa.schema(
        [
            ("record_id", STR),
            ("merchant_id", STR),
            ("record_type", STR),
            ("published_on", pa.date32()),
            ("penalty_fen", pa.int64()),
            ("removed_on", pa.date32()),
        ]
    ),
    "truth": pa.schema([("merchant_id", STR), ("as_of", pa.date32()), ("true_pd_12m", pa.float64())]),
}
TIMESTAMP_COLUMNS = {"transactions": ("ts",), "complaints": ("received_at", "resolved_at")}
TABLES = ("merchants", "transactions", "complaints", "loans", "loan_performance", "public_records")


def schema(table: str, string_timestamps: bool) -> pa.Schema:
    """Schema of ``table``; with ``string_timestamps`` its timestamp columns are ISO-8601 strings."""
    s = SCHEMAS[table]
    if not string_timestamps:
        return s
    return pa.schema([pa.field(f.name, STR if f.name in TIMESTAMP_COLUMNS.get(table, ()) else f.type) for f in s])


def fixed_width(rows: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    """Large-string array from an (n, width) uint8 array of ASCII bytes (or its void view)."""
    rows = np.ascontiguousarray(rows)
    n = rows.shape[0]
    width = rows.dtype.itemsize if rows.ndim == 1 else rows.shape[1]
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int64)
    bitmap, nulls = None, 0
    if valid is not None:
        nulls = int(n - np.count_nonzero(valid))
        if nulls:
            bitmap = pa.py_buffer(np.packbits(valid, bitorder="little"))
    data = rows.view(np.uint8) if rows.dtype.kind == "V" else rows
    return pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data), bitmap, nulls)


def ascii_rows(strings: list[str]) -> np.ndarray:
    """Equal-length ASCII strings as a void array, one element per string (for fast gathering)."""
    if not strings:
        return np.zeros(0, dtype="V1")
    width = len(strings[0])
    return np.frombuffer("".join(strings).encode("ascii"), dtype=f"V{width}")


_HEX_PAIRS = np.frombuffer("".join(f"{i:02x}" for i in range(256)).encode(), dtype=np.uint16)
"""The two hex characters of each byte value, as one 2-byte unit."""


def hex16(values: np.ndarray) -> np.ndarray:
    """16 lowercase hex characters per 64-bit value, as a V16 array."""
    b = np.ascontiguousarray(values, dtype=np.uint64).view(np.uint8)
    return _HEX_PAIRS[b].view("V16")


def take(names: tuple[str, ...] | list[str], codes: np.ndarray) -> pa.Array:
    """Large strings ``names[codes]``."""
    return pc.take(pa.array(list(names), STR), pa.array(codes.astype(np.int32)))


def digits_ids(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    """``prefix`` followed by ``numbers`` zero-padded to ``width`` digits."""
    n = len(numbers)
    out = np.empty((n, len(prefix) + width), dtype=np.uint8)
    out[:, : len(prefix)] = np.frombuffer(prefix.encode(), dtype=np.uint8)
    v = numbers.astype(np.int64).copy()
    for k in range(width - 1, -1, -1):
        out[:, len(prefix) + k] = 48 + v % 10
        v //= 10
    return fixed_width(out)
