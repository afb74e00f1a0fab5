"""validate_dir on tiny raw folders: CSV and Parquet, table failures, atomic outputs, the summary."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from data_contracts import REASONS, TABLES, TableError, load_contract, validate_dir, validate_table
from sample_rows import MERCHANT_ID, sample_frame


def _typed(table: str, frame: pl.DataFrame) -> pl.DataFrame:
    valid, rejected, _ = validate_table(frame, load_contract(table), [MERCHANT_ID])
    assert rejected.height == 0
    return valid


def write_raw(raw: Path, fmt: str = "parquet", **overrides: pl.DataFrame) -> Path:
    """A raw folder with the sample row of every table (Parquet typed, or CSV text)."""
    raw.mkdir(parents=True, exist_ok=True)
    for table in TABLES:
        frame = overrides.get(table, sample_frame(table))
        if fmt == "csv":
            frame.write_csv(raw / f"{table}.csv")
        else:
            (frame if table in overrides else _typed(table, frame)).write_parquet(raw / f"{table}.parquet")
    return raw


def test_clean_parquet_folder_validates_and_valid_output_matches_input(tmp_path):
    raw = write_raw(tmp_path / "raw")
    pl.DataFrame({"pd": [0.1]}).write_parquet(raw / "truth.parquet")
    summary = validate_dir(raw, tmp_path / "out")
    for table in TABLES:
        entry = summary["tables"][table]
        assert (entry["rows_in"], entry["valid"], entry["rejected"], entry["rejected_by_rule"]) == (1, 1, 0, {})
        assert entry["contract_version"] == load_contract(table).version and entry["input"]["bytes"] > 0
        assert pl.read_parquet(tmp_path / "out" / f"{table}.parquet").equals(pl.read_parquet(raw / f"{table}.parquet"))
        quarantine = pl.read_parquet(tmp_path / "out" / "quarantine" / f"{table}.parquet")
        assert quarantine.height == 0 and quarantine.columns[-1] == REASONS
    assert summary["ignored_files"] == ["truth.parquet"]
    assert json.loads((tmp_path / "out" / "validation_summary.json").read_text()) == summary
    assert not list((tmp_path / "out").rglob(".*.tmp"))


def test_csv_folder_with_bad_rows_quarantines_them_and_counts_by_rule(tmp_path):
    transactions = sample_frame(
        "transactions",
        {},
        {"txn_id": "2", "ts": "2024-03-05 08:00:00"},
        {"txn_id": "3", "merchant_id": "M00000002", "amount_fen": "12.5"},
        {"txn_id": "3"},
    )
    merchants = sample_frame("merchants", {}, {"merchant_id": "M00000002", "sector": "mining"})
    raw = write_raw(tmp_path / "raw", "csv", transactions=transactions, merchants=merchants)
    calls = []
    summary = validate_dir(raw, tmp_path / "out", progress=lambda done, total: calls.append((done, total)))
    assert calls[0] == (0, 6) and calls[-1] == (6, 6)
    tx = summary["tables"]["transactions"]
    assert (tx["rows_in"], tx["valid"], tx["rejected"]) == (4, 1, 3)
    # M00000002 failed its own rules, so it is not a valid merchant to point at
    assert tx["rejected_by_rule"] == {
        "ts:timezone": 1,
        "merchant_id:foreign_key": 1,
        "amount_fen:type": 1,
        "txn_id:primary_key_unique": 1,
    }
    quarantine = pl.read_parquet(tmp_path / "out" / "quarantine" / "transactions.parquet")
    assert quarantine.drop(REASONS).equals(transactions[1:])  # raw text, in input order
    valid = pl.read_parquet(tmp_path / "out" / "transactions.parquet")
    assert valid.schema == load_contract("transactions").polars_schema() and valid["txn_id"].to_list() == [1]
    assert summary["tables"]["merchants"]["rejected_by_rule"] == {"sector:allowed_values": 1}


def test_extra_columns_are_reported_and_dropped_from_valid_output(tmp_path):
    loans = _typed("loans", sample_frame("loans")).with_columns(branch=pl.lit("Hangzhou"))
    summary = validate_dir(write_raw(tmp_path / "raw", loans=loans), tmp_path / "out")
    assert summary["tables"]["loans"]["ignored_columns"] == ["branch"]
    assert "branch" not in pl.read_parquet(tmp_path / "out" / "loans.parquet").columns


def test_gbk_csv_stops_the_run_naming_the_encoding_and_writes_nothing(tmp_path):
    raw = write_raw(tmp_path / "raw", "csv")
    text = (raw / "merchants.csv").read_text(encoding="utf-8").replace("Lucky Noodle House", "福满楼面馆")
    (raw / "merchants.csv").write_bytes(text.encode("gbk"))
    out = tmp_path / "out"
    with pytest.raises(TableError) as info:
        validate_dir(raw, out)
    err = info.value
    assert err.file == raw / "merchants.csv" and err.expected == "UTF-8 text" and "GBK" in err.found
    assert "iconv -f GBK -t UTF-8" in str(err)
    assert not out.exists()


def test_damaged_utf8_is_not_mistaken_for_gbk(tmp_path):
    raw = write_raw(tmp_path / "raw", "csv")
    text = (raw / "loans.csv").read_text(encoding="utf-8").replace("term_loan", "定期贷款")
    (raw / "loans.csv").write_bytes(text.encode("utf-8").replace(b"B001", b"B\xff01"))
    with pytest.raises(TableError, match="not valid UTF-8"):
        validate_dir(raw, tmp_path / "out")


def test_csv_missing_a_column_stops_the_run_naming_file_column_expected_found(tmp_path):
    raw = write_raw(tmp_path / "raw", "csv", complaints=sample_frame("complaints").drop("severity"))
    with pytest.raises(TableError) as info:
        validate_dir(raw, tmp_path / "out")
    err = info.value
    assert err.file == raw / "complaints.csv" and err.column == "severity"
    message = str(err)
    assert "complaints.csv" in message and "severity" in message
    assert "columns complaint_id, merchant_id" in message and "found columns complaint_id" in message


def test_table_failure_in_a_later_table_leaves_earlier_outputs_untouched(tmp_path):
    out = tmp_path / "out"
    validate_dir(write_raw(tmp_path / "raw"), out)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    bad = _typed("public_records", sample_frame("public_records")).with_columns(pl.lit(True).alias("penalty_fen"))
    raw2 = write_raw(tmp_path / "raw2", public_records=bad)
    with pytest.raises(TableError, match="penalty_fen"):
        validate_dir(raw2, out)
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_failure_while_reading_rows_removes_temporary_outputs(tmp_path):
    raw = write_raw(tmp_path / "raw", "csv")
    with open(raw / "public_records.csv", "a", encoding="utf-8") as f:
        f.write("P0000000002,M00000001,administrative_penalty,2024-02-01,5,surplus,cells\n")
    with pytest.raises(TableError) as info:
        validate_dir(raw, tmp_path / "out")
    assert info.value.file == raw / "public_records.csv"
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("problem", ["missing", "both", "corrupt", "empty_csv"])
def test_unreadable_or_missing_files_are_table_failures(tmp_path, problem):
    raw = write_raw(tmp_path / "raw")
    if problem == "missing":
        (raw / "loans.parquet").unlink()
    elif problem == "both":
        sample_frame("loans").write_csv(raw / "loans.csv")
    elif problem == "corrupt":
        (raw / "loans.parquet").write_bytes(b"PAR1 this is not parquet")
    else:
        (raw / "loans.parquet").unlink()
        (raw / "loans.csv").write_bytes(b"")
    with pytest.raises(TableError) as info:
        validate_dir(raw, tmp_path / "out")
    assert "loans" in str(info.value.file) and "What to do" in str(info.value)


def test_naive_timestamp_parquet_is_a_table_failure(tmp_path):
    tx = _typed("transactions", sample_frame("transactions")).with_columns(pl.col("ts").dt.replace_time_zone(None))
    with pytest.raises(TableError) as info:
        validate_dir(write_raw(tmp_path / "raw", transactions=tx), tmp_path / "out")
    assert info.value.column == "ts" and "naive" in info.value.found


def test_rerun_replaces_previous_outputs(tmp_path):
    out = tmp_path / "out"
    validate_dir(write_raw(tmp_path / "raw"), out)
    tx = sample_frame("transactions", {}, {"txn_id": "2"}, {"txn_id": "3", "channel": "cash"})
    summary = validate_dir(write_raw(tmp_path / "raw2", "csv", transactions=tx), out)
    assert summary["tables"]["transactions"]["valid"] == 2
    assert pl.read_parquet(out / "transactions.parquet").height == 2
    assert pl.read_parquet(out / "quarantine" / "transactions.parquet")[REASONS].to_list() == [
        ["channel:allowed_values"]
    ]


def test_folder_of_parquet_parts_is_one_table(tmp_path):
    raw = write_raw(tmp_path / "raw")
    (raw / "transactions.parquet").unlink()
    parts = raw / "transactions.parquet"
    parts.mkdir()
    tx = _typed("transactions", sample_frame("transactions", {}, {"txn_id": "2"}))
    tx[:1].write_parquet(parts / "part-0.parquet")
    tx.write_parquet(parts / "part-1.parquet")  # repeats txn_id 1
    summary = validate_dir(raw, tmp_path / "out")
    entry = summary["tables"]["transactions"]
    assert (entry["rows_in"], entry["valid"], entry["rejected_by_rule"]) == (3, 2, {"txn_id:primary_key_unique": 1})


def test_output_folder_must_not_be_the_raw_folder(tmp_path):
    raw = write_raw(tmp_path / "raw")
    with pytest.raises(TableError, match="raw folder"):
        validate_dir(raw, raw)


def test_a_column_added_later_may_be_absent_and_reads_as_null(tmp_path):
    """public_records.removed_on (contract 1.1.0, mayBeAbsent): an older delivery without it still validates."""
    older = sample_frame("public_records").drop("removed_on")
    valid, rejected, counts = validate_table(older, load_contract("public_records"), [MERCHANT_ID])
    assert rejected.height == 0 and valid.height == 1
    assert valid["removed_on"].to_list() == [None] and valid.schema == load_contract("public_records").polars_schema()
    with pytest.raises(TableError, match="penalty_fen"):  # a column not marked mayBeAbsent is still required
        validate_table(older.drop("penalty_fen"), load_contract("public_records"), [MERCHANT_ID])
