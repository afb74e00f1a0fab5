"""`lifecredit features --engine dask` on a local Dask cluster of 2 workers: the local engine's outputs, row for row."""

from __future__ import annotations

import json
import socket

import polars as pl
import pytest
from typer.testing import CliRunner

from features import build_features
from features.pipeline import PEER_COLUMNS
from lifecredit.cli import app

pytestmark = pytest.mark.slow  # the fast path (-m "not slow") skips it; the full suite runs it


@pytest.fixture(scope="module")
def cluster():
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0") as c:
        yield c


@pytest.fixture(scope="module")
def both(validated_market, cluster, tmp_path_factory):
    """The small market's features from the local engine and from Dask (through the CLI)."""
    local, dask = tmp_path_factory.mktemp("local"), tmp_path_factory.mktemp("dask")
    build_features(validated_market, local)
    res = CliRunner().invoke(
        app,
        [
            "features",
            "--raw",
            str(validated_market),
            "--out",
            str(dask),
            "--monthly",
            "--engine",
            "dask",
            "--scheduler",
            cluster.scheduler_address,
        ],
    )
    assert res.exit_code == 0, res.output
    return local, dask


@pytest.mark.parametrize("name", ["panel.parquet", "latest.parquet"])
def test_dask_output_equals_local_row_for_row(both, name):
    local, dask = both
    a = pl.read_parquet(local / name).sort("merchant_id", "as_of")
    b = pl.read_parquet(dask / name).sort("merchant_id", "as_of")
    assert a.schema == b.schema
    assert a.height == b.height > 0
    assert a.equals(b, null_equal=True)
    # peer percentiles rank across partitions: they must be there, and vary
    for col in PEER_COLUMNS:
        assert b[col].drop_nulls().n_unique() > 10


def test_dask_metadata_equals_local(both):
    local, dask = both
    a, b = (json.loads((d / "metadata.json").read_text(encoding="utf-8")) for d in both)
    a.pop("built_at"), b.pop("built_at")
    assert a == b
    assert sorted(p.name for p in dask.iterdir()) == sorted(p.name for p in local.iterdir())  # partitions cleaned up


def test_scheduler_needs_the_dask_engine(validated_market, tmp_path):
    res = CliRunner().invoke(
        app, ["features", "--raw", str(validated_market), "--out", str(tmp_path), "--scheduler", "tcp://127.0.0.1:8786"]
    )
    assert res.exit_code == 2 and "--engine dask" in res.output
    assert not (tmp_path / "panel.parquet").exists()


def test_unreachable_scheduler_is_a_clear_error(validated_market, tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    res = CliRunner().invoke(
        app,
        [
            "features",
            "--raw",
            str(validated_market),
            "--out",
            str(tmp_path),
            "--engine",
            "dask",
            "--scheduler",
            f"tcp://127.0.0.1:{port}",
        ],
    )
    assert res.exit_code == 2
    assert "cannot reach the Dask scheduler" in res.stderr and f"127.0.0.1:{port}" in res.stderr
    assert not (tmp_path / "panel.parquet").exists()
