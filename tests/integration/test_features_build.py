"""Feature build end to end on the small simulated, validated market: CLI, outputs, metadata, leakage guard."""

from __future__ import annotations

import json
import shutil
from datetime import date

import polars as pl
import pytest
from typer.testing import CliRunner

from features import build_features, load_catalog
from lifecredit.cli import app

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def built(validated_market, tmp_path_factory):
    out = tmp_path_factory.mktemp("features")
    meta = build_features(validated_market, out)
    return out, meta


def test_outputs_follow_the_interface(built):
    out, meta = built
    cat = load_catalog()
    panel, latest = pl.read_parquet(out / "panel.parquet"), pl.read_parquet(out / "latest.parquet")
    expected = ["merchant_id", "as_of", "bad", *cat.names]
    assert panel.columns == expected and latest.columns == expected
    assert panel.schema["bad"] == pl.Int8 and panel.schema["as_of"] == pl.Date
    assert {n: panel.schema[n] for n in cat.names} == cat.schema()
    assert latest["as_of"].n_unique() == 1 and latest["bad"].null_count() == latest.height
    assert latest["as_of"][0] == panel["as_of"].max() == date.fromisoformat(meta["as_of"]["last"])
    assert latest["merchant_id"].is_unique().all()
    assert panel.select("merchant_id", "as_of").is_unique().all()
    assert set(panel["bad"].drop_nulls().unique()) == {0, 1}
    from features.catalog import CATALOG_PATH

    assert (out / "catalog.yaml").read_bytes() == CATALOG_PATH.read_bytes()


def test_metadata(built, validated_market):
    out, meta = built
    on_disk = json.loads((out / "metadata.json").read_text(encoding="utf-8"))
    assert on_disk == meta
    assert meta["feature_set"]["name"] == "lifecredit-merchant-features" and meta["feature_set"]["version"] == "1.4.0"
    panel = pl.read_parquet(out / "panel.parquet")
    assert meta["rows"]["panel"] == panel.height
    assert meta["labels"]["labelled"] == panel["bad"].is_not_null().sum()
    assert meta["labels"]["bad"] == panel["bad"].sum()
    assert meta["excluded_in_default"] > 0
    assert set(meta["input_hashes"]) == {
        "merchants",
        "transactions",
        "complaints",
        "loans",
        "loan_performance",
        "public_records",
    }
    assert all(len(h) == 64 for h in meta["input_hashes"].values())


def test_build_needs_no_truth(validated_market, tmp_path):
    """Leakage guard (dynamic half): the build works with truth.parquet absent and gives the same panel."""
    raw = tmp_path / "raw"
    raw.mkdir()
    for p in validated_market.glob("*.parquet"):
        if p.name != "truth.parquet":
            shutil.copy(p, raw / p.name)
    assert not (raw / "truth.parquet").exists()
    meta = build_features(raw, tmp_path / "out", as_of=[date(2024, 6, 1), date(2024, 7, 1)])
    assert meta["rows"]["latest"] > 0


def test_cli_features(validated_market, tmp_path):
    out = tmp_path / "features"
    result = CliRunner().invoke(
        app,
        [
            "features",
            "--raw",
            str(validated_market),
            "--out",
            str(out),
            "--as-of",
            "2024-03-01",
            "--as-of",
            "2024-09-15",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "panel.parquet" in result.output and "latest.parquet" in result.output
    panel = pl.read_parquet(out / "panel.parquet")
    assert sorted(panel["as_of"].unique()) == [date(2024, 3, 1), date(2024, 9, 15)]
    bad = CliRunner().invoke(app, ["features", "--raw", str(tmp_path / "nowhere"), "--out", str(out)])
    assert bad.exit_code == 2
    wrong = CliRunner().invoke(app, ["features", "--raw", str(validated_market), "--as-of", "2024-13-01"])
    assert wrong.exit_code != 0


def test_cli_defaults_to_settings_paths(validated_market, tmp_path):
    from core.settings import get_settings

    settings = get_settings()
    shutil.copytree(validated_market, settings.validated_dir)
    result = CliRunner().invoke(app, ["features", "--monthly"])
    assert result.exit_code == 0, result.output
    assert (settings.features_dir / "panel.parquet").exists()


def test_outputs_equal_the_full_feature_rows(built, validated_market):
    """The build computes full rows (and concentration) only for the spine and the latest snapshot:
    those rows equal ``compute_features`` over the whole population."""
    from features import RawTables, compute_features

    out, meta = built
    cat = load_catalog()
    panel, latest = pl.read_parquet(out / "panel.parquet"), pl.read_parquet(out / "latest.parquet")
    mid = sorted(panel["as_of"].unique())[len(panel["as_of"].unique()) // 2]
    full = compute_features(RawTables.scan(validated_market), [mid, latest["as_of"][0]])
    for got in (panel.filter(pl.col("as_of") == mid), latest):
        want = got.select("merchant_id", "as_of").join(
            full, on=["merchant_id", "as_of"], how="left", maintain_order="left"
        )
        assert got.height > 0
        assert got.select(cat.names).equals(want.select(cat.names))
