"""Monthly consumption aggregates and the digital consumption index (生活服务数字化消费指数).

``lifecredit consumption-index`` reads the validated transactions in ONE streaming pass (the
Parquet file's row groups, on a thread per CPU, their dictionary-coded strings never decoded) into
per merchant x month sums: sales amount and count, refunds, digital-payment amount and count.
Everything else works on that small table: per sector x province (x city, the prefecture: the
first four digits of ``region_code``) x month, the active merchants (supply: at least one sale in
the month), consumption amount and count with their year-on-year change and the digital-payment
share; and the index, chain-linked over merchants active in both months, for sector x province,
sector nationally, province over all sectors and overall. The method, with its formula, is
``docs/consumption-index.md``.

Small cells follow :mod:`regulator.suppression`: each month's sector x province count table with
its margins is protected (primary and complementary suppression), and each province's sector x
city table under it with the province's cells forced or locked as that table decided; a final
exact check over both levels together falls back to hiding a province's city cells. The files
hold nulls where a cell is suppressed, never the hidden value. This module is over 400 lines
because the pass, the aggregation, the index and the two-level protection share one vocabulary
of levels and columns that the API and the reports read back.
"""

from __future__ import annotations

import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from core.files import atomic_path, file_sha256, write_text_atomic
from core.progress import ProgressFn
from regulator.labels import UNKNOWN
from regulator.suppression import ProtectionError, augment, protect

DIGITAL_CHANNELS = ("wechat_pay", "alipay", "unionpay_qr", "digital_rmb")
"""Mobile and QR-code payments and the digital yuan (e-CNY); bank cards and ``other`` are not digital."""
ALL = "all"
"""The key of a margin: every sector, the whole country, every city of a province."""
LEVELS: dict[str, tuple[bool, str]] = {
    "overall": (False, "nation"),
    "sector": (True, "nation"),
    "province": (False, "province"),
    "sector_province": (True, "province"),
    "city": (False, "city"),
    "sector_city": (True, "city"),
}
"""Level name -> (split by sector, geography: nation, province or city)."""
INDEX_LEVELS = ("overall", "sector", "province", "sector_province")
BASE_INDEX = 100.0
AGGREGATES_FILE = "aggregates.parquet"
INDEX_FILE = "index.parquet"
METADATA_FILE = "metadata.json"
BUILD_COMMAND = "lifecredit consumption-index"
COLUMNS = ("merchant_id", "ts", "txn_type", "amount_fen", "channel")
BATCH_ROWS = 1 << 20
_UTC_OFFSET_US = 8 * 3600 * 1_000_000  # Asia/Shanghai: UTC+8, no daylight saving since 1991
_DAY_US = 86_400 * 1_000_000
_DAY_MONTH = np.arange(0, 80_000).astype("datetime64[D]").astype("datetime64[M]").astype(np.int32)
"""Months since 1970-01 of every epoch day up to the 22nd century: a gather instead of date arithmetic."""
_MONTH_EDGE_US = (
    np.arange(0, 12 * 219).astype("datetime64[M]").astype("datetime64[us]").astype(np.int64) - _UTC_OFFSET_US
)
"""UTC microseconds at which each month (since 1970-01) begins in Beijing."""
_SUMS = ("txns", "sales", "sales_fen", "refund_fen", "digital", "digital_fen")
_CELL = ("level", "sector", "province", "city")


class ConsumptionError(ValueError):
    """The consumption aggregates cannot be built or read; the message says what is missing and which command makes it."""


def month_label(month: int) -> str:
    """``YYYY-MM`` of a month counted from 1970-01."""
    y, m = divmod(int(month), 12)
    return f"{1970 + y:04d}-{m + 1:02d}"


def month_number(label: str) -> int:
    """Months since 1970-01 of ``YYYY-MM``."""
    y, m = map(int, label.split("-"))
    return (y - 1970) * 12 + m - 1


# --------------------------------------------------------------------------- the one pass


def _codes(column: pa.Array, name: str) -> tuple[np.ndarray, pa.Array]:
    """Dictionary indices and dictionary values of a string column (encoded here if the file did not)."""
    if not pa.types.is_dictionary(column.type):
        column = pc.dictionary_encode(column)
    if column.null_count:
        raise ConsumptionError(
            f"transactions: column {name} holds nulls: read the validated tables (`lifecredit validate`)"
        )
    return column.indices.to_numpy(zero_copy_only=False), column.dictionary.cast(pa.string())


def _numbers(column: pa.Array, name: str) -> np.ndarray:
    if column.null_count:
        raise ConsumptionError(
            f"transactions: column {name} holds nulls: read the validated tables (`lifecredit validate`)"
        )
    return column.to_numpy(zero_copy_only=False)


class _Merchants:
    """Merchant ids -> their position: a dictionary for a batch's few ids, Arrow's hash join for many."""

    def __init__(self, ids: list[str]):
        self.array = pa.array(ids, type=pa.string())
        self.position = {m: i for i, m in enumerate(ids)}

    def codes(self, values: pa.Array) -> np.ndarray:
        """Position of each of ``values`` (-1 where unknown)."""
        if len(values) <= 4096:
            return np.array([self.position.get(v, -1) for v in values.to_pylist()], dtype=np.int64)
        return pc.fill_null(pc.index_in(values, value_set=self.array), -1).to_numpy(zero_copy_only=False)


def _month_of(ts: np.ndarray) -> np.ndarray:
    """Month (since 1970-01, Beijing time) of UTC-microsecond timestamps."""
    day = (ts + _UTC_OFFSET_US) // _DAY_US
    if len(day) and (day.min() < 0 or day.max() >= len(_DAY_MONTH)):
        raise ConsumptionError("transactions: a timestamp outside 1970 .. 2188")
    return _DAY_MONTH[day]


def _sorted_runs(idx: np.ndarray, ts: np.ndarray) -> np.ndarray | None:
    """Starts of the (merchant, month) runs when rows are sorted by time within each merchant's rows
    (the simulator's and validate's order), found per merchant by binary search for the month
    edges; None for any other order (then every row's month is computed)."""
    cuts = np.flatnonzero(idx[1:] != idx[:-1])
    cuts += 1
    if len(cuts) > len(idx) // 64:
        return None
    back = np.flatnonzero(ts[1:] < ts[:-1])
    back += 1
    if len(back) and not np.isin(back, cuts).all():
        return None
    bounds = np.concatenate([[0], cuts, [len(idx)]])
    firsts, lasts = _month_of(ts[bounds[:-1]]), _month_of(ts[bounds[1:] - 1])
    starts = [bounds[:-1]]
    for a, b, m0, m1 in zip(bounds[:-1], bounds[1:], firsts, lasts, strict=True):
        if m1 > m0:
            starts.append(a + np.searchsorted(ts[a:b], _MONTH_EDGE_US[m0 + 1 : m1 + 1]))
    return np.unique(np.concatenate(starts))


def _batch_sums(batch: pa.RecordBatch, merchant_ids: _Merchants, digital: pa.Array) -> tuple[dict, tuple[int, int]]:
    """Sums per run of rows with the same merchant and month (rows come sorted by merchant and time, so
    runs are long; any order stays correct, the runs are summed again at the end).

    Refunds and non-digital sales are the few rows: they are summed sparsely, and sales, digital
    sales and their amounts follow from the totals.
    """
    idx, mdict = _codes(batch.column("merchant_id"), "merchant_id")
    ts = batch.column("ts")
    if not pa.types.is_timestamp(ts.type):
        raise ConsumptionError(f"transactions: ts is {ts.type}, expected a timestamp")
    ts = _numbers(ts.cast(pa.timestamp("us", tz=ts.type.tz)).view(pa.int64()), "ts")
    starts = _sorted_runs(idx, ts)
    if starts is None:
        month = _month_of(ts)
        key = idx.astype(np.int64) << 32
        key |= month
        starts = np.flatnonzero(key[1:] != key[:-1])
        starts += 1
        starts = np.concatenate([[0], starts])
        span = (int(ts.min()), int(ts.max()))
    else:
        ends = np.append(starts[1:], len(ts)) - 1
        span = (int(ts[starts].min()), int(ts[ends].max()))
    tidx, tdict = _codes(batch.column("txn_type"), "txn_type")
    sale_codes = np.flatnonzero(np.asarray(tdict.to_pylist(), dtype=object) == "sale")
    sale = tidx == sale_codes[0] if len(sale_codes) == 1 else np.isin(tidx, sale_codes)
    cidx, cdict = _codes(batch.column("channel"), "channel")
    dig = pc.is_in(cdict, value_set=digital).to_numpy(zero_copy_only=False)[cidx]
    dig &= sale
    amount = _numbers(batch.column("amount_fen"), "amount_fen")
    total = np.add.reduceat(amount, starts, dtype=np.int64)
    txns = np.diff(np.append(starts, len(idx)))
    other = np.flatnonzero(~dig)  # refunds and sales not paid digitally
    run = np.searchsorted(starts, other, side="right") - 1
    refund = ~sale[other]
    fen = amount[other].astype(np.float64)  # exact: a run's sum stays far below 2**53 fen
    n = len(starts)
    refunds = np.bincount(run[refund], minlength=n)
    refund_fen = np.rint(np.bincount(run[refund], weights=fen[refund], minlength=n)).astype(np.int64)
    plain = np.bincount(run, minlength=n) - refunds
    plain_fen = np.rint(np.bincount(run, weights=fen, minlength=n)).astype(np.int64) - refund_fen
    merchant = merchant_ids.codes(mdict)
    sales = txns - refunds
    sales_fen = total - refund_fen
    sums = {
        "mcode": merchant[idx[starts]].astype(np.int32),
        "month": _month_of(ts[starts]),
        "txns": txns,
        "sales": sales,
        "sales_fen": sales_fen,
        "refund_fen": refund_fen,
        "digital": sales - plain,
        "digital_fen": sales_fen - plain_fen,
    }
    return sums, (int(_local_day(span[0])), int(_local_day(span[1])))


def _local_day(ts: int) -> int:
    """Epoch day (Beijing time) of a UTC-microsecond timestamp."""
    return (ts + _UTC_OFFSET_US) // _DAY_US


def _open(path: Path) -> pq.ParquetFile:
    file = pq.ParquetFile(path, read_dictionary=["merchant_id", "txn_type", "channel"])
    names = file.schema_arrow.names
    missing = [c for c in COLUMNS if c not in names]
    if missing:
        raise ConsumptionError(f"{path}: missing column(s) {missing}; found {names}")
    return file


def merchant_months(
    transactions: Path, merchant_ids: list[str], *, progress: ProgressFn | None = None, threads: int | None = None
) -> tuple[pl.DataFrame, dict]:
    """One streaming pass: per merchant (``mcode``, its position in ``merchant_ids``) and month, the sums.

    Columns ``mcode, month, txns, sales, sales_fen, refund_fen, digital, digital_fen`` (``month``:
    months since 1970-01, Asia/Shanghai time). Row groups are read and summed on ``threads``
    threads (default: one per CPU; Parquet decoding and NumPy release the GIL), in batches of at
    most ``BATCH_ROWS`` rows. Rows of merchants not in ``merchant_ids`` are left out and counted in
    the returned stats.
    """
    path = Path(transactions)
    first = _open(path)
    groups, total = first.metadata.num_row_groups, first.metadata.num_rows
    ids = _Merchants(merchant_ids)
    digital = pa.array(DIGITAL_CHANNELS, type=pa.string())
    local = threading.local()
    lock = threading.Lock()
    done = [0]

    def work(group: int) -> list[tuple[dict, tuple[int, int], int]]:
        file = getattr(local, "file", None)
        if file is None:
            file = local.file = pq.ParquetFile(
                path, metadata=first.metadata, read_dictionary=["merchant_id", "txn_type", "channel"]
            )
        out = []
        for batch in file.iter_batches(
            batch_size=BATCH_ROWS, row_groups=[group], columns=list(COLUMNS), use_threads=False
        ):
            if batch.num_rows:
                out.append((*_batch_sums(batch, ids, digital), batch.num_rows))
        if progress is not None:
            with lock:
                done[0] += sum(n for _, _, n in out)
                progress(done[0], total)
        return out

    with ThreadPoolExecutor(max(1, threads or os.cpu_count() or 1), thread_name_prefix="consumption") as pool:
        results = [r for part in pool.map(work, range(groups)) for r in part]
    schema = {"mcode": pl.Int32, "month": pl.Int32, **dict.fromkeys(_SUMS, pl.Int64)}
    parts = [pl.DataFrame(sums) for sums, _, _ in results]
    frame = pl.concat(parts).cast(schema) if parts else pl.DataFrame(schema=schema)
    frame = frame.group_by("mcode", "month").agg(pl.col(_SUMS).sum())
    unknown = frame.filter(pl.col("mcode") < 0)
    days = [span for _, span, _ in results]
    stats = {
        "transactions": sum(n for _, _, n in results),
        "first_day": str(np.datetime64(min(d[0] for d in days), "D")) if days else None,
        "last_day": str(np.datetime64(max(d[1] for d in days), "D")) if days else None,
        "unknown_merchant_transactions": int(unknown["txns"].sum()),
    }
    return frame.filter(pl.col("mcode") >= 0).sort("mcode", "month"), stats


# --------------------------------------------------------------------------- cells and the index


def merchant_attributes(merchants: pl.DataFrame) -> pl.DataFrame:
    """``mcode, merchant_id, sector, province, city`` (a missing sector or region reads ``unknown``)."""
    region = pl.col("region_code").cast(pl.String)
    return (
        merchants.select("merchant_id", "sector", "region_code")
        .unique("merchant_id", keep="first", maintain_order=True)
        .with_row_index("mcode")
        .select(
            pl.col("mcode").cast(pl.Int32),
            "merchant_id",
            pl.col("sector").cast(pl.String).fill_null(UNKNOWN),
            pl.when(region.str.len_chars() >= 2)
            .then(region.str.slice(0, 2))
            .otherwise(pl.lit(UNKNOWN))
            .alias("province"),
            pl.when(region.str.len_chars() >= 4).then(region.str.slice(0, 4)).otherwise(pl.lit(UNKNOWN)).alias("city"),
        )
    )


def cell_sums(months_frame: pl.DataFrame, attributes: pl.DataFrame) -> pl.DataFrame:
    """Per level, cell and month: active merchants, the sums, and the chain link's two sums.

    Only merchant-months with a sale count (a month of refunds alone is no trade). ``link_now`` and
    ``link_prev`` are the sales of the merchants active in this month and the one before, in
    each of the two months; ``linked`` counts them. Everything is summed once per sector x city
    and month, and the five coarser levels add those cells up (every merchant is in one of them).
    """
    active = months_frame.filter(pl.col("sales") > 0).sort("mcode", "month")
    follows = (pl.col("mcode") == pl.col("mcode").shift(1)) & (pl.col("month") == pl.col("month").shift(1) + 1)
    rows = active.with_columns(pl.when(follows).then(pl.col("sales_fen").shift(1)).alias("prev_fen"))
    where = attributes.sort("mcode")
    if not where["mcode"].equals(pl.int_range(0, where.height, eager=True).cast(pl.Int32), check_names=False):
        raise ValueError("attributes must number merchants 0 .. n-1 (merchant_attributes does)")
    rows = rows.with_columns(where[c].gather(rows["mcode"]).alias(c) for c in ("sector", "province", "city"))
    linked = pl.col("prev_fen").is_not_null()
    additive = ["merchants", *_SUMS, "link_now", "link_prev", "linked"]
    finest = rows.group_by("sector", "province", "city", "month").agg(
        pl.len().cast(pl.Int64).alias("merchants"),
        *(pl.col(c).sum() for c in _SUMS),
        pl.col("sales_fen").filter(linked).sum().alias("link_now"),
        pl.col("prev_fen").filter(linked).sum().alias("link_prev"),
        linked.sum().cast(pl.Int64).alias("linked"),
    )
    out = []
    for level, (by_sector, geo) in LEVELS.items():
        keys = [
            (pl.col("sector") if by_sector else pl.lit(ALL)).alias("sector"),
            (pl.col("province") if geo != "nation" else pl.lit(ALL)).alias("province"),
            (pl.col("city") if geo == "city" else pl.lit(ALL)).alias("city"),
        ]
        out.append(
            finest.group_by(*keys, "month").agg(pl.col(additive).sum()).select(pl.lit(level).alias("level"), pl.all())
        )
    return pl.concat(out)


def complete_grid(cells: pl.DataFrame, first: int, last: int) -> pl.DataFrame:
    """Every cell seen in any month, in every month from ``first`` to ``last`` (absent: zeros)."""
    keys = cells.select(_CELL).unique()
    grid = keys.join(pl.DataFrame({"month": pl.int_range(first, last + 1, eager=True).cast(pl.Int32)}), how="cross")
    filled = grid.join(cells, on=[*_CELL, "month"], how="left")
    counts = ["merchants", *_SUMS, "link_now", "link_prev", "linked"]
    return filled.with_columns(pl.col(counts).fill_null(0)).sort(*_CELL, "month")


def chain_index(grid: pl.DataFrame, base_month: int) -> pl.DataFrame:
    """``index`` (``BASE_INDEX`` in ``base_month``), ``index_mom``, ``index_yoy`` per cell.

    Link of month t: sales in t over sales in t - 1 of the merchants active in both; the index is
    the product of the links, rebased to the base month. A month without such merchants keeps the
    previous level (its link is missing, not 1: ``index_mom`` is null there).
    """
    link = pl.when(pl.col("link_prev") > 0).then(pl.col("link_now") / pl.col("link_prev"))
    out = grid.sort(*_CELL, "month").with_columns(link.alias("link"))
    out = out.with_columns(pl.col("link").fill_null(1.0).cum_prod().over(_CELL).alias("chain"))
    base = out.filter(pl.col("month") == base_month).select(*_CELL, pl.col("chain").alias("base_chain"))
    out = out.join(base, on=_CELL, how="left").with_columns(
        (BASE_INDEX * pl.col("chain") / pl.col("base_chain")).alias("index"),
        (pl.col("link") - 1.0).alias("index_mom"),
    )
    year_ago = out.select(*_CELL, (pl.col("month") + 12).alias("month"), pl.col("index").alias("index_year_ago"))
    out = out.join(year_ago, on=[*_CELL, "month"], how="left")
    return out.with_columns((pl.col("index") / pl.col("index_year_ago") - 1.0).alias("index_yoy")).drop(
        "chain", "base_chain", "index_year_ago", "link"
    )


# --------------------------------------------------------------------------- small cells


def _lines(shape: tuple[int, int], ids: np.ndarray) -> list[dict[int, float]]:
    """Line equations (interior sum - total = 0) of an augmented grid whose cells are variables ``ids``."""
    rows, cols = shape
    eqs = []
    for i in range(rows):
        eqs.append({**{int(ids[i, j]): 1.0 for j in range(cols - 1)}, int(ids[i, cols - 1]): -1.0})
    for j in range(cols):
        eqs.append({**{int(ids[i, j]): 1.0 for i in range(rows - 1)}, int(ids[rows - 1, j]): -1.0})
    return eqs


def _determined(equations: list[dict[int, float]], hidden: np.ndarray) -> np.ndarray:
    """Hidden variables fixed by the equations and the published variables (no direction moves them)."""
    idx = np.flatnonzero(hidden)
    if len(idx) == 0:
        return np.zeros(len(hidden), dtype=bool)
    where = {int(v): k for k, v in enumerate(idx)}
    sub = np.zeros((len(equations), len(idx)))
    for r, eq in enumerate(equations):
        for v, c in eq.items():
            if v in where:
                sub[r, where[v]] = c
    sub = sub[np.abs(sub).sum(axis=1) > 0]
    out = np.zeros(len(hidden), dtype=bool)
    if len(sub) == 0:
        return out
    _, sv, vt = np.linalg.svd(sub)
    rank = int((sv > 1e-9 * max(sv.max(), 1.0)).sum())
    null = vt[rank:]
    free = np.abs(null).sum(axis=0) > 1e-9 if len(null) else np.zeros(len(idx), dtype=bool)
    out[idx[~free]] = True
    return out


def _protect_month(a_counts: np.ndarray, b_counts: list[np.ndarray], k: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """Suppression of one month: sector x province (augmented) and, per province, sector x city (augmented).

    A province's city table takes the province's column as its margin: cells hidden there are
    forced, the others locked. Where that table cannot be protected, or the two levels together
    would reveal a small city cell, all its city cells are hidden.
    """
    a = protect(a_counts, k)
    m = a_counts.shape[0]
    b_masks, b_values = [], []
    for j, counts in enumerate(b_counts):
        n = counts.shape[1]
        force = np.zeros((m + 1, n + 1), dtype=bool)
        force[:, n] = a.suppressed[:, j]
        locked = np.zeros_like(force)
        locked[:, n] = ~a.suppressed[:, j]
        try:
            b_masks.append(protect(counts, k, force=force, locked=locked).suppressed)
        except ProtectionError:
            b_masks.append(_hide_all(force))
        b_values.append(augment(counts))
    for _ in range(len(b_counts) + 1):
        exposed = _joint_exposed(a.values, a.suppressed, b_values, b_masks, k)
        if not exposed:
            return a.suppressed, b_masks
        for j in exposed:
            b_masks[j] = _hide_all(b_masks[j])
    raise AssertionError("hiding every city cell must leave the province table as safe as it was")


def _hide_all(mask: np.ndarray) -> np.ndarray:
    out = np.ones_like(mask)
    out[:, -1] = mask[:, -1]
    return out


def _joint_exposed(
    a_values: np.ndarray, a_mask: np.ndarray, b_values: list[np.ndarray], b_masks: list[np.ndarray], k: int
) -> list[int]:
    """Provinces whose small city cells (1 .. k-1 merchants) the two levels' published numbers pin down.

    Variables: every cell of the province table, then the cells of each city table but its last
    column (that column is the province table's column of the province).
    """
    ids = np.arange(a_values.size).reshape(a_values.shape)
    equations = _lines(a_values.shape, ids)
    hidden, small, owner = [a_mask.ravel()], [np.zeros(a_values.size, dtype=bool)], [np.full(a_values.size, -1)]
    nxt = a_values.size
    for j, (vals, mask) in enumerate(zip(b_values, b_masks, strict=True)):
        fresh = np.ones(vals.shape, dtype=bool)
        fresh[:, -1] = False
        count = int(fresh.sum())
        b_ids = np.empty(vals.shape, dtype=np.int64)
        b_ids[fresh] = np.arange(nxt, nxt + count)
        b_ids[:, -1] = ids[:, j]
        equations += _lines(vals.shape, b_ids)
        hidden.append(mask[fresh])
        small.append(((vals >= 1) & (vals < k))[fresh])
        owner.append(np.full(count, j))
        nxt += count
    bad = _determined(equations, np.concatenate(hidden)) & np.concatenate(small)
    return sorted({int(o) for o in np.concatenate(owner)[bad] if o >= 0})


def suppression(grid: pl.DataFrame, k: int) -> pl.DataFrame:
    """``_CELL, month, suppressed`` for every cell of the six levels, month by month."""
    sectors = sorted(grid.filter(pl.col("sector") != ALL)["sector"].unique().to_list())
    provinces = sorted(grid.filter(pl.col("province") != ALL)["province"].unique().to_list())
    cities = {
        p: sorted(grid.filter((pl.col("province") == p) & (pl.col("city") != ALL))["city"].unique().to_list())
        for p in provinces
    }
    si = {s: i for i, s in enumerate(sectors)}
    pj = {p: j for j, p in enumerate(provinces)}
    cj = {p: {c: j for j, c in enumerate(cs)} for p, cs in cities.items()}
    m, n = len(sectors), len(provinces)
    sp = grid.filter(pl.col("level") == "sector_province").select("sector", "province", "month", "merchants")
    sc = grid.filter(pl.col("level") == "sector_city").select("sector", "province", "city", "month", "merchants")
    out: list[tuple] = []
    for month in sorted(grid["month"].unique().to_list()):
        a = np.zeros((m, n), dtype=np.int64)
        for s, p, _, v in sp.filter(pl.col("month") == month).iter_rows():
            a[si[s], pj[p]] = v
        b = [np.zeros((m, len(cities[p])), dtype=np.int64) for p in provinces]
        for s, p, c, _, v in sc.filter(pl.col("month") == month).iter_rows():
            b[pj[p]][si[s], cj[p][c]] = v
        a_mask, b_masks = _protect_month(a, b, k)
        keys_s = [*sectors, ALL]
        keys_p = [*provinces, ALL]
        for i, s in enumerate(keys_s):
            for j, p in enumerate(keys_p):
                level = {(True, True): "sector_province", (True, False): "sector"}.get(
                    (s != ALL, p != ALL), "province" if p != ALL else "overall"
                )
                out.append((level, s, p, ALL, month, bool(a_mask[i, j])))
        for j, p in enumerate(provinces):
            for i, s in enumerate(keys_s):
                for c, jj in cj[p].items():
                    out.append(("sector_city" if s != ALL else "city", s, p, c, month, bool(b_masks[j][i, jj])))
    frame = pl.DataFrame(out, schema=[*_CELL, "month", "suppressed"], orient="row")
    return frame.with_columns(pl.col("month").cast(pl.Int32))


# --------------------------------------------------------------------------- published tables


def _label(col: str) -> pl.Expr:
    """``YYYY-MM`` of a months-since-1970 column."""
    year = (pl.col(col) // 12 + 1970).cast(pl.String)
    return year + "-" + (pl.col(col) % 12 + 1).cast(pl.String).str.zfill(2)


def _year_ago(frame: pl.DataFrame, cols: list[str]) -> pl.DataFrame:
    """``frame`` with ``<col>_year_ago``: each column's value in the same cell twelve months earlier."""
    ago = frame.select(*_CELL, (pl.col("month") + 12).alias("month"), *(pl.col(c).alias(f"{c}_year_ago") for c in cols))
    return frame.join(ago, on=[*_CELL, "month"], how="left")


def published(grid: pl.DataFrame, hidden: pl.DataFrame, k: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The aggregates (six levels) and the index (four levels), with every suppressed value null."""
    g = grid.join(hidden, on=[*_CELL, "month"], how="left").with_columns(pl.col("suppressed").fill_null(True))
    g = _year_ago(g, ["merchants", "sales", "sales_fen", "suppressed"])
    shown = ~pl.col("suppressed")
    both = shown & ~pl.col("suppressed_year_ago")  # null (no year-earlier month): no change published

    def yoy(col: str) -> pl.Expr:
        return pl.when(both & (pl.col(f"{col}_year_ago") > 0)).then(pl.col(col) / pl.col(f"{col}_year_ago") - 1.0)

    def share(num: str, den: str) -> pl.Expr:
        return pl.when(shown & (pl.col(den) > 0)).then(pl.col(num) / pl.col(den))

    # an index value needs a published cell and a link over at least k merchants (else two published
    # levels would give away the sales growth of fewer than k merchants); its yearly change needs
    # both levels published
    linked_ok = shown & (pl.col("linked") >= k)
    g = g.with_columns(
        pl.when(linked_ok | (shown & pl.col("index_mom").is_null())).then(pl.col("index")).alias("index"),
        pl.when(linked_ok).then(pl.col("index_mom")).alias("index_mom"),
    )
    g = _year_ago(g.drop("index_yoy"), ["index"]).with_columns(
        (pl.col("index") / pl.col("index_year_ago") - 1.0).alias("index_yoy")
    )
    g = g.with_columns(
        _label("month").alias("month_label"),
        pl.when(shown).then(pl.col("merchants")).alias("merchants_out"),
        yoy("merchants").alias("merchants_yoy"),
        pl.when(shown).then(pl.col("sales_fen")).alias("consumption_fen"),
        pl.when(shown).then(pl.col("sales")).alias("consumption_count"),
        yoy("sales_fen").alias("consumption_yoy"),
        yoy("sales").alias("consumption_count_yoy"),
        pl.when(shown).then(pl.col("refund_fen")).alias("refund_fen_out"),
        pl.when(shown).then(pl.col("txns") - pl.col("sales")).alias("refund_count"),
        pl.when(shown).then(pl.col("digital_fen")).alias("digital_fen_out"),
        pl.when(shown).then(pl.col("digital")).alias("digital_count"),
        share("digital_fen", "sales_fen").alias("digital_share"),
        share("digital", "sales").alias("digital_count_share"),
    )
    aggregates = g.select(
        *_CELL,
        pl.col("month_label").alias("month"),
        pl.col("merchants_out").alias("merchants"),
        "merchants_yoy",
        "consumption_fen",
        "consumption_count",
        "consumption_yoy",
        "consumption_count_yoy",
        pl.col("refund_fen_out").alias("refund_fen"),
        "refund_count",
        pl.col("digital_fen_out").alias("digital_fen"),
        "digital_count",
        "digital_share",
        "digital_count_share",
        "suppressed",
    ).sort(*_CELL, "month")
    index = (
        g.filter(pl.col("level").is_in(INDEX_LEVELS))
        .select(
            "level",
            "sector",
            "province",
            pl.col("month_label").alias("month"),
            "index",
            "index_mom",
            "index_yoy",
            pl.col("merchants_out").alias("merchants"),
            "consumption_fen",
            "consumption_count",
            "consumption_yoy",
            "digital_share",
            "suppressed",
        )
        .sort("level", "sector", "province", "month")
    )
    return aggregates, index


def build_consumption(
    validated: Path,
    out: Path,
    *,
    k: int,
    base_month: str | None = None,
    hash_inputs: bool = True,
    progress: ProgressFn | None = None,
) -> dict:
    """Read ``validated``'s transactions and merchants, write ``aggregates.parquet``, ``index.parquet`` and
    ``metadata.json`` into ``out``; return the metadata. ``k``: the minimum cell count."""
    validated, out = Path(validated), Path(out)
    paths = {name: validated / f"{name}.parquet" for name in ("transactions", "merchants")}
    for name, path in paths.items():
        if not path.is_file():
            raise ConsumptionError(f"no validated {name} table at {path}: run `lifecredit validate`")
    merchants = pl.read_parquet(paths["merchants"], columns=["merchant_id", "sector", "region_code"])
    attributes = merchant_attributes(merchants)
    months_frame, stats = merchant_months(paths["transactions"], attributes["merchant_id"].to_list(), progress=progress)
    if months_frame.filter(pl.col("sales") > 0).height == 0:
        raise ConsumptionError(f"{paths['transactions']}: no sale of a known merchant to aggregate")
    cells = cell_sums(months_frame, attributes.drop("merchant_id"))
    first, last = int(cells["month"].min()), int(cells["month"].max())
    base = first if base_month is None else month_number(base_month)
    if not first <= base <= last:
        raise ConsumptionError(
            f"base month {base_month} is outside the data: {month_label(first)} .. {month_label(last)}"
        )
    grid = chain_index(complete_grid(cells, first, last), base)
    aggregates, index = published(grid, suppression(grid, k), k)
    out.mkdir(parents=True, exist_ok=True)
    for name, frame in ((AGGREGATES_FILE, aggregates), (INDEX_FILE, index)):
        with atomic_path(out / name) as tmp:
            frame.write_parquet(tmp)
    meta = {
        "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": BUILD_COMMAND,
        "inputs": {
            name: {"path": str(path), "sha256": file_sha256(path) if hash_inputs else None}
            for name, path in paths.items()
        },
        "base_month": month_label(base),
        "months": [month_label(first), month_label(last)],
        "min_cell_count": k,
        "digital_channels": list(DIGITAL_CHANNELS),
        "levels": list(LEVELS),
        "index_levels": list(INDEX_LEVELS),
        "rows": {"merchant_months": months_frame.height, "aggregates": aggregates.height, "index": index.height},
        "suppressed_cells": int(aggregates["suppressed"].sum()),
        **stats,
    }
    write_text_atomic(out / METADATA_FILE, json.dumps(meta, indent=1, ensure_ascii=False) + "\n")
    return meta
