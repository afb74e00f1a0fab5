"""One merchant re-scored after a correction: the same features as a full rebuild, from its own rows only."""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta

import polars as pl
import pytest

from data_contracts import validate_dir
from data_contracts.corrections import append_correction
from features import RawTables, build_features, compute_features
from features.pipeline import PEER_COLUMNS, PEER_CONDITIONS, peer_features
from features.tables import local_date
from merchant.rescore import RescoreError, merchant_tables, rescore_features

MARKET_LEVEL = {*PEER_COLUMNS, *PEER_CONDITIONS}


@pytest.fixture(scope="module")
def snapshot(validated_market, tmp_path_factory) -> pl.DataFrame:
    out = tmp_path_factory.mktemp("rescore_features")
    build_features(validated_market, out)
    return pl.read_parquet(out / "latest.parquet")


def _same(got: pl.DataFrame, want: pl.DataFrame, columns: list[str] | None = None) -> list[str]:
    """Columns where the two one-row frames differ (floats to 1e-9; null only equals null)."""
    differ = []
    for c in columns or want.columns:
        a, b = got[c][0], want[c][0]
        if isinstance(a, float) and isinstance(b, float):
            if not (math.isclose(a, b, rel_tol=0, abs_tol=1e-9) or (math.isnan(a) and math.isnan(b))):
                differ.append(c)
        elif a != b:
            differ.append(c)
    return differ


def _row(frame: pl.DataFrame, merchant_id: str) -> pl.DataFrame:
    return frame.filter(pl.col("merchant_id") == merchant_id)


def _picks(validated, as_of: date) -> dict[str, dict]:
    """A merchant with a complaint in the last 90 days, one with a current penalty of the last year, one
    with an arrears report; each with the record a steward corrects."""
    window = pl.col("day") >= as_of - timedelta(days=90)
    complaint = (
        pl.read_parquet(validated / "complaints.parquet")
        .with_columns(local_date("received_at").alias("day"))
        .filter((pl.col("day") < as_of) & window)
        .sort("complaint_id")
        .row(0, named=True)
    )
    penalty = (
        pl.read_parquet(validated / "public_records.parquet")
        .filter(
            (pl.col("record_type") == "administrative_penalty")
            & (pl.col("published_on") < as_of)
            & (pl.col("published_on") >= as_of - timedelta(days=365))
            & pl.col("removed_on").is_null()
            & (pl.col("merchant_id") != complaint["merchant_id"])
        )
        .sort("record_id")
        .row(0, named=True)
    )
    arrears = (
        pl.read_parquet(validated / "loan_performance.parquet")
        .filter(
            (pl.col("reported_on") < as_of)
            & ~pl.col("merchant_id").is_in([complaint["merchant_id"], penalty["merchant_id"]])
        )
        .sort("days_past_due", "loan_id", "reported_on", descending=[True, False, False])
        .row(0, named=True)
    )
    assert arrears["days_past_due"] > 0
    return {"complaint": complaint, "penalty": penalty, "arrears": arrears}


def test_without_corrections_the_rescored_row_is_the_snapshot_row(validated_market, snapshot, tmp_path):
    before = snapshot.clone()
    ids = snapshot.sort("sale_count_365d", "merchant_id", descending=[True, False], nulls_last=True)["merchant_id"]
    with_credit = snapshot.filter(pl.col("has_credit_history"))["merchant_id"]
    chosen = [*ids[:3], *ids[-2:], *with_credit[:2], snapshot.filter(pl.col("penalties_ever") > 0)["merchant_id"][0]]
    (tmp_path / "empty").mkdir()
    for i, merchant_id in enumerate(chosen):
        got = rescore_features(validated_market, tmp_path / "empty" if i % 2 else None, snapshot, merchant_id)
        want = _row(snapshot, merchant_id).drop("bad")
        assert got.schema == want.schema and got.height == 1
        assert _same(got, want) == [], merchant_id
    assert snapshot.equals(before)  # the snapshot passed in is not modified


def test_a_correction_changes_that_merchant_as_a_full_rebuild_would(small_market, validated_market, snapshot, tmp_path):
    before = snapshot.clone()
    as_of = snapshot["as_of"][0]
    picks = _picks(validated_market, as_of)
    folder = tmp_path / "corrections"
    c, p, a = picks["complaint"], picks["penalty"], picks["arrears"]
    append_correction(folder, table="complaints", record_id=c["complaint_id"], action="delete", decided_by="steward-1")
    append_correction(
        folder,
        table="public_records",
        record_id=p["record_id"],
        action="update",
        decided_by="steward-1",
        corrected_fields={"removed_on": p["published_on"].isoformat()},  # credit repair the day it was published
    )
    append_correction(
        folder,
        table="loan_performance",
        record_id=f"{a['loan_id']}|{a['reported_on'].isoformat()}",
        action="delete",
        decided_by="steward-1",
    )
    rebuilt_dir = tmp_path / "validated"
    validate_dir(small_market, rebuilt_dir, corrections=folder)
    rebuilt = compute_features(RawTables.scan(rebuilt_dir), [as_of])
    perf = pl.read_parquet(validated_market / "loan_performance.parquet").filter(
        (pl.col("merchant_id") == a["merchant_id"]) & (pl.col("reported_on") < as_of)
    )
    worst_left = perf.filter(~((pl.col("loan_id") == a["loan_id"]) & (pl.col("reported_on") == a["reported_on"])))

    changed = {
        c["merchant_id"]: {"complaints_90d": -1, "complaints_365d": -1},
        p["merchant_id"]: {"penalties_365d": -1, "penalties_ever": 0},
        a["merchant_id"]: {"worst_dpd_ever": worst_left["days_past_due"].max() - a["days_past_due"]},
    }
    for merchant_id, deltas in changed.items():
        # its tables are what validate --corrections keeps of them; re-applying those corrections changes nothing
        assert _tables_differ(merchant_tables(validated_market, merchant_id, folder), rebuilt_dir, merchant_id) == []
        assert _tables_differ(merchant_tables(rebuilt_dir, merchant_id, folder), rebuilt_dir, merchant_id) == []
        got = rescore_features(validated_market, folder, snapshot, merchant_id)
        old = _row(snapshot, merchant_id)
        for column, delta in deltas.items():
            assert got[column][0] - old[column][0] == delta, (merchant_id, column)
        own = [c for c in got.columns if c not in MARKET_LEVEL]
        assert _same(got, _row(rebuilt, merchant_id), own) == [], merchant_id  # what a full rebuild gives
        # peer percentiles: the snapshot's ranking with this merchant's new values in place of its old ones
        sources = sorted(set(PEER_COLUMNS.values()))
        replaced = snapshot.with_columns(
            pl.when(pl.col("merchant_id") == merchant_id).then(pl.lit(got[s][0])).otherwise(pl.col(s)).alias(s)
            for s in sources
        )
        ranked = _row(peer_features(replaced.lazy()).collect(), merchant_id)
        assert _same(got, ranked, list(PEER_COLUMNS)) == [], merchant_id
        assert _same(got, old, list(PEER_CONDITIONS)) == [], merchant_id  # the market as the snapshot holds it
        again = rescore_features(rebuilt_dir, folder, snapshot, merchant_id)
        assert _same(again, got) == [], merchant_id
    assert snapshot.equals(before)


def _tables_differ(tables: RawTables, validated, merchant_id: str) -> list[str]:
    """Tables whose rows differ from ``merchant_id``'s rows in the ``validated`` folder."""
    differ = []
    for name in tables.table_names():
        got = getattr(tables, name).collect()
        want = pl.read_parquet(validated / f"{name}.parquet").filter(pl.col("merchant_id") == merchant_id)
        if not got.sort(got.columns[:2]).equals(want.sort(want.columns[:2])):
            differ.append(name)
    return differ


def test_merchant_tables_without_corrections_are_its_validated_rows(validated_market):
    merchant_id = pl.read_parquet(validated_market / "merchants.parquet")["merchant_id"][7]
    assert _tables_differ(merchant_tables(validated_market, merchant_id, None), validated_market, merchant_id) == []


def test_an_update_can_repair_a_quarantined_record(small_market, validated_market, tmp_path):
    records = pl.read_parquet(validated_market / "public_records.parquet").sort("record_id")
    record = records.row(0, named=True)
    first, second = tmp_path / "first", tmp_path / "second"
    broken = {"removed_on": (record["published_on"] - timedelta(days=10)).isoformat()}  # before it was published
    t0 = datetime(2025, 1, 1).astimezone()
    for folder in (first, second):
        append_correction(
            folder,
            table="public_records",
            record_id=record["record_id"],
            action="update",
            decided_by="steward-1",
            corrected_fields=broken,
            decided_at=t0,
        )
    append_correction(
        second,
        table="public_records",
        record_id=record["record_id"],
        action="update",
        decided_by="steward-1",
        corrected_fields={"removed_on": None},
        decided_at=t0 + timedelta(days=1),
    )
    validate_dir(small_market, tmp_path / "v1", corrections=first)
    assert record["record_id"] not in pl.read_parquet(tmp_path / "v1" / "public_records.parquet")["record_id"]
    validate_dir(small_market, tmp_path / "v2", corrections=second)
    want = pl.read_parquet(tmp_path / "v2" / "public_records.parquet").filter(
        pl.col("merchant_id") == record["merchant_id"]
    )
    got = merchant_tables(tmp_path / "v1", record["merchant_id"], second).public_records.collect()
    assert got.sort("record_id").equals(want.sort("record_id"))


def test_unknown_or_deleted_merchant_is_a_clear_error(validated_market, snapshot, tmp_path):
    with pytest.raises(RescoreError, match="not in the snapshot"):
        rescore_features(validated_market, None, snapshot, "M99999999")
    merchant_id = snapshot["merchant_id"][0]
    append_correction(tmp_path, table="merchants", record_id=merchant_id, action="delete", decided_by="steward-1")
    with pytest.raises(RescoreError, match="no valid record"):
        rescore_features(validated_market, tmp_path, snapshot, merchant_id)
    assert all(
        getattr(merchant_tables(validated_market, merchant_id, tmp_path), n).collect().is_empty()
        for n in ("merchants", "transactions")
    )


def test_a_merchant_moved_to_another_province_is_ranked_among_its_new_peers(
    small_market, validated_market, snapshot, tmp_path
):
    merchant_id = snapshot.sort("merchant_id")["merchant_id"][0]
    old = _row(snapshot, merchant_id)
    regions = pl.read_parquet(validated_market / "merchants.parquet").select(
        "merchant_id", "region_code", province=pl.col("region_code").str.slice(0, 2)
    )
    elsewhere = regions.filter(pl.col("province") != old["province"][0]).sort("merchant_id").row(0, named=True)
    append_correction(
        tmp_path / "corrections",
        table="merchants",
        record_id=merchant_id,
        action="update",
        decided_by="steward-1",
        corrected_fields={"region_code": elsewhere["region_code"]},
    )
    got = rescore_features(validated_market, tmp_path / "corrections", snapshot, merchant_id)
    assert got["province"][0] == elsewhere["province"] and got["sector"][0] == old["sector"][0]
    new_peers = snapshot.filter(pl.col("province") == elsewhere["province"]).head(1)
    conditions = [c for c in PEER_CONDITIONS if c.startswith("province_")]
    assert conditions and _same(got, new_peers, conditions) == []
    assert _same(got, old, [c for c in PEER_CONDITIONS if c.startswith("sector_")]) == []
    validate_dir(small_market, tmp_path / "validated", corrections=tmp_path / "corrections")
    rebuilt = compute_features(RawTables.scan(tmp_path / "validated"), [snapshot["as_of"][0]])
    own = [c for c in got.columns if c not in MARKET_LEVEL]
    assert _same(got, _row(rebuilt, merchant_id), own) == []
    assert (
        _tables_differ(
            merchant_tables(validated_market, merchant_id, tmp_path / "corrections"),
            tmp_path / "validated",
            merchant_id,
        )
        == []
    )
