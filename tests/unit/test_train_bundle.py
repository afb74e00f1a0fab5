"""The serving bundle: input rules, monotone PD, reason codes, save and load."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import pandas as pd
import pytest

from training import lgbm
from training.bundle import OUTPUT_COLUMNS, Feature, MissingFeatureError, ScoringBundle, encode
from training.master_scale import MasterScale

FEATURES = [
    Feature("complaints", "float", 1, reason_en="Many complaints", reason_zh="投诉较多"),
    Feature("sales", "float", -1, reason_en="Low sales", reason_zh="销售额偏低"),
    Feature("thin_file", "bool", 1, reason_en="Short history", reason_zh="经营记录较短"),
    Feature("sector", "category", 0, categories=("catering", "laundry", "retail"),
            reason_en="Sector risk", reason_zh="行业风险"),
]


def _frame(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    health = rng.normal(0, 1, n)
    frame = pd.DataFrame({
        "complaints": np.exp(-health + rng.normal(0, 0.4, n)),
        "sales": np.where(rng.random(n) < 0.05, np.nan, np.exp(10 + health)),
        "thin_file": rng.random(n) < 0.1,
        "sector": rng.choice(["catering", "laundry", "retail"], n),
    })
    y = (rng.random(n) < 1 / (1 + np.exp(3 + 1.3 * health - 0.6 * (frame["sector"] == "catering")))).astype(int)
    return frame, y


@pytest.fixture(scope="module")
def bundle() -> ScoringBundle:
    frame, y = _frame(6000, 0)
    X = encode(frame, FEATURES)
    fit = lgbm.fit(X[:4000], y[:4000], X[4000:], y[4000:], FEATURES, seed=1)
    return ScoringBundle(booster=fit.booster, calibrator={"kind": "platt", "a": 1.0, "b": 0.0},
                         scale=MasterScale.load(), features=FEATURES, id_columns=["merchant_id"])


def test_encode_names_missing_columns_and_ignores_extras_and_order():
    frame, _ = _frame(50, 1)
    with pytest.raises(MissingFeatureError, match="sales, sector"):
        encode(frame.drop(columns=["sales", "sector"]), FEATURES)
    X = encode(frame, FEATURES)
    X2 = encode(frame[frame.columns[::-1]].assign(merchant_name="Lucky Noodles"), FEATURES)
    np.testing.assert_array_equal(X, X2)


def test_categories_map_to_training_codes_unseen_to_missing():
    frame = pd.DataFrame({"complaints": [1.0, 1.0, 1.0], "sales": [1.0, None, 2.0], "thin_file": [True, None, False],
                          "sector": ["retail", "karaoke", None]})
    X = encode(frame, FEATURES)
    assert X[0, 3] == 2.0 and np.isnan(X[1, 3]) and np.isnan(X[2, 3])
    assert np.isnan(X[1, 1]) and np.isnan(X[1, 2]) and X[0, 2] == 1.0


def test_non_numeric_values_in_a_numeric_feature_are_named():
    frame, _ = _frame(5, 2)
    with pytest.raises(ValueError, match="'sales'"):
        encode(frame.assign(sales="a lot"), FEATURES)


def test_predict_keeps_rows_and_index_and_has_all_columns(bundle):
    frame, _ = _frame(300, 3)
    frame.index = [f"r{i}" for i in range(300)][::-1]
    out = bundle.predict(frame)
    assert list(out.columns) == OUTPUT_COLUMNS
    assert list(out.index) == list(frame.index)
    shuffled = frame.sample(frac=1.0, random_state=0)
    pd.testing.assert_frame_equal(bundle.predict(shuffled), out.loc[shuffled.index])
    assert set(out["class"]) <= {"A", "B", "C", "D"}
    assert np.all(out["score"] == bundle.scale.score(out["pd"]))


def test_pd_is_monotone_in_directed_features(bundle):
    frame, _ = _frame(200, 4)
    for name, direction in (("complaints", 1), ("sales", -1)):
        grid = np.quantile(frame[name].dropna(), np.linspace(0, 1, 25))
        pds = np.column_stack([bundle.predict(frame.assign(**{name: v}), reasons=False)["pd"] for v in grid])
        assert np.all(np.diff(pds, axis=1) * direction >= -1e-12), name


def test_reasons_are_the_top_risk_raising_contributions(bundle):
    frame, _ = _frame(400, 5)
    out = bundle.predict(frame)
    contrib = bundle.booster.predict(bundle.encode(frame), pred_contrib=True)
    np.testing.assert_allclose(contrib.sum(axis=1), bundle.margin(bundle.encode(frame)), rtol=1e-6, atol=1e-6)
    assert np.allclose(contrib[:, -1], bundle.baseline)
    names = [f.name for f in FEATURES]
    for i in range(len(frame)):
        c = contrib[i, :-1]
        expected = [names[j] for j in np.argsort(-c, kind="stable") if c[j] > 0][:4]
        got = [out.iloc[i][f"reason_{k}_code"] for k in range(1, 5)]
        assert [g for g in got if isinstance(g, str)] == expected
    row = out.iloc[int(np.argmax(contrib[:, 0]))]
    assert row["reason_1_code"] == "complaints" and row["reason_1_zh"] == "投诉较多"


def test_save_and_load_give_the_same_predictions(bundle, tmp_path):
    frame, _ = _frame(200, 6)
    bundle.save(tmp_path / "b")
    assert {p.name for p in (tmp_path / "b").iterdir()} == {"bundle.json", "model.txt", "calibrator.json",
                                                           "master_scale.yaml"}
    again = ScoringBundle.load(tmp_path / "b")
    pd.testing.assert_frame_equal(again.predict(frame), bundle.predict(frame))
    assert again.features == bundle.features and again.id_columns == ["merchant_id"]
    assert again.baseline == pytest.approx(bundle.baseline)
