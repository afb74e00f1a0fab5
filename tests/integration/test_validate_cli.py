"""`lifecredit validate`: exit 0 with a summary when only rows are rejected, exit 2 with a clear message on a table failure."""

from __future__ import annotations

import json

import polars as pl
from typer.testing import CliRunner

from data_contracts import TABLES
from lifecredit.cli import app
from sample_rows import sample_frame


def _raw_csv(raw, **overrides):
    raw.mkdir(parents=True, exist_ok=True)
    for table in TABLES:
        overrides.get(table, sample_frame(table)).write_csv(raw / f"{table}.csv")
    return raw


def _flat(text: str) -> str:
    return " ".join(text.split())


def test_validate_with_rejected_rows_exits_zero_and_prints_the_summary(tmp_path):
    tx = sample_frame("transactions", {}, {"txn_id": "2", "amount_fen": "-3"}).with_columns(note=pl.lit("x"))
    raw, out = _raw_csv(tmp_path / "raw", transactions=tx), tmp_path / "out"
    result = CliRunner().invoke(app, ["validate", "--raw", str(raw), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "transactions" in result.output and "amount_fen:range: 1" in _flat(result.output)
    assert "transactions: columns not in the contract, left out of valid output: note" in _flat(result.output)
    summary = json.loads((out / "validation_summary.json").read_text())
    assert summary["tables"]["transactions"]["rejected_by_rule"] == {"amount_fen:range": 1}
    assert pl.read_parquet(out / "quarantine" / "transactions.parquet").height == 1


def test_missing_column_exits_nonzero_naming_file_and_column(tmp_path):
    raw = _raw_csv(tmp_path / "raw", loans=sample_frame("loans").drop("lender_code"))
    result = CliRunner().invoke(app, ["validate", "--raw", str(raw), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    message = _flat(result.output)
    assert "loans.csv" in message and "column lender_code" in message and "expected columns loan_id" in message
    assert not (tmp_path / "out").exists()


def test_gbk_csv_exits_nonzero_naming_the_encoding(tmp_path):
    raw = _raw_csv(tmp_path / "raw", merchants=sample_frame("merchants", {"name": "老王洗衣店"}))
    (raw / "merchants.csv").write_bytes((raw / "merchants.csv").read_text(encoding="utf-8").encode("gbk"))
    result = CliRunner().invoke(app, ["validate", "--raw", str(raw), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    message = _flat(result.output)
    assert (
        "merchants.csv" in message and "expected UTF-8 text, found GBK-encoded text" in message and "iconv" in message
    )
