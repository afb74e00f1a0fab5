"""Model selection for tables (training.select): out-of-fold candidates, the rule, and the bundle kinds
it registers (scorecard, logistic, blend) with their save/load round-trips and reasons."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import pandas as pd
import pytest

from training.bundle import OUTPUT_COLUMNS, ModelInput, ScoringBundle, encode
from training.data import stratified_split
from training.master_scale import MasterScale
from training.select import CANDIDATES, cv_calibrated, fit_selected, select

NUM = [ModelInput(f"x{j}", "float", 0) for j in range(4)]
FEATURES = [*NUM, ModelInput("sector", "category", 0, categories=("a", "b", "c"))]


def _table(kind: str, n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, (n, 4))
    sector = rng.choice(["a", "b", "c"], n)
    if kind == "linear":  # the logistic truth: log-odds linear in every feature
        z = -1.6 + 0.9 * x[:, 0] - 0.7 * x[:, 1] + 0.5 * x[:, 2] + np.where(sector == "a", 0.6, 0.0)
    else:  # strongly non-linear: a checkerboard of two features and a U shape, nothing linear to find
        z = -1.4 + 2.5 * np.sign(x[:, 0] * x[:, 1]) + 1.5 * (np.abs(x[:, 2]) > 1.2) - 1.0
    y = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(int)
    frame = pd.DataFrame({f"x{j}": x[:, j] for j in range(4)} | {"sector": sector})
    frame.loc[rng.random(n) < 0.05, "x3"] = np.nan
    return frame, y


def _fit(kind: str, n: int = 3000, seed: int = 0, candidates=CANDIDATES):
    frame, y = _table(kind, n, seed)
    split = stratified_split(y, seed=seed)
    X = encode(frame, FEATURES)
    fitted = fit_selected(
        X,
        y,
        split,
        FEATURES,
        MasterScale.load(),
        seed=seed,
        candidates=candidates,
        bundle_kwargs={"id_columns": ["id"]},
    )
    return frame, y, split, X, fitted


@pytest.fixture(scope="module")
def linear():
    return _fit("linear")


@pytest.fixture(scope="module")
def nonlinear():
    return _fit("nonlinear")


def test_every_candidate_is_scored_out_of_fold_on_the_training_rows_only(linear):
    frame, y, split, X, fitted = linear
    sel = fitted.selection
    assert set(sel.candidates) >= {"lightgbm", "lightgbm_small", "lightgbm_additive", "scorecard", "logistic"}
    for c in sel.candidates.values():
        assert len(c.oof_margin) == len(split.valid) and np.isfinite(c.oof_margin).all()
        assert 0 < c.log_loss < 0.7 and 0.5 < c.auc <= 1 and c.calibrator in ("platt", "isotonic")
    assert set(split.test).isdisjoint(split.valid)
    table = sel.table()
    assert sum(r["selected"] for r in table) == 1 and {r["candidate"] for r in table} == set(sel.candidates)
    assert all(f"oof.{name}.log_loss" in sel.metrics() for name in sel.candidates)


def test_a_linear_logistic_truth_selects_a_linear_model_or_a_tie(linear):
    _, _, _, _, fitted = linear
    sel = fitted.selection
    assert sel.winner in ("logistic", "scorecard", "blend", "lightgbm_additive"), sel.reason
    best_linear = min(sel.candidates[c].log_loss for c in ("logistic", "scorecard"))
    assert best_linear <= sel.candidates["lightgbm"].log_loss  # the linear model at least ties the default trees


def test_a_strongly_non_linear_truth_selects_lightgbm(nonlinear):
    _, _, _, _, fitted = nonlinear
    sel = fitted.selection
    assert sel.winner in ("lightgbm", "lightgbm_small", "blend"), sel.reason
    assert sel.candidates[sel.winner].log_loss < sel.candidates["logistic"].log_loss - 0.02
    assert fitted.bundle.kind in ("lightgbm", "blend")


def test_the_winner_is_what_the_bundle_scores(linear, nonlinear, tmp_path):
    from sklearn.metrics import roc_auc_score

    for name, (frame, y, split, _X, fitted) in {"linear": linear, "nonlinear": nonlinear}.items():
        b = fitted.bundle
        out = b.predict(frame.iloc[split.test])
        assert list(out.columns) == OUTPUT_COLUMNS
        assert roc_auc_score(y[split.test], out["pd"]) > 0.7, name
        b.save(tmp_path / name)
        again = ScoringBundle.load(tmp_path / name)
        assert again.kind == b.kind
        pd.testing.assert_frame_equal(again.predict(frame.iloc[split.test]), out)


def test_rule_is_lowest_log_loss_unless_a_simpler_one_is_within_one_se():
    rng = np.random.default_rng(3)
    n = 4000
    z = rng.normal(0, 1.5, n)
    y = (rng.random(n) < 1 / (1 + np.exp(-(z - 1.5)))).astype(int)
    fold = np.arange(n) % 5
    X = np.zeros((n, 1))
    rows = np.arange(n)
    strong, weak = z + rng.normal(0, 0.2, n), z + rng.normal(0, 2.0, n)
    feats = [ModelInput("x")]
    sel = select(
        X,
        y,
        rows,
        rows,
        fold,
        feats,
        base_oof=strong,
        base_trees=10,
        base_params={},
        scorecard=(weak, 0.0),
        candidates=("lightgbm", "scorecard"),
    )
    assert sel.winner == "lightgbm" and "lowest out-of-fold log loss" in sel.reason
    same = strong + rng.normal(0, 0.05, n)  # a simpler model as good as the trees: it wins the tie
    sel = select(
        X,
        y,
        rows,
        rows,
        fold,
        feats,
        base_oof=strong,
        base_trees=10,
        base_params={},
        scorecard=(same, 0.0),
        candidates=("lightgbm", "scorecard"),
    )
    gap = sel.candidates["scorecard"].info["loss_gap_se"]
    assert sel.winner == "scorecard" and gap <= 1.0
    assert ("one standard error" in sel.reason) == (
        sel.candidates["scorecard"].log_loss > sel.candidates["lightgbm"].log_loss
    )
    sel = select(
        X,
        y,
        rows,
        rows,
        fold,
        feats,
        base_oof=strong,
        base_trees=10,
        base_params={},
        scorecard=(same, 0.0),
        candidates=("lightgbm", "scorecard"),
        one_se=False,
    )
    assert sel.winner == min(sel.candidates.values(), key=lambda c: c.log_loss).name  # without the rule: lowest loss


def test_cv_calibrated_is_out_of_fold():
    rng = np.random.default_rng(1)
    m = rng.normal(0, 1, 1000)
    y = (rng.random(1000) < 1 / (1 + np.exp(-m))).astype(int)
    p, kind, losses = cv_calibrated(m, y, np.arange(1000) % 5)
    assert kind in losses and losses[kind] == min(losses.values()) and ((p > 0) & (p < 1)).all()


def _kind_bundle(linear, kind: str) -> ScoringBundle:
    from training.calibration import PlattCalibrator
    from training.candidates import fit_logistic, fit_scorecard

    frame, y, split, X, fitted = linear
    rows = split.train
    parts = {
        "scorecard": fit_scorecard(X, y, rows, FEATURES, MasterScale.load()),
        "logistic": fit_logistic(X, y, rows, FEATURES, seed=0),
    }
    if kind == "blend":
        b = ScoringBundle(
            booster=fitted.fit.booster,
            calibrator={"kind": "platt", "a": 1.0, "b": 0.0},
            scale=MasterScale.load(),
            features=FEATURES,
            kind="blend",
            scorecard=parts["scorecard"],
            blend={"intercept": -0.1, "lightgbm": 0.6, "scorecard": 0.5},
        )
    else:
        b = ScoringBundle(
            booster=None,
            calibrator={"kind": "platt", "a": 1.0, "b": 0.0},
            scale=MasterScale.load(),
            features=FEATURES,
            kind=kind,
            **{kind: parts[kind]},
        )
    cal = PlattCalibrator().fit(b.margin(X[rows]), y[rows])
    b.calibrator = cal.to_dict()
    b._baseline = float(b.margin(X[rows]).mean())
    return b


@pytest.mark.parametrize("kind", ["scorecard", "logistic", "blend"])
def test_new_kinds_round_trip_and_give_every_output(linear, kind, tmp_path):
    frame, y, split, X, _ = linear
    b = _kind_bundle(linear, kind)
    out = b.predict(frame.iloc[split.test])
    assert list(out.columns) == OUTPUT_COLUMNS and out["pd"].between(0, 1).all()
    assert set(out["class"]) <= {"A", "B", "C", "D"}
    d = b.save(tmp_path / kind)
    files = {p.name for p in d.iterdir()}
    assert ("model.txt" in files) == (
        kind == "blend"
    ) and f"{'scorecard' if kind != 'logistic' else kind}.json" in files
    again = ScoringBundle.load(d)
    assert again.kind == kind and again.baseline == pytest.approx(b.baseline)
    pd.testing.assert_frame_equal(again.predict(frame.iloc[split.test]), out)


def test_scorecard_reasons_are_the_points_lost_against_the_best_bin(linear):
    frame, _, split, X, _ = linear
    b = _kind_bundle(linear, "scorecard")
    test = frame.iloc[split.test]
    contrib = b.contributions(b.encode(test))
    assert (contrib >= -1e-12).all()
    used = {f["name"] for f in b.scorecard["features"]}
    assert all(np.all(contrib[:, j] == 0) for j, f in enumerate(FEATURES) if f.name not in used)
    out = b.predict(test)
    i = int(np.argmax(contrib[:, 0]))
    top = FEATURES[int(np.argmax(contrib[i]))].name
    assert out.iloc[i]["reason_1_code"] == top


def test_logistic_reasons_are_exact_linear_shap_and_add_up_to_the_margin(linear):
    frame, _, split, X, _ = linear
    b = _kind_bundle(linear, "logistic")
    Xt = b.encode(frame.iloc[split.test])
    from training.bundle import logistic_terms

    intercept, terms = logistic_terms(b.logistic, Xt, FEATURES)
    np.testing.assert_allclose(intercept + terms.sum(axis=1), b.margin(Xt), atol=1e-9)
    assert abs(logistic_terms(b.logistic, X[split.train], FEATURES)[1].mean(axis=0)).max() < 1e-6  # centred
    out = b.predict(frame.iloc[split.test])
    hi = frame.iloc[split.test]["x0"].to_numpy().argmax()  # x0 raises the risk most where it is highest
    assert out.iloc[hi]["reason_1_code"] == "x0"


def test_unknown_kind_and_missing_parts_are_named():
    with pytest.raises(ValueError, match="unknown model kind 'forest'"):
        ScoringBundle(booster=None, calibrator={}, scale=MasterScale.load(), features=FEATURES, kind="forest")
    with pytest.raises(ValueError, match="needs scorecard"):
        ScoringBundle(booster=None, calibrator={}, scale=MasterScale.load(), features=FEATURES, kind="scorecard")


def test_a_lightgbm_bundle_is_still_format_1(nonlinear, tmp_path):
    import json

    b = nonlinear[4].bundle
    if b.kind != "lightgbm":
        b = ScoringBundle(booster=nonlinear[4].fit.booster, calibrator=b.calibrator, scale=b.scale, features=FEATURES)
    d = b.save(tmp_path / "lgb")
    meta = json.loads((d / "bundle.json").read_text())
    assert meta["format_version"] == 1 and meta["kind"] == "lightgbm" and "blend" not in meta
    del meta["kind"]  # a bundle from before the kinds
    (d / "bundle.json").write_text(json.dumps(meta))
    assert ScoringBundle.load(d).kind == "lightgbm"
