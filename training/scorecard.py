"""The challenger: a weight-of-evidence logistic scorecard with a points table.

How each feature is binned:

* numeric with a known risk direction (catalogue ``risk_direction`` +1 / -1): optbinning's
  ``OptimalBinning`` with ``monotonic_trend`` ascending / descending, so the default rate of
  the bins moves with the direction the catalogue states (CART pre-binning, then an exact
  constraint solver; at most ``max_bins`` bins, each with at least ``min_bin_share`` of the
  rows and ``min_bin_events`` bads);
* numeric with no known direction: feature-engine's ``EqualFrequencyDiscretiser``
  (``undirected_bins`` quantile bins), adjacent bins merged until each holds
  ``min_bin_events`` bads;
* categorical: one bin per category; categories under ``min_bin_share`` of the rows or with
  fewer than ``min_bin_events`` bads share an ``other`` bin, which also takes unseen values;
* missing values always get their own ``missing`` bin.

Bins are then encoded with feature-engine's ``WoEEncoder`` (WoE = ln(share of bads / share of
goods): positive means riskier), features with information value under ``min_iv`` are dropped,
so is the lower-IV one of two features whose WoE columns correlate beyond ``max_corr``, and
scikit-learn's ``LogisticRegression`` is fitted on the remaining WoE columns. A feature whose
coefficient comes out negative (collinearity turned its WoE against itself) is dropped and the
model refitted, as scorecard practice requires.

Points: with the master scale's factor (``pdo / ln 2``) and offset, a bin's points are
``-factor * coef * woe + (offset - factor * intercept) / n_features``, so the points of a
merchant's bins add up to the score of its PD on the same scale as the champion. The points
table (feature, bin, count, bads, event rate, WoE, IV, points) is logged as CSV.

The fitted scorecard is the JSON-able :attr:`WoEScorecard.spec_`; :func:`scorecard_predict`
scores a frame from that spec with NumPy alone (no optbinning, no scikit-learn), which is what
the logged challenger model does.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

from training.bundle import MissingFeatureError, apply_calibration
from training.master_scale import MasterScale, points_scale
from training.result import Scores

MISSING = "missing"
OTHER = "other"


def _bin_label(lo: float, hi: float) -> str:
    fmt = lambda v: "-inf" if v == -math.inf else ("inf" if v == math.inf else f"{v:.6g}")  # noqa: E731
    return f"[{fmt(lo)}, {fmt(hi)})"


class WoEScorecard(ClassifierMixin, BaseEstimator):
    """Weight-of-evidence logistic scorecard (see the module docstring).

    Args:
        directions: feature -> +1 (riskier as it grows), -1 (safer) or 0 (unknown).
        categorical: names of categorical features (binned by value).
        max_bins: most bins per directed numeric feature.
        undirected_bins: quantile bins for a numeric feature with no known direction.
        min_bin_share: smallest share of rows in a bin (and in a category of its own); 2% lets a rare,
            strong state keep its own bin (currently past due: ~3% of rows, default rate ~50%).
        min_bin_events: fewest bads in a bin, so every WoE is finite.
        min_iv: information value below which a feature is left out.
        max_corr: of two features whose WoE columns correlate beyond this, the lower-IV one is left out.
        C: inverse L2 strength of the logistic regression.
        base_score, base_odds, pdo: the points scale (default: the master scale's).

    Example:
        >>> sc = WoEScorecard(directions={"dpd": 1}).fit(X, y)   # doctest: +SKIP
        >>> sc.predict_proba(X)[:, 1]; sc.points_table_          # doctest: +SKIP
    """

    def __init__(
        self,
        directions: dict[str, int] | None = None,
        categorical: list[str] | None = None,
        max_bins: int = 8,
        undirected_bins: int = 5,
        min_bin_share: float = 0.02,
        min_bin_events: int = 5,
        min_iv: float = 0.02,
        max_corr: float = 0.9,
        C: float = 1.0,
        base_score: float = 600.0,
        base_odds: float = 50.0,
        pdo: float = 20.0,
    ):
        self.directions, self.categorical = directions, categorical
        self.max_bins, self.undirected_bins = max_bins, undirected_bins
        self.min_bin_share, self.min_bin_events = min_bin_share, min_bin_events
        self.min_iv, self.max_corr, self.C = min_iv, max_corr, C
        self.base_score, self.base_odds, self.pdo = base_score, base_odds, pdo

    # -- fitting ---------------------------------------------------------------------------
    def fit(self, X: pd.DataFrame, y) -> WoEScorecard:
        from feature_engine.encoding import WoEEncoder
        from sklearn.linear_model import LogisticRegression

        if not isinstance(X, pd.DataFrame):
            X = pd.DataFrame(np.asarray(X), columns=[f"x{j}" for j in range(np.shape(X)[1])])
        y = np.asarray(y).astype(int)
        self.classes_ = np.array([0, 1])
        self.feature_names_in_ = np.array(X.columns, dtype=object)
        self.n_features_in_ = X.shape[1]
        directions = dict(self.directions or {})
        categorical = set(self.categorical or [])
        bins = {}
        for name in X.columns:
            if name in categorical:
                bins[name] = self._fit_categorical(X[name], y)
            else:
                bins[name] = self._fit_numeric(X[name], y, int(directions.get(name, 0)))
        # categorical bin labels: feature-engine maps categories, not every row's string (much faster)
        labels = pd.DataFrame({name: _bin_categorical(bins[name], X[name]) for name in X.columns}, index=X.index)
        n_events = max(int(y.sum()), 1)
        encoder = WoEEncoder(variables=list(X.columns), fill_value=0.5 / n_events)
        woe = encoder.fit_transform(labels, pd.Series(y, index=X.index))
        stats = _bin_stats(labels, y, encoder.encoder_dict_)
        iv = stats.groupby("feature", sort=False)["iv"].sum()
        selected = _decorrelate([c for c in X.columns if iv.get(c, 0.0) >= self.min_iv], iv, woe, self.max_corr)
        if not selected:  # keep the single strongest feature rather than an empty model
            selected = [iv.idxmax()]
        while True:
            lr = LogisticRegression(C=self.C, solver="newton-cholesky", max_iter=200).fit(woe[selected].to_numpy(), y)
            negative = [f for f, c in zip(selected, lr.coef_[0]) if c < 0]
            if not negative or len(selected) == 1:
                break
            selected = [f for f in selected if f not in negative]
        self.selected_ = selected
        self.information_value_ = {k: float(v) for k, v in iv.items()}
        self.spec_ = self._spec(bins, encoder.encoder_dict_, lr, selected)
        self.points_table_ = self._points_table(stats)
        return self

    def _fit_numeric(self, x: pd.Series, y: np.ndarray, direction: int) -> dict:
        values = pd.to_numeric(x, errors="coerce").to_numpy(dtype=np.float64)
        ok = ~np.isnan(values)
        if direction != 0 and ok.sum() > 0 and len(np.unique(values[ok])) > 1:
            from optbinning import OptimalBinning

            ob = OptimalBinning(
                name=str(x.name),
                dtype="numerical",
                solver="cp",
                max_n_prebins=10,
                min_prebin_size=self.min_bin_share / 2,
                max_n_bins=self.max_bins,
                min_bin_size=self.min_bin_share,
                min_bin_n_event=self.min_bin_events,
                monotonic_trend="ascending" if direction > 0 else "descending",
            )
            ob.fit(values[ok], y[ok])
            edges = [float(s) for s in ob.splits]
        elif ok.sum() > 0:
            from feature_engine.discretisation import EqualFrequencyDiscretiser

            disc = EqualFrequencyDiscretiser(variables=["x"], q=self.undirected_bins)
            try:
                disc.fit(pd.DataFrame({"x": values[ok]}))
                edges = [float(e) for e in disc.binner_dict_["x"][1:-1]]
            except ValueError:  # too few distinct values for quantile bins
                edges = []
            edges = _merge_thin(sorted(set(edges)), values[ok], y[ok], self.min_bin_events)
        else:
            edges = []
        bounds = [-math.inf, *edges, math.inf]
        return {
            "type": "numerical",
            "direction": direction,
            "edges": edges,
            "labels": [_bin_label(lo, hi) for lo, hi in zip(bounds, bounds[1:])],
        }

    def _fit_categorical(self, x: pd.Series, y: np.ndarray) -> dict:
        s = x.astype(object).where(x.notna(), None)
        frame = pd.DataFrame({"v": s.to_numpy(), "y": y}).dropna(subset=["v"])
        grouped = frame.groupby("v")["y"].agg(["size", "sum"])
        keep = grouped[(grouped["size"] >= self.min_bin_share * len(y)) & (grouped["sum"] >= self.min_bin_events)]
        return {"type": "categorical", "direction": 0, "groups": {str(v): str(v) for v in sorted(keep.index, key=str)}}

    def _spec(self, bins: dict, woe_dict: dict, lr, selected: list[str]) -> dict:
        factor, offset = points_scale(self.base_score, self.base_odds, self.pdo)
        intercept = float(lr.intercept_[0])
        share = (offset - factor * intercept) / len(selected)
        features = []
        for name, coef in zip(selected, lr.coef_[0]):
            woe = {str(k): float(v) for k, v in woe_dict[name].items()}
            features.append(
                {
                    "name": name,
                    **bins[name],
                    "coef": float(coef),
                    "woe": woe,
                    "points": {k: share - factor * float(coef) * v for k, v in woe.items()},
                    "neutral_points": share,  # an unseen bin: WoE 0
                }
            )
        return {"kind": "scorecard", "intercept": intercept, "factor": factor, "offset": offset, "features": features}

    def _points_table(self, stats: pd.DataFrame) -> pd.DataFrame:
        rows = []
        for f in self.spec_["features"]:
            natural = f["labels"] if f["type"] == "numerical" else [*f["groups"].values(), OTHER]
            order = {label: i for i, label in enumerate([*natural, MISSING])}
            for label, points in sorted(f["points"].items(), key=lambda kv: order.get(kv[0], len(order))):
                rows.append({"feature": f["name"], "bin": label, "points": round(points, 2), "coefficient": f["coef"]})
        table = pd.DataFrame(rows).merge(stats, on=["feature", "bin"], how="left")
        return table[["feature", "bin", "count", "bads", "event_rate", "woe", "iv", "coefficient", "points"]]

    # -- prediction ------------------------------------------------------------------------
    def decision_function(self, X: pd.DataFrame) -> np.ndarray:
        """Log-odds of default (bad:good)."""
        check_is_fitted(self, "spec_")
        return scorecard_logit(self.spec_, X)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        p = 1.0 / (1.0 + np.exp(-self.decision_function(X)))
        return np.column_stack([1.0 - p, p])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)


def _decorrelate(candidates: list[str], iv: pd.Series, woe: pd.DataFrame, max_corr: float) -> list[str]:
    """Greedy by information value: keep a feature unless its WoE correlates beyond ``max_corr``
    with one already kept (collinear WoE columns give unstable, sign-flipping coefficients)."""
    order = sorted(candidates, key=lambda c: -iv[c])
    if len(order) < 2:
        return order
    corr = np.nan_to_num(np.abs(np.corrcoef(woe[order].to_numpy(dtype=np.float64), rowvar=False)))
    kept: list[int] = []
    for j in range(len(order)):
        if all(corr[j, k] <= max_corr for k in kept):
            kept.append(j)
    return [order[j] for j in kept]


def _merge_thin(edges: list[float], x: np.ndarray, y: np.ndarray, min_events: int) -> list[float]:
    """Drop edges until every bin holds at least ``min_events`` bads (and one good)."""
    edges = list(edges)
    while edges:
        idx = np.searchsorted(np.asarray(edges), x, side="right")
        events = np.bincount(idx, weights=y, minlength=len(edges) + 1)
        sizes = np.bincount(idx, minlength=len(edges) + 1)
        thin = np.flatnonzero((events < min_events) | (sizes - events < 1))
        if not len(thin):
            break
        b = int(thin[0])
        edges.pop(b if b < len(edges) else b - 1)  # merge bin b with its right (or left) neighbour
    return edges


def _bin_codes(spec: dict, values) -> tuple[np.ndarray, list[str]]:
    """Bin of each value under one feature's spec: codes into the bin labels, and the labels."""
    if isinstance(values, pd.Series):
        values = values.to_numpy()
    values = np.asarray(values)
    if spec["type"] == "numerical":
        x = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype=np.float64)
        codes = np.searchsorted(np.asarray(spec["edges"], dtype=np.float64), x, side="right")
        codes[np.isnan(x)] = len(spec["labels"])
        return codes, [*spec["labels"], MISSING]
    labels = list(dict.fromkeys([*spec["groups"].values(), OTHER, MISSING]))
    index = {label: i for i, label in enumerate(labels)}
    code_of = {value: index[label] for value, label in spec["groups"].items()}
    other, missing = index[OTHER], index[MISSING]
    codes = np.array(
        [
            missing if v is None or (isinstance(v, float) and math.isnan(v)) else code_of.get(str(v), other)
            for v in values.astype(object)
        ],
        dtype=np.intp,
    )
    return codes, labels


def _assign(spec: dict, values) -> np.ndarray:
    """Bin label of each value under one feature's spec."""
    codes, labels = _bin_codes(spec, values)
    return np.asarray(labels, dtype=object)[codes]


def _bin_categorical(spec: dict, values) -> pd.Categorical:
    """Bin labels as a categorical of the bins that occur (built from codes: no string per row)."""
    codes, labels = _bin_codes(spec, values)
    return pd.Categorical.from_codes(codes, categories=pd.Index(labels, dtype=object)).remove_unused_categories()


def _bin_stats(labels: pd.DataFrame, y: np.ndarray, woe_dict: dict) -> pd.DataFrame:
    """Rows, bads, event rate, WoE and IV contribution of every bin of every feature."""
    rows = []
    n_bad, n_good = max(y.sum(), 1), max(len(y) - y.sum(), 1)
    for name in labels.columns:
        codes, uniques = pd.factorize(labels[name].to_numpy())
        sizes = np.bincount(codes, minlength=len(uniques))
        bads = np.bincount(codes, weights=y, minlength=len(uniques))
        for label, size, bad in zip(uniques, sizes, bads):
            woe = float(woe_dict[name][label])
            dist_bad, dist_good = bad / n_bad, (size - bad) / n_good
            rows.append(
                {
                    "feature": name,
                    "bin": str(label),
                    "count": int(size),
                    "bads": int(bad),
                    "event_rate": float(bad / size),
                    "woe": woe,
                    "iv": float((dist_bad - dist_good) * woe),
                }
            )
    return pd.DataFrame(rows)


def scorecard_logit(spec: dict, frame) -> np.ndarray:
    """Log-odds of default of every row of ``frame`` under a fitted scorecard spec."""
    missing = [f["name"] for f in spec["features"] if f["name"] not in frame.columns]
    if missing:
        raise MissingFeatureError(missing)
    logit = np.full(len(frame), spec["intercept"], dtype=np.float64)
    for f in spec["features"]:
        codes, labels = _bin_codes(f, frame[f["name"]])
        woe = np.array([f["woe"].get(label, 0.0) for label in labels], dtype=np.float64)  # unseen bin: WoE 0
        logit += f["coef"] * woe[codes]
    return logit


def scorecard_predict(spec: dict, frame, scale: MasterScale) -> pd.DataFrame:
    """PD, score, grade and class of every row under a scorecard spec (the challenger's pyfunc)."""
    p = scale.floor(apply_calibration({"kind": "platt", "a": 1.0, "b": 0.0}, scorecard_logit(spec, frame)))
    return Scores.from_pd(scale, p).to_frame(frame.index if isinstance(frame, pd.DataFrame) else None)
