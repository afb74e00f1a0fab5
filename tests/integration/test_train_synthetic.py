"""Training end to end on a synthetic feature panel with a known signal.

The panel has the shape the features stage writes (``merchant_id``, ``as_of``, ``bad`` then
catalogue features) and a catalogue beside it, so these tests run without the simulator or the
feature pipeline. ``bad`` is drawn from a logistic of a latent health that the features see
with noise: complaints and days past due raise risk, sales and tenure lower it.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml

CATALOG = {
    "name": "synthetic-merchant-features",
    "version": "0.1.0",
    "features": [
        {"name": "sales_net_90d", "dtype": "float", "risk_direction": -1},
        {"name": "complaints_unresolved_share_90d", "dtype": "float", "risk_direction": 1},
        {"name": "dpd_worst_12m", "dtype": "int", "risk_direction": 1},
        {"name": "tenure_months", "dtype": "int", "risk_direction": -1},
        {"name": "refund_rate_90d", "dtype": "float", "risk_direction": 1},
        {"name": "digital_rmb_share_90d", "dtype": "float", "risk_direction": 0},
        {"name": "is_thin_file", "dtype": "bool", "risk_direction": 1},
        {"name": "sector", "dtype": "category", "risk_direction": 0},
        {"name": "province", "dtype": "category", "risk_direction": 0},
    ],
}
for _f in CATALOG["features"]:
    _f.update(description_en=_f["name"].replace("_", " "), description_zh=_f["name"],
              source="synthetic", window_days=90,
              reason_en=f"{_f['name'].replace('_', ' ')} points to higher risk", reason_zh=f"{_f['name']} 显示风险较高")

SECTORS = ["catering", "retail", "beauty_hairdressing", "laundry_dyeing", "convenience"]
SECTOR_RISK = {"catering": 0.3, "retail": 0.0, "beauty_hairdressing": 0.2, "laundry_dyeing": -0.2, "convenience": -0.3}
PROVINCES = ["310000", "440000", "510000"]


def write_synthetic_panel(out: Path, *, merchants: int = 220, months: int = 20, unlabelled: int = 4,
                          seed: int = 0) -> Path:
    """Write panel.parquet, latest.parquet, metadata.json and catalog.yaml into ``out``."""
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    health = rng.normal(0, 1, merchants)
    sector = rng.choice(SECTORS, merchants)
    province = rng.choice(PROVINCES, merchants)
    start_tenure = rng.integers(1, 120, merchants)
    frames = []
    for m in range(months):
        health = 0.9 * health + rng.normal(0, 0.45, merchants)
        active = rng.random(merchants) < 0.85
        sales = np.exp(10 + 0.6 * health + rng.normal(0, 0.5, merchants))
        complaints = 1 / (1 + np.exp(2.0 + 0.9 * health + rng.normal(0, 0.7, merchants)))
        dpd = np.where(rng.random(merchants) < 1 / (1 + np.exp(2.5 + 1.2 * health)), rng.integers(1, 90, merchants), 0)
        tenure = start_tenure + m
        refund = np.clip(0.03 - 0.01 * health + rng.normal(0, 0.01, merchants), 0, 1)
        thin = tenure < 6
        logit = -3.4 - 1.1 * health + np.vectorize(SECTOR_RISK.get)(sector) + 0.4 * thin
        bad = (rng.random(merchants) < 1 / (1 + np.exp(-logit))).astype(np.int8)
        as_of = date(2023 + (m // 12), 1 + m % 12, 1)
        frame = pl.DataFrame({
            "merchant_id": [f"M{i:05d}" for i in range(merchants)],
            "as_of": [as_of] * merchants,
            "bad": pl.Series(bad, dtype=pl.Int8),
            "sales_net_90d": np.where(rng.random(merchants) < 0.03, np.nan, sales),
            "complaints_unresolved_share_90d": complaints,
            "dpd_worst_12m": dpd.astype(np.int64),
            "tenure_months": tenure.astype(np.int64),
            "refund_rate_90d": refund,
            "digital_rmb_share_90d": rng.random(merchants),
            "is_thin_file": thin,
            "sector": sector,
            "province": province,
        }).filter(pl.Series(active))
        if m >= months - unlabelled:
            frame = frame.with_columns(pl.lit(None, dtype=pl.Int8).alias("bad"))
        frames.append(frame)
    panel = pl.concat(frames).with_columns(pl.col("sales_net_90d").fill_nan(None))
    panel.write_parquet(out / "panel.parquet")
    panel.filter(pl.col("as_of") == panel["as_of"].max()).write_parquet(out / "latest.parquet")
    (out / "catalog.yaml").write_text(yaml.safe_dump(CATALOG, allow_unicode=True, sort_keys=False), encoding="utf-8")
    (out / "metadata.json").write_text(json.dumps({"name": CATALOG["name"], "version": CATALOG["version"],
                                                   "rows": panel.height}), encoding="utf-8")
    return out


@pytest.fixture(scope="session")
def synthetic_features(tmp_path_factory) -> Path:
    return write_synthetic_panel(tmp_path_factory.mktemp("synthetic_features"))
