"""The linear model kinds' arithmetic on encoded rows: the scorecard's frame, its points, the logistic terms.

Split from :mod:`training.bundle` (which re-exports these names) so the bundle module keeps to
loading, margins and calibration; the scorecard and logistic kinds' margins and reasons come from here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from training.bundle import ModelInput


def decode(X: np.ndarray, features: list[ModelInput]) -> pd.DataFrame:
    """The inverse of :func:`training.bundle.encode` as a frame the scorecard reads: numbers as floats, a
    categorical's code as its training category (NaN -> None: unseen or missing)."""
    cols = {}
    for j, f in enumerate(features):
        if f.is_categorical:
            cats = np.array([*f.categories, None], dtype=object)
            codes = np.where(np.isnan(X[:, j]), len(f.categories), X[:, j]).astype(np.intp)
            cols[f.name] = cats[codes]
        else:
            cols[f.name] = X[:, j]
    return pd.DataFrame(cols)


def scorecard_contributions(spec: dict, X: np.ndarray, features: list[ModelInput]) -> np.ndarray:
    """Per row and feature, the margin the row's bin adds over the feature's best (lowest-WoE) bin:
    ``coef * (woe - min woe)`` >= 0; zero for features the scorecard does not use."""
    from training.scorecard import (
        _bin_codes,  # lazily: scikit-learn only for scorecard bundles
    )

    frame = decode(X, features)
    out = np.zeros((len(X), len(features)))
    col = {f.name: j for j, f in enumerate(features)}
    for f in spec["features"]:
        codes, labels = _bin_codes(f, frame[f["name"]])
        woe = np.array([f["woe"].get(label, 0.0) for label in labels], dtype=np.float64)
        best = min(f["woe"].values()) if f["woe"] else 0.0
        out[:, col[f["name"]]] = f["coef"] * (woe[codes] - best)
    return out


def logistic_terms(spec: dict, X: np.ndarray, features: list[ModelInput]) -> tuple[float, np.ndarray]:
    """A one-hot logistic model's (intercept, per-feature terms centred on the training rows' mean):
    the margin is ``intercept + terms.sum(1)``; a positive term raised the risk against the average row
    (for a linear model the exact SHAP value). See ``training.candidates.fit_logistic`` for the spec."""
    col = {f.name: j for j, f in enumerate(features)}
    terms = np.zeros((len(X), len(features)))
    for t in spec["numeric"]:
        x = X[:, col[t["name"]]]
        miss = np.isnan(x)
        z = (np.where(miss, t["median"], x) - t["mean"]) / t["sd"]
        terms[:, col[t["name"]]] = t["coef"] * z + t["missing_coef"] * (miss - t["missing_mean"])
    for t in spec["categorical"]:
        f = features[col[t["name"]]]
        coefs = np.array([t["coefs"].get(c, 0.0) for c in f.categories] + [t["missing"]], dtype=np.float64)
        x = X[:, col[t["name"]]]
        codes = np.where(np.isnan(x), len(f.categories), x).astype(np.intp)
        terms[:, col[t["name"]]] = coefs[codes] - t["mean"]
    return spec["centred_intercept"], terms
