"""Calibrators: scikit-learn conventions, monotonicity, serialisation and the choice between them."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils import estimator_checks as ec

from training.bundle import apply_calibration
from training.calibration import IsotonicCalibrator, PlattCalibrator, choose_calibrator
from training.scorecard import WoEScorecard

CALIBRATORS = [PlattCalibrator, IsotonicCalibrator]
# The scikit-learn checks that do not depend on the shape of X: a calibrator takes exactly one
# column (the model margin) and the scorecard needs named, binary-labelled frames, so the
# data-driven checks are replaced by the targeted tests below.
CONVENTION_CHECKS = [
    ec.check_no_attributes_set_in_init,
    ec.check_parameters_default_constructible,
    ec.check_get_params_invariance,
    ec.check_set_params,
    ec.check_estimator_cloneable,
    ec.check_estimator_repr,
    ec.check_estimator_tags_renamed,
    ec.check_valid_tag_types,
    ec.check_mixin_order,
    ec.check_do_not_raise_errors_in_init_or_set_params,
]


def _margin_data(n=4000, seed=0, a=0.8, b=-0.5):
    rng = np.random.default_rng(seed)
    m = rng.normal(-3, 1.2, n)
    y = (rng.random(n) < 1 / (1 + np.exp(-(a * m + b)))).astype(int)
    return m, y


@pytest.mark.parametrize("make", [*CALIBRATORS, WoEScorecard], ids=lambda m: m.__name__)
@pytest.mark.parametrize("check", CONVENTION_CHECKS, ids=lambda c: c.__name__)
def test_sklearn_conventions(make, check):
    check(make.__name__, make())


@pytest.mark.parametrize("make", CALIBRATORS)
def test_fit_returns_self_keeps_params_and_sets_learned_state(make):
    m, y = _margin_data()
    est = make()
    params = est.get_params()
    assert est.fit(m.reshape(-1, 1), y) is est
    assert est.get_params() == params
    assert est.n_features_in_ == 1 and list(est.classes_) == [0, 1]
    with pytest.raises(NotFittedError):
        make().predict_pd(m)
    clone(est)  # an unfitted copy with the same params


@pytest.mark.parametrize("make", CALIBRATORS)
def test_pd_is_non_decreasing_in_margin_and_serialises(make):
    m, y = _margin_data()
    est = make().fit(m, y)
    grid = np.linspace(-10, 5, 500)
    p = est.predict_pd(grid)
    assert np.all(np.diff(p) >= 0)
    assert np.all((p > 0) & (p < 1))
    np.testing.assert_allclose(apply_calibration(est.to_dict(), grid), p)
    again = pickle.loads(pickle.dumps(est))
    np.testing.assert_allclose(again.predict_pd(grid), p)
    np.testing.assert_allclose(est.predict_proba(grid)[:, 1], p)


def test_platt_recovers_a_logistic_link():
    m, y = _margin_data(n=50_000, a=0.8, b=-0.5)
    est = PlattCalibrator().fit(m, y)
    assert est.a_ == pytest.approx(0.8, abs=0.08)
    assert est.b_ == pytest.approx(-0.5, abs=0.25)


def test_choice_follows_cross_validated_log_loss():
    m, y = _margin_data(n=6000)
    best, losses = choose_calibrator(m, y, seed=1)
    assert isinstance(best, PlattCalibrator)  # the truth is logistic: Platt generalises better
    assert set(losses) == {"platt", "isotonic"} and losses["platt"] <= losses["isotonic"]
    # a step-shaped truth that no logistic curve follows
    rng = np.random.default_rng(3)
    m2 = rng.normal(0, 1, 6000)
    y2 = (rng.random(6000) < np.where(m2 > 0.5, 0.3, 0.02)).astype(int)
    best2, losses2 = choose_calibrator(m2, y2, seed=1)
    assert isinstance(best2, IsotonicCalibrator) and losses2["isotonic"] < losses2["platt"]


def test_rejects_more_than_one_column_and_one_class():
    m, y = _margin_data(n=200)
    with pytest.raises(ValueError, match="one column"):
        PlattCalibrator().fit(np.column_stack([m, m]), y)
    with pytest.raises(ValueError, match="both classes"):
        IsotonicCalibrator().fit(m, np.zeros_like(y))
