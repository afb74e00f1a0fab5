"""The truth check's figures on small synthetic frames with known answers (no MLflow, no market)."""

from __future__ import annotations

import math
from datetime import date

import numpy as np
import pandas as pd
import polars as pl
import pytest

from training.master_scale import MasterScale
from truth_check.check import (
    TruthCheckError,
    calibration_line,
    class_agreement,
    evaluation_rows,
    expit,
    fit_ceiling,
    headline,
    logit,
    section,
)


@pytest.fixture(scope="module")
def scale() -> MasterScale:
    return MasterScale.load()


def _frame(true_pd: np.ndarray, pd_: np.ndarray, scale: MasterScale, **extra) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "merchant_id": [f"M{i:05d}" for i in range(len(true_pd))],
            "true_pd_12m": true_pd,
            "pd": pd_,
            "grade": scale.grade(pd_),
            "class": scale.risk_class(pd_),
            **extra,
        }
    )


@pytest.fixture(scope="module")
def true_pd() -> np.ndarray:
    """5,000 PDs spread over all four classes (median ~3.5%)."""
    return expit(np.random.default_rng(3).normal(-3.3, 1.2, 5000))


def test_perfect_model(true_pd, scale):
    s = section(_frame(true_pd, true_pd, scale, ceiling_pd=true_pd), scale)
    assert s["spearman"] == pytest.approx(1.0)
    assert s["kappa"] == pytest.approx(1.0)
    assert s["calibration"]["slope"] == pytest.approx(1.0) and s["calibration"]["intercept"] == pytest.approx(
        0.0, abs=1e-9
    )
    assert s["spearman_ratio"] == pytest.approx(1.0) and s["kappa_ratio"] == pytest.approx(1.0)
    matrix = np.array(s["confusion"]["matrix"])
    assert (matrix == np.diag(np.diag(matrix))).all() and matrix.sum() == len(true_pd)
    assert s["class_share"]["model"] == s["class_share"]["truth"]
    assert all(0 < s["class_share"]["truth"][c] < 1 for c in "ABCD")
    for row in s["by_class"] + s["by_grade"]:
        assert row["n"] == row["n_true"]
        if row["n"]:
            assert row["mean_pd"] == pytest.approx(row["mean_true_pd"])


def test_shuffled_model_has_no_agreement(true_pd, scale):
    shuffled = np.random.default_rng(5).permutation(true_pd)
    s = section(_frame(true_pd, shuffled, scale), scale)
    assert abs(s["spearman"]) < 0.05
    assert abs(s["kappa"]) < 0.05
    assert abs(s["calibration"]["slope"]) < 0.05
    assert s["class_share"]["model"] == pytest.approx(s["class_share"]["truth"])  # same PDs, other merchants


@pytest.mark.parametrize("shift", [math.log(2), -math.log(2)])
def test_odds_shift_shows_in_the_intercept(true_pd, scale, shift):
    """PD odds halved (shift log 2: the model under-predicts) or doubled: slope 1, intercept = the shift."""
    pd_ = expit(logit(true_pd) - shift)
    line = calibration_line(pd_, true_pd)
    assert line["slope"] == pytest.approx(1.0, abs=1e-3)
    assert line["intercept"] == pytest.approx(shift, abs=1e-3)
    assert line["offset"] == pytest.approx(shift, abs=1e-3)
    s = section(_frame(true_pd, pd_, scale), scale)
    assert s["spearman"] == pytest.approx(1.0)  # ranks untouched
    assert 0.5 < s["kappa"] < 1.0  # classes shift by about one grade for some merchants
    assert (s["mean_pd"] < s["mean_true_pd"]) == (shift > 0)


def test_over_confident_model_has_slope_below_one(true_pd):
    centre = np.median(logit(true_pd))
    pd_ = expit(centre + 2.0 * (logit(true_pd) - centre))  # logits spread twice as wide
    line = calibration_line(pd_, true_pd)
    assert line["slope"] == pytest.approx(0.5, abs=0.01)  # a few logits clipped at 1e-4
    assert line["offset"] == pytest.approx(np.mean(logit(true_pd) - logit(pd_)))


def test_class_agreement_by_hand():
    truth = ["A", "A", "B", "C", "D", "D"]
    model = ["A", "B", "B", "C", "C", "D"]
    out = class_agreement(model, truth)
    assert out["confusion"]["matrix"] == [[1, 1, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 1, 1]]
    assert out["class_share"]["truth"] == pytest.approx({"A": 2 / 6, "B": 1 / 6, "C": 1 / 6, "D": 2 / 6})
    assert out["class_share"]["model"] == pytest.approx({"A": 1 / 6, "B": 2 / 6, "C": 2 / 6, "D": 1 / 6})
    # quadratic weights (i - j)^2 / 9: two disagreements by one class each -> kappa 1 - 2/9 / expected
    from sklearn.metrics import cohen_kappa_score

    assert out["kappa"] == pytest.approx(cohen_kappa_score(truth, model, weights="quadratic"))
    assert 0.8 < out["kappa"] < 1.0


def test_labels_auc_and_skip(scale):
    true_pd = np.array([0.01, 0.02, 0.05, 0.2, 0.3, 0.4])
    pd_ = np.array([0.02, 0.01, 0.04, 0.3, 0.2, 0.5])
    without = section(_frame(true_pd, pd_, scale, bad=[None] * 6), scale)
    assert without["labels"] == {"rows": 0, "bads": 0, "skipped": "no labelled rows"}
    labelled = section(_frame(true_pd, pd_, scale, bad=pd.array([0, 0, 0, 1, 1, None], dtype="Int8")), scale)
    assert labelled["labels"]["rows"] == 5 and labelled["labels"]["bads"] == 2
    assert labelled["labels"]["auc_pd"] == pytest.approx(1.0)
    assert labelled["labels"]["auc_true_pd"] == pytest.approx(1.0)


def test_empty_population(scale):
    s = section(_frame(np.zeros(0), np.zeros(0), scale, ceiling_pd=np.zeros(0)), scale)
    assert s["rows"] == 0 and s["spearman"] is None and s["kappa"] is None and s["spearman_ratio"] is None
    assert s["calibration"]["slope"] is None


def test_headline_metrics(true_pd, scale):
    s = section(_frame(true_pd, true_pd, scale, ceiling_pd=true_pd), scale)
    empty = section(_frame(np.zeros(0), np.zeros(0), scale, ceiling_pd=np.zeros(0)), scale)
    metrics = headline({"all": s, "unseen": empty})
    for key in ("spearman", "kappa", "ceiling_spearman", "ceiling_kappa", "spearman_ratio", "kappa_ratio"):
        assert metrics[f"truth.{key}"] == pytest.approx(1.0)
        assert f"truth.unseen.{key}" not in metrics  # no unseen merchants: nothing to log, no NaN
    assert metrics["truth.unseen.rows"] == 0


def _keys(rows):
    return pl.DataFrame(rows, schema={"merchant_id": pl.String, "as_of": pl.Date}, orient="row")


def test_evaluation_rows_latest_common_date_less_fitted_and_defaulted():
    d1, d2, d3 = date(2024, 1, 1), date(2024, 2, 1), date(2024, 3, 1)
    features = _keys([("M1", d1), ("M2", d1), ("M1", d2), ("M2", d2), ("M3", d2), ("M1", d3)]).with_columns(
        x=pl.lit(1.0)
    )
    truth = _keys([(m, d) for m in ("M1", "M2", "M3") for d in (d1, d2)]).with_columns(
        true_pd_12m=pl.Series([0.01, 0.02, 0.03, 0.04, 0.05, 1.0])
    )  # M3 at d2 in default
    rows, facts = evaluation_rows(features, truth)  # d3 has no truth: d2 is the latest in both
    assert rows["as_of"].unique().to_list() == [d2] and rows["merchant_id"].to_list() == ["M1", "M2"]
    assert facts["in_default"] == 1 and facts["fitted_rows_dropped"] == 0
    rows, facts = evaluation_rows(features, truth, [d1, d2], fitted=_keys([("M1", d1), ("M2", d2)]))
    assert sorted(zip(rows["merchant_id"], rows["as_of"])) == [("M1", d2), ("M2", d1)]
    assert facts["fitted_rows_dropped"] == 2 and facts["as_of"] == [str(d1), str(d2)]
    with pytest.raises(TruthCheckError, match="not in both"):
        evaluation_rows(features, truth, [d3])


def test_ceiling_recovers_a_known_signal():
    """logit(true PD) = x0 + a category effect: the ceiling ranks held-apart rows almost perfectly."""
    rng = np.random.default_rng(1)
    n = 3000
    x0, cat = rng.normal(size=n), rng.integers(0, 4, size=n).astype(float)
    true_pd = expit(-3 + x0 + np.array([0.0, 0.5, 1.0, -0.5])[cat.astype(int)])
    X = np.column_stack([x0, cat, rng.normal(size=n)])
    groups = np.repeat(np.arange(n // 10), 10)
    fit = fit_ceiling(X[:2000], true_pd[:2000], groups[:2000], categorical=[1], seed=7, max_rounds=300)
    assert fit.holdout_merchants == 40 and fit.train_rows + fit.holdout_rows == 2000
    assert fit.best_iteration > 10 and fit.holdout_rmse_logit < 0.4
    from scipy.stats import spearmanr

    assert spearmanr(fit.predict_pd(X[2000:]), true_pd[2000:]).statistic > 0.97
