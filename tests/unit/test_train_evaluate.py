"""Validation statistics: Jeffreys, PSI, KS, Herfindahl, ECE, lift and the evaluation bundle."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import beta

from training import evaluate as ev
from training.master_scale import MasterScale


def test_jeffreys_pvalue_is_the_posterior_cdf_at_the_predicted_pd():
    assert ev.jeffreys_pvalue(100, 2, 0.02) == pytest.approx(beta.cdf(0.02, 2.5, 98.5))
    # far more defaults than predicted: rejected; as many as predicted: not
    assert ev.jeffreys_pvalue(1000, 60, 0.02) < 0.01
    assert ev.jeffreys_pvalue(1000, 20, 0.02) > 0.3


def test_group_table_flags_underestimated_groups():
    rng = np.random.default_rng(0)
    n = 4000
    groups = np.where(np.arange(n) < n // 2, "A", "B")
    p = np.full(n, 0.02)
    y = (rng.random(n) < np.where(groups == "A", 0.02, 0.08)).astype(int)
    rows = {r["group"]: r for r in ev.group_table(y, p, groups, ["A", "B", "C"])}
    assert not rows["A"]["rejected"] and rows["B"]["rejected"]
    assert rows["C"]["n"] == 0 and rows["C"]["jeffreys_p"] is None and not rows["C"]["rejected"]
    assert rows["A"]["share"] + rows["B"]["share"] == pytest.approx(1.0)


def test_jeffreys_counts_each_merchant_once():
    """Four monthly rows of one merchant share one outcome: the test must not count them four times."""
    rng = np.random.default_rng(2)
    merchants = 60
    bad = (rng.random(merchants) < 0.55).astype(int)  # observed 55% against a predicted 40%
    y, ids = np.repeat(bad, 4), np.repeat(np.arange(merchants), 4)
    p, groups = np.full(len(y), 0.40), np.full(len(y), "D")
    by_row = ev.group_table(y, p, groups, ["D"])[0]
    by_merchant = ev.group_table(y, p, groups, ["D"], clusters=ids)[0]
    assert by_row["obligors"] == by_row["n"] == 240 and by_merchant["obligors"] == 60
    assert by_merchant["defaults"] == by_row["defaults"] and by_merchant["n"] == 240
    d = bad.sum()
    assert by_merchant["jeffreys_p"] == pytest.approx(beta.cdf(0.40, d + 0.5, merchants - d + 0.5))
    assert by_merchant["jeffreys_p"] > by_row["jeffreys_p"]


def test_psi_is_zero_for_the_same_distribution_and_large_for_a_shift():
    rng = np.random.default_rng(1)
    a = rng.normal(600, 30, 20_000)
    assert ev.psi(a, rng.normal(600, 30, 20_000)) < 0.01
    assert ev.psi(a, rng.normal(640, 30, 20_000)) > 0.25
    with_nan = np.where(rng.random(20_000) < 0.3, np.nan, a)
    assert ev.psi(a, with_nan) > 0.25  # a surge of missing values is a shift too
    cats = rng.choice(["x", "y"], 5000, p=[0.5, 0.5])
    assert ev.psi(cats, cats, categorical=True) == pytest.approx(0.0)
    assert ev.psi(cats, rng.choice(["x", "y"], 5000, p=[0.9, 0.1]), categorical=True) > 0.25


def test_ks_auc_gini():
    y = np.array([0, 0, 0, 1, 1, 1])
    perfect = np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9])
    d = ev.discrimination(y, perfect)
    assert d["auc"] == 1.0 and d["gini"] == 1.0 and d["ks"] == pytest.approx(1.0)
    assert np.isnan(ev.discrimination(np.zeros(4), np.ones(4))["auc"])


def test_herfindahl():
    assert ev.herfindahl([10, 10, 10, 10])["herfindahl"] == pytest.approx(0.25)
    assert ev.herfindahl([10, 10, 10, 10])["herfindahl_normalised"] == pytest.approx(0.0)
    assert ev.herfindahl([40, 0, 0, 0])["herfindahl_normalised"] == pytest.approx(1.0)


def test_calibration_error_and_lift():
    rng = np.random.default_rng(2)
    p = rng.uniform(0.01, 0.2, 50_000)
    y = (rng.random(len(p)) < p).astype(int)
    assert ev.calibration(y, p)["ece"] < 0.005
    assert ev.calibration(y, p * 2)["ece"] > 0.05
    lift = ev.lift_gains(y, p)
    assert [r["decile"] for r in lift] == list(range(1, 11))
    assert lift[0]["lift"] > 1.5 > lift[-1]["lift"]
    assert lift[-1]["cumulative_gain"] == pytest.approx(1.0)
    assert all(a["cumulative_gain"] <= b["cumulative_gain"] for a, b in zip(lift, lift[1:]))


def test_evaluate_predictions_and_plots(tmp_path):
    scale = MasterScale.load()
    rng = np.random.default_rng(3)
    p = np.clip(rng.lognormal(np.log(0.03), 0.9, 5000), 0.0005, 0.9)
    y = (rng.random(len(p)) < p).astype(int)
    pred = pd.DataFrame(
        {
            "pd": p,
            "score": scale.score(p),
            "grade": scale.grade(p).astype(str),
            "class": scale.risk_class(p).astype(str),
        }
    )
    out = ev.evaluate_predictions(y, pred, scale, train_score=scale.score(p[::-1]))
    m = out["metrics"]
    assert m["n"] == 5000 and 0.6 < m["auc"] < 0.95 and m["classes_rejected"] == 0
    assert m["psi_score_train_test"] == pytest.approx(0.0, abs=1e-9)
    assert [r["group"] for r in out["by_grade"]] == [g.grade for g in scale.grades]
    paths = ev.write_plots(
        tmp_path, y, pred, out, pd.DataFrame({"feature": ["a", "b"], "gain": [2.0, 1.0], "mean_abs_shap": [0.2, 0.1]})
    )
    assert {p.name for p in paths} == {
        "roc.png",
        "calibration.png",
        "score_by_class.png",
        "class_distribution.png",
        "feature_importance.png",
    }
    assert all(p.stat().st_size > 5000 and p.read_bytes()[:4] == b"\x89PNG" for p in paths)
