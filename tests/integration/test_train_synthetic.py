"""Training end to end on a synthetic feature panel with a known signal.

The panel has the shape the features stage writes (``merchant_id``, ``as_of``, ``bad`` then
catalogue features) and a catalogue beside it, so these tests run without the simulator or the
feature pipeline (the ``synthetic_features`` and MLflow store fixtures are in ``conftest.py``).
``bad`` is drawn from a logistic of a latent health that the features see
with noise: complaints and days past due raise risk, sales and tenure lower it.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest
import yaml

from core.settings import get_settings

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
    _f.update(
        description_en=_f["name"].replace("_", " "),
        description_zh=_f["name"],
        source="transactions",
        window_days=90,
        reason_en=f"{_f['name'].replace('_', ' ')} points to higher risk",
        reason_zh=f"{_f['name']} 显示风险较高",
    )

SECTORS = ["catering", "retail", "beauty_hairdressing", "laundry_dyeing", "convenience"]
SECTOR_RISK = {"catering": 0.3, "retail": 0.0, "beauty_hairdressing": 0.2, "laundry_dyeing": -0.2, "convenience": -0.3}
PROVINCES = ["310000", "440000", "510000"]


def write_synthetic_panel(
    out: Path, *, merchants: int = 220, months: int = 20, unlabelled: int = 4, seed: int = 0
) -> Path:
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
        frame = pl.DataFrame(
            {
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
            }
        ).filter(pl.Series(active))
        if m >= months - unlabelled:
            frame = frame.with_columns(pl.lit(None, dtype=pl.Int8).alias("bad"))
        frames.append(frame)
    panel = pl.concat(frames).with_columns(pl.col("sales_net_90d").fill_nan(None))
    panel.write_parquet(out / "panel.parquet")
    panel.filter(pl.col("as_of") == panel["as_of"].max()).write_parquet(out / "latest.parquet")
    (out / "catalog.yaml").write_text(yaml.safe_dump(CATALOG, allow_unicode=True, sort_keys=False), encoding="utf-8")
    (out / "metadata.json").write_text(
        json.dumps({"name": CATALOG["name"], "version": CATALOG["version"], "rows": panel.height}), encoding="utf-8"
    )
    return out


@pytest.fixture(scope="module")
def trained(mlflow_store, synthetic_features):
    """One model trained on the synthetic panel in a module-wide store: (result, store dir)."""
    from training.train import train_from_features

    store = mlflow_store.new()
    with mlflow_store.use(store):
        result = train_from_features(synthetic_features, settings=get_settings(), seed=7)
    return result, store


@pytest.fixture
def in_store(trained, mlflow_store):
    with mlflow_store.use(trained[1]):
        yield trained[0]


def _artifacts(client, run_id: str, path: str = "") -> set[str]:
    out = set()
    for info in client.list_artifacts(run_id, path):
        out |= _artifacts(client, run_id, info.path) if info.is_dir else {info.path}
    return out


def test_train_registers_a_calibrated_model_with_metrics(in_store):
    r = in_store
    assert r["version"] == "1" and r["model_uri"] == "models:/lifecredit-merchant-pd/1"
    m = r["metrics"]
    assert m["auc"] > 0.72 and m["gini"] == pytest.approx(2 * m["auc"] - 1)
    assert m["classes_rejected"] == 0 and m["ece"] < 0.05
    assert abs(m["mean_pd"] - m["default_rate"]) < 0.02  # calibrated level
    assert r["challenger_metrics"]["auc"] > 0.7
    # merchant-disjoint: test and calibration rows from the split date on, after every booster row
    assert r["split"]["split"] == "merchant_disjoint"
    assert r["split"]["test_from"] == r["split"]["valid_from"] > r["split"]["train_to"]


def test_run_holds_the_evidence(in_store):
    from training.registry import client

    c = client(get_settings())
    run = c.get_run(in_store["run_id"])
    files = _artifacts(c, in_store["run_id"])
    expected = {
        "evaluation/evaluation.json",
        "evaluation/test_window.parquet",
        "evaluation/csi.csv",
        "evaluation/model_card.md",
        "evaluation/feature_importance.csv",
        "challenger/points_table.csv",
        "model.txt",
        "serving_bundle/model.txt",
        "serving_bundle/bundle.json",
        "serving_bundle/calibrator.json",
        "serving_bundle/master_scale.yaml",
        "serving_bundle/catalog.yaml",
    }
    expected |= {
        f"evaluation/plots/{p}.png"
        for p in ("roc", "calibration", "score_by_class", "class_distribution", "feature_importance")
    }
    assert expected <= files
    for key in ("window.test_from", "window.train_to", "calibrator", "feature_set.version", "lgbm.learning_rate"):
        assert key in run.data.params
    assert run.data.params["feature_set.name"] == "synthetic-merchant-features"
    assert {"test.auc", "test.ks", "test.ece", "challenger.test.auc", "test.psi_score_train_test"} <= set(
        run.data.metrics
    )
    (ds,) = run.inputs.dataset_inputs
    assert ds.dataset.name == "synthetic-merchant-features@0.1.0"
    assert run.data.params["dataset_sha256"].startswith(ds.dataset.digest)

    import mlflow

    evaluation = json.loads(mlflow.artifacts.load_text(f"runs:/{in_store['run_id']}/evaluation/evaluation.json"))
    lgb = evaluation["lightgbm"]
    assert {r["group"] for r in lgb["by_class"]} == {"A", "B", "C", "D"}
    assert all("jeffreys_p" in r for r in lgb["by_grade"])
    assert len(lgb["lift_gains"]) == 10 and "herfindahl" in lgb["metrics"]
    assert set(evaluation["csi"]) == {f["name"] for f in CATALOG["features"]}
    assert {"gain", "mean_abs_shap"} <= set(evaluation["importance"][0])
    assert evaluation["calibration"]["chosen"] in ("platt", "isotonic")
    assert "margin" in lgb["baseline"] and evaluation["challenger"]["metrics"]["auc"] > 0.7


def test_alias_challenger_on_the_new_version(in_store):
    from training.registry import client

    assert str(client(get_settings()).get_model_version_by_alias("lifecredit-merchant-pd", "challenger").version) == "1"


def test_same_data_and_seed_give_the_same_metrics(in_store, synthetic_features):
    from training.train import train_from_features

    again = train_from_features(synthetic_features, settings=get_settings(), seed=7)
    assert again["version"] == "2"
    assert again["metrics"] == in_store["metrics"]
    assert again["challenger_metrics"] == in_store["challenger_metrics"]


@pytest.fixture
def packaged(in_store):
    import mlflow

    return mlflow.pyfunc.load_model(in_store["model_uri"])


@pytest.fixture(scope="module")
def scoring_rows(synthetic_features):
    return pl.read_parquet(synthetic_features / "latest.parquet").to_pandas()


def test_more_unresolved_complaints_never_lower_pd(packaged, scoring_rows):
    rows = scoring_rows.head(60)
    grid = np.linspace(0.0, 1.0, 21)
    pds = np.column_stack(
        [packaged.predict(rows.assign(complaints_unresolved_share_90d=v))["pd"].to_numpy() for v in grid]
    )
    assert np.all(np.diff(pds, axis=1) >= 0)
    assert np.any(pds[:, -1] > pds[:, 0])  # and the feature does move PD


def test_column_order_and_extra_columns_do_not_matter(packaged, scoring_rows):
    out = packaged.predict(scoring_rows)
    shuffled = scoring_rows[scoring_rows.columns[::-1]].assign(merchant_name="Lucky Noodles", bad=1)
    pd.testing.assert_frame_equal(packaged.predict(shuffled), out)
    assert list(out.columns[:4]) == ["pd", "score", "grade", "class"]
    assert {f"reason_{k}_{p}" for k in range(1, 5) for p in ("code", "en", "zh")} <= set(out.columns)


def test_missing_feature_column_is_named(packaged, scoring_rows):
    with pytest.raises(Exception, match="dpd_worst_12m"):
        packaged.predict(scoring_rows.drop(columns=["dpd_worst_12m"]))


def test_models_carry_a_signature_of_optional_features_and_an_example(in_store, packaged, scoring_rows):
    """The signature lists every feature as an optional input and the model comes with an input
    example, yet the bundle's input rules still hold: a null in an int or bool feature scores."""
    import mlflow

    names = {f["name"] for f in CATALOG["features"]}
    for uri in (in_store["model_uri"], in_store["challenger_model_uri"]):
        info = mlflow.models.get_model_info(uri)
        inputs = {c.name: c for c in info.signature.inputs.inputs}
        assert names <= set(inputs) and not any(c.required for c in inputs.values())
        types = {n: c.type.name for n, c in inputs.items()}
        assert types["dpd_worst_12m"] == "double" and types["is_thin_file"] == "boolean"
        assert types["sector"] == "string" and types["as_of"] == "datetime" and types["merchant_id"] == "string"
        assert {"pd", "score", "grade", "class"} <= set(info.signature.outputs.input_names())
        assert info.saved_input_example_info is not None
    rows = scoring_rows.head(5).copy()
    rows["dpd_worst_12m"] = pd.array([None, 1, 0, 2, None], dtype="Int64")
    rows["is_thin_file"] = pd.Series([None, True, False, True, None], dtype=object, index=rows.index)
    out = packaged.predict(rows)
    assert out["pd"].between(0, 1).all() and len(out) == 5
    rows["dpd_worst_12m"] = [np.nan, 1.0, 0.0, 2.0, 3.0]  # an int column with a null, as polars gives it
    assert packaged.predict(rows)["pd"].between(0, 1).all()


def test_serving_bundle_scores_like_the_pyfunc_and_challenger_loads(in_store, packaged, scoring_rows, tmp_path):
    import mlflow

    from training.bundle import ScoringBundle

    local = mlflow.artifacts.download_artifacts(
        run_id=in_store["run_id"], artifact_path="serving_bundle", dst_path=str(tmp_path)
    )
    bundle = ScoringBundle.load(local)
    pd.testing.assert_frame_equal(bundle.predict(scoring_rows), packaged.predict(scoring_rows))
    challenger = mlflow.pyfunc.load_model(in_store["challenger_model_uri"])
    out = challenger.predict(scoring_rows)
    assert list(out.columns) == ["pd", "score", "grade", "class"] and len(out) == len(scoring_rows)


def test_tuning_runs_optuna_trials(trained, mlflow_store, synthetic_features):
    from training.registry import client
    from training.train import train_from_features

    with mlflow_store.use(trained[1]):
        r = train_from_features(synthetic_features, settings=get_settings(), seed=7, tune=3, experiment="tuning")
        files = _artifacts(client(get_settings()), r["run_id"], "evaluation")
        params = client(get_settings()).get_run(r["run_id"]).data.params
    assert "evaluation/optuna_trials.csv" in files and params["tune_trials"] == "3"
    assert r["metrics"]["auc"] > 0.7
