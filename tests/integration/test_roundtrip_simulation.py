"""Round trip: simulate -> validate. A clean market loses no row; a defective one loses none silently."""

from __future__ import annotations

import json
from datetime import date

import polars as pl
import pytest

from data_contracts import REASONS, TABLES, load_contract, rule_names, validate_dir

DEFECTIVE_MARKET = dict(merchants=150, months=18, seed=5, volume_scale=0.05, start=date(2023, 1, 1), defect_rate=0.02)


def _rows(path) -> int:
    return pl.scan_parquet(path).select(pl.len()).collect().item()


def test_clean_market_has_zero_rejects(small_market, validated_market):
    summary = json.loads((validated_market / "validation_summary.json").read_text())
    for table in TABLES:
        entry = summary["tables"][table]
        assert entry["rejected"] == 0, (table, entry["rejected_by_rule"])
        assert entry["valid"] == entry["rows_in"] == _rows(small_market / f"{table}.parquet") > 0
        valid = pl.read_parquet(validated_market / f"{table}.parquet")
        assert valid.schema == load_contract(table).polars_schema()
        assert _rows(validated_market / "quarantine" / f"{table}.parquet") == 0


@pytest.fixture(scope="module")
def defective(tmp_path_factory):
    from simulation import simulate_market

    raw = tmp_path_factory.mktemp("raw_defective")
    simulate_market(raw, **DEFECTIVE_MARKET)
    out = tmp_path_factory.mktemp("validated_defective")
    return raw, out, validate_dir(raw, out)


def test_defective_market_valid_plus_quarantined_equals_input(defective):
    raw, out, summary = defective
    for table in TABLES:
        rows_in = _rows(raw / f"{table}.parquet")
        valid = _rows(out / f"{table}.parquet")
        quarantine = pl.read_parquet(out / "quarantine" / f"{table}.parquet")
        assert valid + quarantine.height == rows_in, table
        entry = summary["tables"][table]
        assert (entry["rows_in"], entry["valid"], entry["rejected"]) == (rows_in, valid, quarantine.height)
        # every quarantined row says why, in rule names the contract defines
        assert quarantine.height == 0 or quarantine[REASONS].list.len().min() > 0
        named = set(quarantine[REASONS].explode().drop_nulls().unique().to_list())
        assert named <= set(rule_names(load_contract(table))), (table, named)
        assert quarantine.columns[:-1] == pl.read_parquet_schema(raw / f"{table}.parquet").names()
    assert sum(summary["tables"][t]["rejected"] for t in TABLES) > 0


def test_defective_market_valid_rows_are_clean(defective):
    _, out, _ = defective
    for table in TABLES:
        valid = pl.read_parquet(out / f"{table}.parquet")
        contract = load_contract(table)
        assert valid.schema == contract.polars_schema()
        key = contract.primary_key
        assert valid.select(pl.struct(key).is_unique().all()).item(), table
        for field in contract.fields:
            if field.required:
                assert valid[field.name].null_count() == 0, (table, field.name)
    merchants = set(pl.read_parquet(out / "merchants.parquet")["merchant_id"])
    assert set(pl.read_parquet(out / "transactions.parquet")["merchant_id"].unique()) <= merchants


def _to_csv(frame: pl.DataFrame) -> pl.DataFrame:
    """What a CSV export gives: timestamps as ISO-8601 text with their offset."""
    return frame.with_columns(
        pl.col(c).dt.strftime("%Y-%m-%dT%H:%M:%S%.6f%:z") for c, d in frame.schema.items() if isinstance(d, pl.Datetime)
    )


def test_csv_export_of_the_market_validates_like_the_parquet(small_market, validated_market, tmp_path):
    raw = tmp_path / "raw_csv"
    raw.mkdir()
    for table in TABLES:
        _to_csv(pl.read_parquet(small_market / f"{table}.parquet")).write_csv(raw / f"{table}.csv")
    summary = validate_dir(raw, tmp_path / "out")
    for table in TABLES:
        assert summary["tables"][table]["rejected"] == 0, summary["tables"][table]["rejected_by_rule"]
        from_csv = pl.read_parquet(tmp_path / "out" / f"{table}.parquet")
        assert from_csv.equals(pl.read_parquet(validated_market / f"{table}.parquet")), table
