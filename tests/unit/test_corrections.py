"""The data steward's corrections: applied by validate, raw untouched, nothing lost, a rebuild reproduces them."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import polars as pl
import pytest

from data_contracts import REASONS, validate_dir
from data_contracts.corrections import DELETED_RULE, append_correction


@pytest.fixture()
def raw(small_market):
    return small_market  # the session's simulated market: this test checks it is left as received


def _hashes(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def test_delete_and_update_apply_on_validation_and_raw_stays_as_received(raw, tmp_path):
    merchants = pl.read_parquet(raw / "merchants.parquet")["merchant_id"]
    complaints = pl.read_parquet(raw / "complaints.parquet").filter(pl.col("merchant_id").is_in(merchants.implode()))
    records = pl.read_parquet(raw / "public_records.parquet").filter(pl.col("merchant_id").is_in(merchants.implode()))
    perf = pl.read_parquet(raw / "loan_performance.parquet")
    gone, record = complaints["complaint_id"][0], records["record_id"][0]
    perf_key = f"{perf['loan_id'][0]}|{perf['reported_on'][0].isoformat()}"
    before = _hashes(raw)
    folder = tmp_path / "corrections"
    append_correction(
        folder, table="complaints", record_id=gone, action="delete", decided_by="steward-1", objection_id="O1"
    )
    append_correction(
        folder,
        table="public_records",
        record_id=record,
        action="update",
        decided_by="steward-1",
        corrected_fields={"removed_on": (records["published_on"][0] + timedelta(days=10)).isoformat()},
    )
    append_correction(
        folder,
        table="loan_performance",
        record_id=perf_key,
        action="update",
        decided_by="steward-1",
        corrected_fields={"days_past_due": 0},
    )
    append_correction(folder, table="complaints", record_id="C0000099999", action="delete", decided_by="steward-1")
    append_correction(
        folder,
        table="complaints",
        record_id=gone,
        action="update",
        decided_by="steward-1",
        corrected_fields={"no_such_column": 1},
    )

    summary = validate_dir(raw, tmp_path / "valid", corrections=folder)
    assert _hashes(raw) == before  # raw stays as received
    valid = pl.read_parquet(tmp_path / "valid" / "complaints.parquet")
    quarantine = pl.read_parquet(tmp_path / "valid" / "quarantine" / "complaints.parquet")
    assert gone not in valid["complaint_id"].to_list()
    assert DELETED_RULE in quarantine.filter(pl.col("complaint_id") == gone)[REASONS][0]
    entry = summary["tables"]["complaints"]
    assert entry["valid"] + entry["rejected"] == entry["rows_in"]  # nothing lost
    assert entry["corrections"]["records_not_found"] == ["C0000099999"]
    updated = pl.read_parquet(tmp_path / "valid" / "public_records.parquet").filter(pl.col("record_id") == record)
    assert updated["removed_on"].to_list() == [records["published_on"][0] + timedelta(days=10)]
    lp = pl.read_parquet(tmp_path / "valid" / "loan_performance.parquet")
    assert lp.filter((pl.col("loan_id") == perf["loan_id"][0]) & (pl.col("reported_on") == perf["reported_on"][0]))[
        "days_past_due"
    ].to_list() == [0]
    assert summary["corrections"]["applied"] == 4 and summary["corrections"]["rejected"] == 1
    rejected = pl.read_parquet(tmp_path / "valid" / "quarantine" / "corrections.parquet")
    assert rejected[REASONS].to_list() == [["corrected_fields:known_non_key_columns"]]

    again = validate_dir(raw, tmp_path / "valid2", corrections=folder)  # a rebuild reproduces the corrected state
    for name in ("complaints", "public_records", "loan_performance"):
        assert pl.read_parquet(tmp_path / "valid2" / f"{name}.parquet").equals(
            pl.read_parquet(tmp_path / "valid" / f"{name}.parquet")
        )
    assert again["tables"]["complaints"]["corrections"] == entry["corrections"]


def test_a_correction_that_breaks_its_contract_is_refused(tmp_path):
    with pytest.raises(ValueError, match="table"):
        append_correction(tmp_path, table="no_such_table", record_id="X", action="delete", decided_by="steward-1")
    assert not list(tmp_path.iterdir())
