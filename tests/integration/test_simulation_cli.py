"""``lifecredit simulate`` writes the six raw tables and the truth, with every documented option."""

from __future__ import annotations

from datetime import date

import polars as pl
from typer.testing import CliRunner

from lifecredit.cli import app

TABLES = ("merchants", "transactions", "complaints", "loans", "loan_performance", "public_records", "truth")


def test_simulate_command_writes_every_table(tmp_path):
    out = tmp_path / "raw"
    result = CliRunner().invoke(
        app,
        ["simulate", "--merchants", "60", "--months", "4", "--seed", "9", "--out", str(out), "--volume-scale", "0.05"],
    )
    assert result.exit_code == 0, result.output
    for name in TABLES:
        assert (out / f"{name}.parquet").is_file()
        assert name in result.output
    truth = pl.read_parquet(out / "truth.parquet")
    registered = pl.read_parquet(out / "merchants.parquet")["registered_on"]
    panel = [date(2023, 1, 1), date(2023, 2, 1), date(2023, 3, 1), date(2023, 4, 1), date(2023, 5, 1)]
    assert sorted(truth["as_of"].unique()) == panel  # the 4 panel months and the latest snapshot
    assert truth.height == sum(int((registered < a).sum()) for a in panel)
    tx = pl.read_parquet(out / "transactions.parquet")
    assert tx["ts"].dt.date().min() == date(2022, 1, 1) and tx["ts"].dt.date().max() == date(2023, 4, 30)


def test_simulate_command_with_defects_and_downturn(tmp_path):
    out = tmp_path / "raw"
    result = CliRunner().invoke(
        app,
        [
            "simulate",
            "--merchants",
            "80",
            "--months",
            "3",
            "--out",
            str(out),
            "--defect-rate",
            "0.05",
            "--scenario",
            "downturn",
            "--volume-scale",
            "0.05",
            "--start",
            "2024-06-01",
        ],
    )
    assert result.exit_code == 0, result.output
    tx = pl.read_parquet(out / "transactions.parquet")
    assert tx.schema["ts"] == pl.String
    good = tx.filter(pl.col("ts").str.contains(r"^\d{4}-\d{2}-\d{2}T"))["ts"].str.slice(0, 7)
    assert good.min() == "2023-06" and good.max() == "2024-08"  # 12 months of history, then the panel


def test_simulate_command_rejects_an_unknown_scenario(tmp_path):
    result = CliRunner().invoke(
        app, ["simulate", "--merchants", "5", "--months", "1", "--out", str(tmp_path), "--scenario", "boom"]
    )
    assert result.exit_code != 0


def test_simulate_help_explains_history_and_panel():
    result = CliRunner().invoke(app, ["simulate", "--help"], terminal_width=200)
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    assert "12 months" in text and "panel" in text and "entrants" in text
