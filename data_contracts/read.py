"""Find and open raw tables (Parquet or CSV) lazily, turning every way a file can be unreadable into a TableError."""

from __future__ import annotations

import codecs
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import polars as pl

from data_contracts.errors import TableError

_CHUNK = 16 << 20


@dataclass(frozen=True)
class RawTable:
    """One raw table file found in the raw folder."""

    name: str
    path: Path
    format: Literal["parquet", "csv"]

    def scan(self) -> pl.LazyFrame:
        """The table as read, untyped for CSV (every column String, cast later per cell)."""
        if self.format == "parquet":
            return pl.scan_parquet(self.path)
        # No schema inference: each cell is cast under the contract, so one bad cell is a
        # quarantined row, not a failed read. Empty cells are null.
        return pl.scan_csv(self.path, infer_schema=False, encoding="utf8", raise_if_empty=False)

    def fingerprint(self) -> dict:
        """Cheap identity of the input (size and modification time), recorded in the summary."""
        st = self.path.stat()
        return {"format": self.format, "bytes": _size(self.path), "mtime_ns": st.st_mtime_ns}

    def count_rows(self) -> int:
        """Rows in the file, counted independently of validation (Parquet: from metadata)."""
        return read_guard(self, lambda: self.scan().select(pl.len()).collect().item())


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def find_table(raw_dir: Path, name: str) -> RawTable:
    """The file holding table `name` in `raw_dir`: ``<name>.parquet`` (a file or a folder of parts) or ``<name>.csv``."""
    candidates = [(raw_dir / f"{name}.parquet", "parquet"), (raw_dir / f"{name}.csv", "csv")]
    present = [(p, fmt) for p, fmt in candidates if p.exists()]
    if not present:
        raise TableError(
            raw_dir / f"{name}.parquet",
            None,
            f"table {name} as {name}.parquet or {name}.csv",
            "no such file" if raw_dir.is_dir() else f"no folder {raw_dir}",
            "put the table in the raw folder (lifecredit simulate writes all six) or point --raw at the right folder",
        )
    if len(present) > 1:
        raise TableError(
            raw_dir / f"{name}.*",
            None,
            f"exactly one file for table {name}",
            " and ".join(p.name for p, _ in present),
            "remove the stale one",
        )
    path, fmt = present[0]
    return RawTable(name, path, fmt)  # type: ignore[arg-type]


def check_encoding(table: RawTable) -> None:
    """Raise a TableError when a CSV file is not valid UTF-8, naming GBK/GB18030 when that is what it is."""
    if table.format != "csv":
        return
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    seen_non_ascii = False
    with open(table.path, "rb") as f:
        while chunk := f.read(_CHUNK):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as err:
                bad_at = offset + err.start
                seen_non_ascii = seen_non_ascii or not chunk[: err.start].isascii()
                break
            seen_non_ascii = seen_non_ascii or not chunk.isascii()
            offset += len(chunk)
        else:
            try:
                decoder.decode(b"", final=True)
                return
            except UnicodeDecodeError:
                bad_at = offset
    # Chinese text in UTF-8 before the first bad byte means a damaged UTF-8 file, not GBK
    # (UTF-8 bytes often also decode as GBK mojibake, so decodability alone proves little).
    found = None if seen_non_ascii else _legacy_chinese_encoding(table.path)
    if found:
        raise TableError(
            table.path,
            None,
            "UTF-8 text",
            f"{found}-encoded text",
            f"convert it, e.g. `iconv -f {found} -t UTF-8 {table.path.name} > {table.path.stem}.utf8.csv`, "
            f"and replace the original with the converted file",
        )
    raise TableError(
        table.path,
        None,
        "UTF-8 text",
        f"bytes that are not valid UTF-8 near byte offset {bad_at} (and not GBK or GB18030 either)",
        "re-export the table as UTF-8 CSV or as Parquet",
    )


def _legacy_chinese_encoding(path: Path) -> str | None:
    """'GBK' or 'GB18030' when the whole file decodes in that encoding, else None."""
    for encoding in ("gbk", "gb18030"):
        decoder = codecs.getincrementaldecoder(encoding)()
        try:
            with open(path, "rb") as f:
                while chunk := f.read(_CHUNK):
                    decoder.decode(chunk)
            decoder.decode(b"", final=True)
            return encoding.upper()
        except UnicodeDecodeError:
            continue
    return None


def read_guard(table: RawTable, work):
    """Run `work`, turning a Polars or OS failure to read `table` into a TableError."""
    try:
        return work()
    except TableError:
        raise
    except (pl.exceptions.PolarsError, OSError) as err:
        message = " ".join(str(err).split())[:400]
        raise TableError(
            table.path,
            None,
            f"a readable {table.format.upper()} file",
            f"a read error: {message}",
            "check the file is complete and in the stated format (re-export it if needed)",
        ) from err


def read_schema(table: RawTable) -> pl.Schema:
    """Column names and dtypes as stored (CSV: all String), without reading the data."""
    check_encoding(table)
    if table.format == "csv" and os.path.getsize(table.path) == 0:
        raise TableError(table.path, None, "a CSV header line", "an empty file", "re-export the table with its header")
    return read_guard(table, lambda: table.scan().collect_schema())
