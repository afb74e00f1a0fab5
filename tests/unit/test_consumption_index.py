"""Consumption aggregates and the index on tiny frames: the pass's sums, chain-linking, small cells."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from regulator import consumption as cons
from regulator.suppression import augment

JAN, FEB, MAR = (cons.month_number(m) for m in ("2024-01", "2024-02", "2024-03"))


def _months(rows: list[tuple]) -> pl.DataFrame:
    """Merchant-months from (mcode, month, sales_fen), one sale each, nothing digital."""
    return pl.DataFrame(
        {
            "mcode": [r[0] for r in rows],
            "month": [r[1] for r in rows],
            "txns": [1] * len(rows),
            "sales": [1] * len(rows),
            "sales_fen": [r[2] for r in rows],
            "refund_fen": [0] * len(rows),
            "digital": [0] * len(rows),
            "digital_fen": [0] * len(rows),
        },
        schema={"mcode": pl.Int32, "month": pl.Int32, **dict.fromkeys(cons._SUMS, pl.Int64)},
    )


def _attributes(n: int, sector: str = "catering", region: str = "440103") -> pl.DataFrame:
    frame = pl.DataFrame({"merchant_id": [f"M{i + 1:08d}" for i in range(n)], "sector": sector, "region_code": region})
    return cons.merchant_attributes(frame).drop("merchant_id")


def _overall(rows: list[tuple], n: int, base: int = JAN) -> pl.DataFrame:
    cells = cons.cell_sums(_months(rows), _attributes(n))
    grid = cons.chain_index(cons.complete_grid(cells, int(cells["month"].min()), int(cells["month"].max())), base)
    return grid.filter(pl.col("level") == "overall").sort("month")


def test_a_uniform_rise_of_ten_percent_moves_the_index_ten_percent():
    out = _overall([(0, JAN, 100), (1, JAN, 200), (0, FEB, 110), (1, FEB, 220)], 2)
    assert out["index"].to_list() == pytest.approx([100.0, 110.0])
    assert out["index_mom"][1] == pytest.approx(0.10)


def test_entries_and_exits_do_not_move_the_index():
    stayers = [(0, JAN, 100), (1, JAN, 200), (0, FEB, 110), (1, FEB, 220)]
    churn = [(2, JAN, 5_000), (3, FEB, 90_000)]  # merchant 2 leaves after January, merchant 3 enters in February
    out = _overall(stayers + churn, 4)
    assert out["index"].to_list() == pytest.approx([100.0, 110.0])
    assert out["merchants"].to_list() == [3, 3] and out["linked"].to_list() == [0, 2]
    # the raw consumption total does move: that is what the index is not
    assert out["sales_fen"].to_list() == [5_300, 90_330]


def test_links_chain_and_the_base_month_reads_100():
    rows = [(0, JAN, 100), (0, FEB, 120), (0, MAR, 60)]
    assert _overall(rows, 1)["index"].to_list() == pytest.approx([100.0, 120.0, 60.0])
    rebased = _overall(rows, 1, base=FEB)
    assert rebased["index"].to_list() == pytest.approx([100 / 1.2, 100.0, 50.0])


def test_a_month_with_nobody_trading_in_both_keeps_the_level_and_has_no_change():
    rows = [(0, JAN, 100), (1, FEB, 300), (1, MAR, 330)]
    out = _overall(rows, 2)
    assert out["index"].to_list() == pytest.approx([100.0, 100.0, 110.0])
    assert out["index_mom"][1] is None


def test_year_on_year_of_the_index_and_of_consumption_and_suppressed_cells_publish_nothing():
    rows = [(0, m, 100 * (2 if m == JAN + 12 else 1)) for m in range(JAN, JAN + 13)]
    grid = cons.chain_index(cons.complete_grid(cons.cell_sums(_months(rows), _attributes(1)), JAN, JAN + 12), JAN)
    agg, index = cons.published(grid, cons.suppression(grid, k=1), k=1)
    last = index.filter(pl.col("level") == "overall").row(-1, named=True)
    assert last["month"] == "2025-01" and last["index"] == pytest.approx(200.0)
    assert last["index_yoy"] == pytest.approx(1.0) and last["consumption_yoy"] == pytest.approx(1.0)
    assert index.filter(pl.col("level") == "overall")["index_yoy"].null_count() == 12  # no year-earlier month
    # one merchant is a small cell under k = 10: every number hidden, at every level
    agg, index = cons.published(grid, cons.suppression(grid, k=10), k=10)
    assert agg["suppressed"].all() and agg["consumption_fen"].null_count() == agg.height
    assert index["index"].null_count() == index.height and index["digital_share"].null_count() == index.height


def _write_transactions(path, rows: list[dict]) -> None:
    table = pa.Table.from_pylist(
        rows,
        schema=pa.schema(
            [
                ("merchant_id", pa.large_string()),
                ("ts", pa.timestamp("us", tz="Asia/Shanghai")),
                ("txn_type", pa.large_string()),
                ("amount_fen", pa.int64()),
                ("channel", pa.large_string()),
            ]
        ),
    )
    pq.write_table(table, path, use_dictionary=["merchant_id", "txn_type", "channel"])


def test_the_pass_sums_per_merchant_and_local_month(tmp_path):
    t = lambda *a: datetime(*a, tzinfo=UTC)  # noqa: E731
    rows = [
        # 2024-01-31 16:30 UTC is 2024-02-01 00:30 in Beijing: February
        {
            "merchant_id": "M00000001",
            "ts": t(2024, 1, 31, 16, 30),
            "txn_type": "sale",
            "amount_fen": 100,
            "channel": "alipay",
        },
        {
            "merchant_id": "M00000001",
            "ts": t(2024, 1, 31, 15, 30),
            "txn_type": "sale",
            "amount_fen": 50,
            "channel": "bank_card",
        },
        {
            "merchant_id": "M00000002",
            "ts": t(2024, 1, 10),
            "txn_type": "sale",
            "amount_fen": 70,
            "channel": "digital_rmb",
        },
        {
            "merchant_id": "M00000001",
            "ts": t(2024, 2, 3),
            "txn_type": "refund",
            "amount_fen": 20,
            "channel": "wechat_pay",
        },
        {"merchant_id": "M00000001", "ts": t(2024, 2, 4), "txn_type": "sale", "amount_fen": 30, "channel": "other"},
        {"merchant_id": "M99999999", "ts": t(2024, 2, 4), "txn_type": "sale", "amount_fen": 1, "channel": "other"},
        {
            "merchant_id": "M00000002",
            "ts": t(2024, 1, 12),
            "txn_type": "sale",
            "amount_fen": 5,
            "channel": "wechat_pay",
        },
    ]  # out of order on purpose: runs are summed again
    _write_transactions(tmp_path / "t.parquet", rows)
    frame, stats = cons.merchant_months(tmp_path / "t.parquet", ["M00000001", "M00000002"])
    got = {(r["mcode"], cons.month_label(r["month"])): r for r in frame.iter_rows(named=True)}
    assert set(got) == {(0, "2024-01"), (0, "2024-02"), (1, "2024-01")}
    jan1, feb1, jan2 = got[(0, "2024-01")], got[(0, "2024-02")], got[(1, "2024-01")]
    assert (jan1["sales"], jan1["sales_fen"], jan1["digital_fen"]) == (1, 50, 0)
    assert (feb1["txns"], feb1["sales"], feb1["sales_fen"], feb1["refund_fen"]) == (3, 2, 130, 20)
    assert (feb1["digital"], feb1["digital_fen"]) == (1, 100)  # the refund through wechat_pay is no digital sale
    assert (jan2["sales_fen"], jan2["digital"], jan2["digital_fen"]) == (75, 2, 75)
    assert stats["unknown_merchant_transactions"] == 1 and stats["transactions"] == 7
    assert stats["first_day"] == "2024-01-10" and stats["last_day"] == "2024-02-04"


def _reference(frame: pl.DataFrame) -> pl.DataFrame:
    """The pass's sums computed row by row with Polars (merchant, Beijing month)."""
    sale = pl.col("txn_type") == "sale"
    digital = sale & pl.col("channel").is_in(cons.DIGITAL_CHANNELS)
    return frame.group_by(
        "merchant_id", pl.col("ts").dt.convert_time_zone("Asia/Shanghai").dt.strftime("%Y-%m").alias("m")
    ).agg(
        pl.len().cast(pl.Int64).alias("txns"),
        sale.sum().cast(pl.Int64).alias("sales"),
        pl.col("amount_fen").filter(sale).sum().alias("sales_fen"),
        pl.col("amount_fen").filter(~sale).sum().alias("refund_fen"),
        digital.sum().cast(pl.Int64).alias("digital"),
        pl.col("amount_fen").filter(digital).sum().alias("digital_fen"),
    )


def _mine(frame: pl.DataFrame, known: list[str]) -> pl.DataFrame:
    return frame.select(
        pl.col("mcode").map_elements(lambda c: known[c], return_dtype=pl.String).alias("merchant_id"),
        pl.col("month").map_elements(cons.month_label, return_dtype=pl.String).alias("m"),
        *cons._SUMS,
    )


def test_the_pass_matches_a_row_by_row_reference_in_any_order_and_batching(tmp_path, monkeypatch):
    rng = np.random.default_rng(3)
    n = 5_000
    ids = [f"M{i:08d}" for i in rng.integers(1, 40, n)]
    ts = rng.integers(1_704_067_200, 1_719_792_000, n) * 1_000_000
    ts[0] = int(datetime(2024, 3, 31, 16, tzinfo=UTC).timestamp()) * 1_000_000  # Beijing midnight, 1 April
    table = pa.table(
        {
            "merchant_id": pa.array(ids, pa.string()),
            "ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
            "txn_type": pa.array(rng.choice(["sale", "refund"], n, p=[0.9, 0.1]), pa.string()),
            "amount_fen": pa.array(rng.integers(1, 10_000, n), pa.int64()),
            "channel": pa.array(rng.choice(["alipay", "bank_card", "other", "unionpay_qr"], n), pa.string()),
        }
    )
    known = sorted(set(ids))
    ref = _reference(pl.from_arrow(table)).sort("merchant_id", "m")
    # shuffled rows, plain strings, small batches: every row's month is computed
    pq.write_table(table, tmp_path / "t.parquet", use_dictionary=False, row_group_size=700)
    monkeypatch.setattr(cons, "BATCH_ROWS", 256)
    frame, _ = cons.merchant_months(tmp_path / "t.parquet", known)
    assert _mine(frame, known).sort("merchant_id", "m").equals(ref)
    # sorted by merchant and time (the simulator's and validate's order): month edges by binary search
    ordered = pl.from_arrow(table).sort("merchant_id", "ts")
    pq.write_table(ordered.to_arrow(), tmp_path / "s.parquet", row_group_size=2_000)
    monkeypatch.setattr(cons, "BATCH_ROWS", 2_000)
    runs, found = cons._sorted_runs, []
    monkeypatch.setattr(cons, "_sorted_runs", lambda idx, t: found.append(runs(idx, t)) or found[-1])
    frame, _ = cons.merchant_months(tmp_path / "s.parquet", known, threads=1)
    assert len(found) == 3 and all(f is not None for f in found)
    assert _mine(frame, known).sort("merchant_id", "m").equals(ref)


def _random_month(rng, m: int, n: int, cities: list[int]) -> tuple[np.ndarray, list[np.ndarray]]:
    b = [rng.poisson(rng.choice([0.5, 3, 15, 40], size=(m, c))).astype(np.int64) for c in cities]
    return np.stack([x.sum(axis=1) for x in b], axis=1), b


def test_the_two_level_protection_hides_every_small_cell_and_leaves_none_recoverable():
    rng = np.random.default_rng(11)
    k = 10
    for _ in range(25):
        cities = list(rng.integers(1, 5, size=4))
        a, b = _random_month(rng, 5, len(cities), cities)
        a_mask, b_masks = cons._protect_month(a, b, k)
        a_full = augment(a)
        assert not ((a_full >= 1) & (a_full < k) & ~a_mask).any()
        for j, (counts, mask) in enumerate(zip(b, b_masks, strict=True)):
            full = augment(counts)
            assert not ((full >= 1) & (full < k) & ~mask).any()
            assert (mask[:, -1] == a_mask[:, j]).all()  # a province's cells read the same at both levels
        assert cons._joint_exposed(a_full, a_mask, [augment(x) for x in b], b_masks, k) == []


def test_joint_check_finds_a_small_city_cell_the_province_table_gives_away():
    # one city cell of 3 hidden with one partner in its row, but the province total of that sector is published
    # and the other city published: 3 = row total - partner is still pinned once the partner's column is known
    a = np.array([[13, 40]])
    b = [np.array([[3, 10]]), np.array([[40]])]
    a_full = augment(a)
    a_mask = np.zeros_like(a_full, dtype=bool)
    b_masks = [np.zeros((2, 3), dtype=bool), np.zeros((2, 2), dtype=bool)]
    b_masks[0][0, 0] = b_masks[0][1, 0] = True  # the small cell and its column total: still recoverable
    assert cons._joint_exposed(a_full, a_mask, [augment(x) for x in b], b_masks, 10) == [0]
    a_mask, masks = cons._protect_month(a, b, 10)
    assert masks[0][0, 0] and cons._joint_exposed(a_full, a_mask, [augment(x) for x in b], masks, 10) == []


def test_build_writes_the_files_and_refuses_missing_tables(tmp_path):
    with pytest.raises(cons.ConsumptionError, match="lifecredit validate"):
        cons.build_consumption(tmp_path, tmp_path / "out", k=10)
    rows = [
        {
            "merchant_id": f"M{i:08d}",
            "ts": datetime(2024, 1 + m, 10, tzinfo=UTC),
            "txn_type": "sale",
            "amount_fen": 100 * (1 + m),
            "channel": "alipay",
        }
        for m in range(3)
        for i in range(1, 31)
    ]
    _write_transactions(tmp_path / "transactions.parquet", rows)
    pl.DataFrame(
        {"merchant_id": [f"M{i:08d}" for i in range(1, 31)], "sector": "retail", "region_code": "330102"}
    ).write_parquet(tmp_path / "merchants.parquet")
    with pytest.raises(cons.ConsumptionError, match="outside the data"):
        cons.build_consumption(tmp_path, tmp_path / "out", k=10, base_month="2023-12")
    meta = cons.build_consumption(tmp_path, tmp_path / "out", k=10, base_month="2024-02")
    assert meta["base_month"] == "2024-02" and meta["months"] == ["2024-01", "2024-03"]
    assert len(meta["inputs"]["transactions"]["sha256"]) == 64
    index = pl.read_parquet(tmp_path / "out" / cons.INDEX_FILE).filter(pl.col("level") == "overall")
    assert index["index"].to_list() == pytest.approx([50.0, 100.0, 150.0])
    assert index["digital_share"].to_list() == [1.0, 1.0, 1.0] and index["merchants"].to_list() == [30, 30, 30]
    agg = pl.read_parquet(tmp_path / "out" / cons.AGGREGATES_FILE)
    assert set(agg["level"]) == set(cons.LEVELS) and not agg["suppressed"].any()
    small = cons.build_consumption(tmp_path, tmp_path / "small", k=31)
    hidden = pl.read_parquet(tmp_path / "small" / cons.INDEX_FILE)
    assert hidden["suppressed"].all() and hidden["index"].null_count() == hidden.height
    assert small["suppressed_cells"] == pl.read_parquet(tmp_path / "small" / cons.AGGREGATES_FILE).height


def test_merchant_positions_agree_for_few_and_many_ids():
    ids = [f"M{i:08d}" for i in range(1, 6_001)]
    known = cons._Merchants(ids)
    values = pa.array([*reversed(ids), "M90000001"], type=pa.string())
    many = known.codes(values)  # Arrow's hash join
    few = np.concatenate([known.codes(values[i : i + 1_000]) for i in range(0, len(values), 1_000)])
    assert many.tolist() == few.tolist() == [*range(5_999, -1, -1), -1]
