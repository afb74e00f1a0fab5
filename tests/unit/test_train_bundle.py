"""The serving bundle: input rules, monotone PD, reason codes, save and load."""

from __future__ import annotations

import dataclasses
import json
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import pandas as pd
import pytest

from training import lgbm
from training.bundle import OUTPUT_COLUMNS, MissingFeatureError, ModelInput, ScoringBundle, encode
from training.master_scale import MasterScale

FEATURES = [
    ModelInput("complaints", "float", 1, reason_en="Many complaints", reason_zh="投诉较多"),
    ModelInput("sales", "float", -1, reason_en="Low sales", reason_zh="销售额偏低"),
    ModelInput("thin_file", "bool", 1, reason_en="Short history", reason_zh="经营记录较短"),
    ModelInput(
        "sector",
        "category",
        0,
        categories=("catering", "laundry", "retail"),
        reason_en="Sector risk",
        reason_zh="行业风险",
    ),
]


def _frame(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    health = rng.normal(0, 1, n)
    frame = pd.DataFrame(
        {
            "complaints": np.exp(-health + rng.normal(0, 0.4, n)),
            "sales": np.where(rng.random(n) < 0.05, np.nan, np.exp(10 + health)),
            "thin_file": rng.random(n) < 0.1,
            "sector": rng.choice(["catering", "laundry", "retail"], n),
        }
    )
    y = (rng.random(n) < 1 / (1 + np.exp(3 + 1.3 * health - 0.6 * (frame["sector"] == "catering")))).astype(int)
    return frame, y


@pytest.fixture(scope="module")
def bundle() -> ScoringBundle:
    frame, y = _frame(6000, 0)
    X = encode(frame, FEATURES)
    rows, fold = np.arange(4000), np.arange(6000) % 5
    fit = lgbm.crossfit(X, y, rows, rows, fold, FEATURES, seed=1)
    return ScoringBundle(
        booster=fit.booster,
        calibrator={"kind": "platt", "a": 1.0, "b": 0.0},
        scale=MasterScale.load(),
        features=FEATURES,
        id_columns=["merchant_id"],
    )


def test_encode_names_missing_columns_and_ignores_extras_and_order():
    frame, _ = _frame(50, 1)
    with pytest.raises(MissingFeatureError, match="sales, sector"):
        encode(frame.drop(columns=["sales", "sector"]), FEATURES)
    X = encode(frame, FEATURES)
    X2 = encode(frame[frame.columns[::-1]].assign(merchant_name="Lucky Noodles"), FEATURES)
    np.testing.assert_array_equal(X, X2)


def test_categories_map_to_training_codes_unseen_to_missing():
    frame = pd.DataFrame(
        {
            "complaints": [1.0, 1.0, 1.0],
            "sales": [1.0, None, 2.0],
            "thin_file": [True, None, False],
            "sector": ["retail", "karaoke", None],
        }
    )
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


def test_one_result_renders_as_the_frame_and_as_the_api_rows(bundle):
    """``predict``'s frame, the result's JSON rows and serving's response objects are one result, rendered."""
    from answers.render import results

    frame, _ = _frame(120, 11)
    scores = bundle.score(frame)
    assert len(scores) == 120
    out = bundle.predict(frame)
    pd.testing.assert_frame_equal(scores.to_frame(frame.index), out)
    served = results(bundle, bundle.encode(frame), [f"m{i}" for i in range(120)], [None] * 120, "m", "1")
    for i, item in enumerate(served):
        row = out.iloc[i]
        assert item["pd"] == row["pd"] and item["score"] == row["score"]
        assert (item["grade"], item["class"]) == (row["grade"], row["class"])
        assert item == {
            "merchant_id": f"m{i}",
            **scores.row(i),
            "model_name": "m",
            "model_version": "1",
            "features_as_of": None,
        }
        shown = [k for k in range(1, 5) if isinstance(row[f"reason_{k}_code"], str)]  # a row reads null as NaN
        assert [r["code"] for r in item["reasons"]] == [row[f"reason_{k}_code"] for k in shown]
        assert [r["zh"] for r in item["reasons"]] == [row[f"reason_{k}_zh"] for k in shown]
    plain = bundle.score(frame, reasons=False)
    assert plain.reasons is None and "reasons" not in plain.row(0)
    assert list(plain.to_frame().columns) == OUTPUT_COLUMNS[:4]


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
    X = bundle.encode(frame)
    assert np.isnan(X[:, 1]).any()  # some rows without sales: "Low sales" is no reason there
    for i in range(len(frame)):
        c = contrib[i, :-1]
        expected = [names[j] for j in np.argsort(-c, kind="stable") if c[j] > 0 and not np.isnan(X[i, j])][:4]
        got = [out.iloc[i][f"reason_{k}_code"] for k in range(1, 5)]
        assert [g for g in got if isinstance(g, str)] == expected
    row = out.iloc[int(np.argmax(contrib[:, 0]))]
    assert row["reason_1_code"] == "complaints" and row["reason_1_zh"] == "投诉较多"


def test_save_and_load_give_the_same_predictions(bundle, tmp_path):
    frame, _ = _frame(200, 6)
    bundle.save(tmp_path / "b")
    assert {p.name for p in (tmp_path / "b").iterdir()} == {
        "bundle.json",
        "model.txt",
        "calibrator.json",
        "master_scale.yaml",
    }
    again = ScoringBundle.load(tmp_path / "b")
    pd.testing.assert_frame_equal(again.predict(frame), bundle.predict(frame))
    assert again.features == bundle.features and again.id_columns == ["merchant_id"]
    assert again.baseline == pytest.approx(bundle.baseline)


def _with(bundle: ScoringBundle, **changes) -> ScoringBundle:
    """The same model with some features' bundle metadata changed (``name={field: value}``)."""
    feats = [dataclasses.replace(f, **changes.get(f.name, {})) for f in bundle.features]
    return dataclasses.replace(bundle, features=feats)


def test_non_reason_features_are_skipped_and_the_next_moves_up(bundle):
    frame, _ = _frame(400, 7)
    contrib = bundle.booster.predict(bundle.encode(frame), pred_contrib=True)[:, :-1]
    assert (contrib[:, 3] > 0).any()  # sector does raise the risk of some rows
    plain = bundle.reasons(contrib).columns()
    quiet = _with(bundle, sector={"reason": False}).reasons(contrib).columns()
    codes = lambda r: [[r[f"reason_{k}_code"][i] for k in range(1, 5)] for i in range(len(frame))]  # noqa: E731
    for before, after in zip(codes(plain), codes(quiet), strict=True):
        assert "sector" not in after
        assert [c for c in after if c] == [c for c in before if c and c != "sector"]
    assert "Sector risk" not in set(quiet["reason_1_en"]) and "Sector risk" in set(plain["reason_1_en"])


def test_missing_values_are_reasons_only_without_a_catalogue_text(bundle):
    """A text names a high or low value: a missing value is no reason for it; a bare feature (bring your own) is."""
    frame, _ = _frame(400, 8)
    frame.loc[frame.index[::2], "sales"] = np.nan
    X = bundle.encode(frame)
    contrib = bundle.booster.predict(X, pred_contrib=True)[:, :-1]
    raising_missing = np.isnan(X[:, 1]) & (contrib[:, 1] > 0)
    with_text = bundle.reasons(contrib, X).columns()
    byo = _with(bundle, sales={"reason_en": "", "reason_zh": ""}).reasons(contrib, X).columns()
    shown = lambda r: np.any([r[f"reason_{k}_code"] == "sales" for k in range(1, 5)], axis=0)  # noqa: E731
    assert raising_missing.any()
    assert not shown(with_text)[np.isnan(X[:, 1])].any() and shown(with_text).any()
    assert shown(byo)[raising_missing].all()
    assert set(byo["reason_1_en"][byo["reason_1_code"] == "sales"]) == {"sales raised the risk"}


def test_reason_flag_is_saved_and_old_bundles_default_to_reasons(bundle, tmp_path):
    quiet = _with(bundle, sector={"reason": False})
    meta = json.loads((quiet.save(tmp_path / "b") / "bundle.json").read_text(encoding="utf-8"))
    assert [f["reason"] for f in meta["features"]] == [True, True, True, False]
    assert [f["reason_threshold"] for f in meta["features"]] == [None] * 4
    assert ScoringBundle.load(tmp_path / "b").features == quiet.features
    for f in meta["features"]:
        del f["reason"]  # a bundle written before the flag
    (tmp_path / "b" / "bundle.json").write_text(json.dumps(meta), encoding="utf-8")
    assert all(f.reason for f in ScoringBundle.load(tmp_path / "b").features)


def test_a_reason_is_never_given_on_the_wrong_side_of_its_threshold(bundle):
    """ "Many complaints" (+1) only above its threshold, "Low sales" (-1) only below its own."""
    frame, _ = _frame(400, 9)
    X = bundle.encode(frame)
    contrib = bundle.booster.predict(X, pred_contrib=True)[:, :-1]
    plain = bundle.reasons(contrib, X).columns()
    shown = lambda r, name: np.any([r[f"reason_{k}_code"] == name for k in range(1, 5)], axis=0)  # noqa: E731
    # thresholds in the middle of the values where each is a reason today: half of those rows lose it
    t_complaints = float(np.median(X[shown(plain, "complaints"), 0]))
    t_sales = float(np.median(X[shown(plain, "sales"), 1]))
    limited = _with(bundle, complaints={"reason_threshold": t_complaints}, sales={"reason_threshold": t_sales})
    out = limited.reasons(contrib, X).columns()
    for name, wrong_side in (("complaints", X[:, 0] <= t_complaints), ("sales", ~(X[:, 1] < t_sales))):
        assert (shown(plain, name) & wrong_side).any(), name  # the filter has something to do
        assert not (shown(out, name) & wrong_side).any(), name
        assert (shown(out, name) == (shown(plain, name) & ~wrong_side)).all(), name
    assert (
        shown(limited.reasons(contrib).columns(), "complaints")
        == shown(bundle.reasons(contrib).columns(), "complaints")
    ).all()


def test_one_reason_per_group_ranked_by_the_groups_summed_contribution():
    """Three small sales contributions outrank one larger complaints contribution, and show as one reason."""
    import numpy as np

    from training.bundle import ModelInput, ScoringBundle
    from training.master_scale import MasterScale

    features = [
        ModelInput("sales_a", direction=-1, reason_en="Sales fell", reason_zh="销售下降", reason_group="sales"),
        ModelInput("sales_b", direction=-1, reason_en="Low sales", reason_zh="销售低", reason_group="sales"),
        ModelInput("sales_c", direction=-1, reason_en="Few sales", reason_zh="销售少", reason_group="sales"),
        ModelInput("complaints", direction=1, reason_en="Many complaints", reason_zh="投诉多"),
        ModelInput("sector", dtype="category", reason=False),
    ]
    bundle = ScoringBundle(
        booster=object(), calibrator={"kind": "platt", "a": 1.0, "b": 0.0}, scale=MasterScale.load(), features=features
    )
    contrib = np.array(
        [
            [0.20, 0.25, 0.10, 0.40, 0.90],  # sales 0.55 in all > complaints 0.40; sector never
            [0.05, -0.3, 0.00, 0.40, 0.00],
        ]
    )  # sales 0.05 < complaints
    out = bundle.reasons(contrib).columns()
    assert [out[f"reason_{k}_code"][0] for k in (1, 2, 3)] == ["sales_b", "complaints", None]
    assert [out[f"reason_{k}_code"][1] for k in (1, 2, 3)] == ["complaints", "sales_a", None]
