"""Calibration of a raw model score (LightGBM log-odds margin) to a 12-month PD.

Two scikit-learn-compatible calibrators, fitted on the out-of-time validation window:

- :class:`PlattCalibrator`: ``PD = 1 / (1 + exp(-(a * margin + b)))``; smooth, two parameters,
  keeps the ranking exactly.
- :class:`IsotonicCalibrator`: a non-decreasing step function of the margin; follows any
  monotone miscalibration but ties neighbouring scores.

:func:`choose_calibrator` picks the one with the lower validation log loss. An in-sample log
loss would always favour isotonic (it has as many steps as it likes), so the comparison uses
5-fold cross-validated log loss inside the validation window; the winner is then refitted on
the whole window. Both are non-decreasing in the margin, so a monotone booster stays monotone
after calibration.

A fitted calibrator serialises to a small JSON-able dict (:meth:`to_dict`), which the serving
bundle stores and :func:`training.bundle.apply_calibration` applies.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.model_selection import StratifiedKFold
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_array, check_is_fitted, check_X_y

from training.bundle import PD_EPS, apply_calibration


def _margin(X) -> np.ndarray:
    """The single margin column of X as a 1-D float array."""
    arr = np.asarray(X, dtype=np.float64)
    if arr.ndim == 2:
        if arr.shape[1] != 1:
            raise ValueError(f"a calibrator takes one column (the model margin), got {arr.shape[1]}")
        arr = arr[:, 0]
    return arr


class _Calibrator(ClassifierMixin, BaseEstimator):
    """Shared predict/predict_proba for the binary calibrators."""

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        return tags

    def _check_fit_input(self, X, y) -> tuple[np.ndarray, np.ndarray]:
        X, y = check_X_y(X, y, ensure_2d=False)
        check_classification_targets(y)
        self.classes_ = np.unique(y)
        if len(self.classes_) != 2:
            raise ValueError(f"calibration needs both classes, got {self.classes_.tolist()}")
        self.n_features_in_ = 1
        return _margin(X), (y == self.classes_[1]).astype(np.float64)

    def predict_pd(self, X) -> np.ndarray:
        """Calibrated PD of each margin in X."""
        check_is_fitted(self)
        return apply_calibration(self._params(), _margin(check_array(X, ensure_2d=False)))

    def to_dict(self) -> dict:
        """The fitted parameters as JSON-able values (what the serving bundle stores)."""
        check_is_fitted(self)
        return {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in self._params().items()}

    def predict_proba(self, X) -> np.ndarray:
        p = self.predict_pd(X)
        return np.column_stack([1.0 - p, p])

    def predict(self, X) -> np.ndarray:
        check_is_fitted(self)
        return self.classes_[(self.predict_pd(X) >= 0.5).astype(int)]


class PlattCalibrator(_Calibrator):
    """Logistic (Platt) calibration of a margin.

    Args:
        C: inverse L2 strength of the two-parameter logistic fit (large: nearly unpenalised).
    """

    def __init__(self, C: float = 1e4):
        self.C = C

    def fit(self, X, y) -> "PlattCalibrator":
        m, target = self._check_fit_input(X, y)
        lr = LogisticRegression(C=self.C, solver="lbfgs", max_iter=1000).fit(m[:, None], target)
        self.a_ = float(lr.coef_[0, 0])
        self.b_ = float(lr.intercept_[0])
        return self

    def _params(self) -> dict:
        return {"kind": "platt", "a": self.a_, "b": self.b_}


class IsotonicCalibrator(_Calibrator):
    """Isotonic (monotone step-function) calibration of a margin, interpolated between steps.

    Args:
        y_min: smallest PD it returns (an observed zero default rate is not a zero PD).
    """

    def __init__(self, y_min: float = PD_EPS):
        self.y_min = y_min

    def fit(self, X, y) -> "IsotonicCalibrator":
        m, target = self._check_fit_input(X, y)
        iso = IsotonicRegression(y_min=self.y_min, y_max=1.0 - PD_EPS, increasing=True, out_of_bounds="clip")
        iso.fit(m, target)
        self.x_ = np.asarray(iso.X_thresholds_, dtype=np.float64)
        self.y_ = np.asarray(iso.y_thresholds_, dtype=np.float64)
        return self

    def _params(self) -> dict:
        return {"kind": "isotonic", "x": self.x_, "y": self.y_}


def choose_calibrator(margin: np.ndarray, y: np.ndarray, *, seed: int = 0, folds: int = 5) -> tuple[
    PlattCalibrator | IsotonicCalibrator, dict[str, float]
]:
    """Fit both calibrators on the validation window; keep the lower cross-validated log loss.

    Returns the winner refitted on the whole window, and the cross-validated log loss of each.
    """
    margin = np.asarray(margin, dtype=np.float64)
    y = np.asarray(y).astype(int)
    candidates = {"platt": PlattCalibrator, "isotonic": IsotonicCalibrator}
    n_splits = int(min(folds, np.bincount(y, minlength=2).min()))
    losses: dict[str, float] = {}
    for name, make in candidates.items():
        if n_splits < 2:
            losses[name] = float(log_loss(y, make().fit(margin, y).predict_pd(margin), labels=[0, 1]))
            continue
        pred = np.empty_like(margin)
        for fit_idx, out_idx in StratifiedKFold(n_splits, shuffle=True, random_state=seed).split(margin, y):
            pred[out_idx] = make().fit(margin[fit_idx], y[fit_idx]).predict_pd(margin[out_idx])
        losses[name] = float(log_loss(y, pred, labels=[0, 1]))
    best = min(losses, key=losses.get)
    return candidates[best]().fit(margin, y), losses
