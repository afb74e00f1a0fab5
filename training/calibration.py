"""Calibration of a raw model score (LightGBM log-odds margin) to a 12-month PD.

Two scikit-learn-compatible calibrators, fitted on the out-of-fold margins of the calibration
rows (later than the booster rows, each scored by a booster that never saw its merchant; see
``training.lgbm.crossfit``):

- :class:`PlattCalibrator`: ``PD = 1 / (1 + exp(-(a * margin + b)))``; smooth, two parameters,
  keeps the ranking exactly, extrapolates in logit space.
- :class:`IsotonicCalibrator`: isotonic regression, read as a curve through its blocks' centres
  (each block's default rate; an all-good or all-bad block gets a Jeffreys half-count, so it is not a
  zero or certain PD)
  interpolated in logit space, and beyond the first and last centres a straight logit line with
  the Platt slope: no flat clip that caps the riskiest merchants at the top block's rate or
  floors the safest at the bottom block's.

:func:`choose_calibrator` picks the one with the lower cross-validated log loss; the folds are
grouped by merchant (a merchant's monthly rows share one outcome, so row folds would let a
calibrator see the answer through a sibling row). The winner is then refitted on all rows.
Both are non-decreasing in the margin, so a monotone booster stays monotone after calibration.

A fitted calibrator serialises to a small JSON-able dict (:meth:`to_dict`), which the serving
bundle stores and :func:`training.bundle.apply_calibration` applies.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold
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

    def fit(self, X, y) -> PlattCalibrator:
        m, target = self._check_fit_input(X, y)
        lr = LogisticRegression(C=self.C, solver="lbfgs", max_iter=1000).fit(m[:, None], target)
        self.a_ = float(lr.coef_[0, 0])
        self.b_ = float(lr.intercept_[0])
        return self

    def _params(self) -> dict:
        return {"kind": "platt", "a": self.a_, "b": self.b_}


class IsotonicCalibrator(_Calibrator):
    """Isotonic calibration through block centres, logit-linear tails (see the module docstring)."""

    def fit(self, X, y) -> IsotonicCalibrator:
        m, target = self._check_fit_input(X, y)
        level = IsotonicRegression(increasing=True, out_of_bounds="clip").fit_transform(m, target)
        _, block = np.unique(level, return_inverse=True)
        n = np.bincount(block)
        centre = np.bincount(block, weights=m) / n
        d = np.bincount(block, weights=target)
        rate = np.where((d == 0) | (d == n), (d + 0.5) / (n + 1.0), d / n)  # only an all-good / all-bad block
        self.x_ = centre
        self.y_ = np.clip(np.maximum.accumulate(rate), PD_EPS, 1.0 - PD_EPS)
        self.tail_slope_ = max(PlattCalibrator().fit(m, target).a_, 0.0)
        return self

    def _params(self) -> dict:
        return {"kind": "isotonic", "x": self.x_, "y": self.y_, "tail_slope": self.tail_slope_}


def choose_calibrator(
    margin: np.ndarray, y: np.ndarray, *, groups: np.ndarray | None = None, seed: int = 0, folds: int = 5
) -> tuple[PlattCalibrator | IsotonicCalibrator, dict[str, float]]:
    """Fit both calibrators; keep the lower cross-validated log loss (folds grouped by ``groups``).

    Returns the winner refitted on all rows, and the cross-validated log loss of each.
    """
    margin = np.asarray(margin, dtype=np.float64)
    y = np.asarray(y).astype(int)
    candidates = {"platt": PlattCalibrator, "isotonic": IsotonicCalibrator}
    n_splits = int(min(folds, np.bincount(y, minlength=2).min()))
    if groups is not None:
        n_splits = min(n_splits, len(np.unique(groups)))
    splitter = (
        StratifiedKFold(n_splits, shuffle=True, random_state=seed)
        if groups is None
        else StratifiedGroupKFold(n_splits, shuffle=True, random_state=seed)
    )
    losses: dict[str, float] = {}
    for name, make in candidates.items():
        if n_splits < 2:
            losses[name] = float(log_loss(y, make().fit(margin, y).predict_pd(margin), labels=[0, 1]))
            continue
        pred = np.empty_like(margin)
        for fit_idx, out_idx in splitter.split(margin, y, groups):
            pred[out_idx] = make().fit(margin[fit_idx], y[fit_idx]).predict_pd(margin[out_idx])
        losses[name] = float(log_loss(y, pred, labels=[0, 1]))
    best = min(losses, key=losses.get)
    return candidates[best]().fit(margin, y), losses
