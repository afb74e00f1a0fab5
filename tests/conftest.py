"""Shared fixtures: one small simulated market per test session, validated once.

Tests never touch the real data/ or mlruns/ folders: everything lives under pytest's tmp dirs.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

SMALL_MARKET = dict(merchants=400, months=30, seed=11, volume_scale=0.05, start=date(2023, 1, 1))


@pytest.fixture(autouse=True)
def _isolated_settings(tmp_path, monkeypatch):
    """Point every LIFECREDIT_* path at a per-test folder and drop cached settings."""
    from core.settings import get_settings

    monkeypatch.setenv("LIFECREDIT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("LIFECREDIT_MLRUNS_DIR", str(tmp_path / "mlruns"))
    monkeypatch.setenv("LIFECREDIT_VAR_DIR", str(tmp_path / "var"))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def small_market(tmp_path_factory) -> Path:
    """Raw tables of a small clean market (400 merchants x 30 months, thinned transactions)."""
    from simulation import simulate_market

    out = tmp_path_factory.mktemp("raw")
    simulate_market(out, **SMALL_MARKET)
    return out


@pytest.fixture(scope="session")
def validated_market(small_market, tmp_path_factory) -> Path:
    """The small market after contract validation (valid rows only, quarantine beside)."""
    from data_contracts import validate_dir

    out = tmp_path_factory.mktemp("validated")
    validate_dir(small_market, out)
    return out


@pytest.fixture(scope="session")
def served_champion(validated_market, tmp_path_factory) -> dict:
    """A champion and its feature snapshot for the serving tests, in a session-wide temporary store.

    Features of the small market, one LightGBM model trained and promoted (forced: the small
    market's test window is too thin for the gate to mean much) in a fresh MLflow store.
    Returns the folders as LIFECREDIT_* values: ``{"env": {...}, "features": Path, "version": str}``.
    """
    from core.settings import get_settings
    from features import build_features

    root = tmp_path_factory.mktemp("served")
    features = root / "features"
    build_features(validated_market, features)
    (root / "data").mkdir()
    (root / "data" / "validated").symlink_to(validated_market)  # a server reads a merchant's own records there
    env = {
        "LIFECREDIT_DATA_DIR": str(root / "data"),
        "LIFECREDIT_MLRUNS_DIR": str(root / "mlruns"),
        "LIFECREDIT_SNAPSHOT_DIR": str(features),
    }
    with pytest.MonkeyPatch.context() as mp:
        for k, v in {
            **env,
            "LIFECREDIT_VAR_DIR": str(root / "var"),
            "OMP_WAIT_POLICY": "PASSIVE",
            "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
        }.items():
            mp.setenv(k, v)
        get_settings.cache_clear()
        from training.registry import promote
        from training.train import train_from_features

        result = train_from_features(features, settings=get_settings(), seed=7)
        promote(result["version"], get_settings(), force=True, reason="serving tests")
    get_settings.cache_clear()
    return {"env": env, "features": features, "version": result["version"], "run_id": result["run_id"]}


@pytest.fixture(scope="session")
def class_history(served_champion, validated_market, tmp_path_factory) -> Path:
    """The session champion's class history over ``REGULATOR_MONTHS`` months (``lifecredit score-all``), built once
    for the servers of the dashboard and merchant tests; they only read it."""
    from benchmarks.soak import base_env, cli
    from helpers import REGULATOR_MONTHS

    root = tmp_path_factory.mktemp("class_history")
    env = base_env(
        **served_champion["env"], LIFECREDIT_VAR_DIR=str(root / "var"), LIFECREDIT_HISTORY_DIR=str(root / "history")
    )
    cli(["score-all", "--months", str(REGULATOR_MONTHS), "--validated", str(validated_market)], env)
    return root / "history"


@pytest.fixture(scope="session")
def live_service(served_champion, validated_market, tmp_path_factory) -> dict:
    """One real ``lifecredit serve`` for the e2e security tests: the session champion, three months of class
    history (so the regulator views answer), a tight per-key rate limit (60 a minute, burst 30).

    ``new_key(role)`` adds a key the running server accepts at once (each key has its own rate bucket).
    Yields ``{"url", "env", "log", "var", "ids", "new_key"}``.
    """
    import polars as pl

    from benchmarks.soak import base_env, cli, serve
    from serving.keys import KeyStore

    root = tmp_path_factory.mktemp("live")
    env = base_env(
        **served_champion["env"],
        LIFECREDIT_VAR_DIR=str(root / "var"),
        LIFECREDIT_HISTORY_DIR=str(root / "history"),
        LIFECREDIT_RATE_LIMIT_PER_MINUTE="60",
        LIFECREDIT_RATE_LIMIT_BURST="30",
    )
    cli(["score-all", "--months", "3", "--validated", str(validated_market)], env)
    cli(["consumption-index", "--validated", str(validated_market)], env)  # into the served data folder
    store = KeyStore(root / "var" / "api_keys.json")
    ids = pl.read_parquet(served_champion["features"] / "latest.parquet", columns=["merchant_id"])["merchant_id"]
    with serve(env, root / "serve.log") as url:
        yield {
            "url": url,
            "env": env,
            "log": root / "serve.log",
            "var": root / "var",
            "ids": ids.to_list(),
            "new_key": lambda role, merchant_id=None: store.create(role, merchant_id=merchant_id),
        }
