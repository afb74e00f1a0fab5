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
    from lifecredit.settings import get_settings

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
