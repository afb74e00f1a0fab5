"""``lifecredit simulate`` writes the six raw tables and the truth, with every documented option."""

from __future__ import annotations

import polars as pl
from typer.testing import CliRunner

from lifecredit.cli import app

TABLES = ("merchants", "transactions", "complaints", "loans", "loan_performance", "public_records", "truth")


def test_simulate_command_writes_every_table(tmp_path):
    out = tmp_path / "raw"
    result = CliRunner().invoke(app, ["simulate", "--merchants", "60", "--months", "4", "--seed", "9",
                                      "--out", str(out), "--volume-scale", "0.05"])
    assert result.exit_code == 0, result.output
    for name in TABLES:
        assert (out / f"{name}.parquet").is_file()
        assert name in result.output
    assert pl.read_parquet(out / "truth.parquet").height == 60 * 4


def test_simulate_command_with_defects_and_downturn(tmp_path):
    out = tmp_path / "raw"
    result = CliRunner().invoke(app, ["simulate", "--merchants", "80", "--months", "3", "--out", str(out),
                                      "--defect-rate", "0.05", "--scenario", "downturn", "--volume-scale", "0.05",
                                      "--start", "2024-06-01"])
    assert result.exit_code == 0, result.output
    tx = pl.read_parquet(out / "transactions.parquet")
    assert tx.schema["ts"] == pl.String
    assert tx["ts"].str.slice(0, 7).min() == "2024-06"


def test_simulate_command_rejects_an_unknown_scenario(tmp_path):
    result = CliRunner().invoke(app, ["simulate", "--merchants", "5", "--months", "1", "--out", str(tmp_path),
                                      "--scenario", "boom"])
    assert result.exit_code != 0
