"""The candidate models of bring-your-own selection and their out-of-fold margins (``training.select``).

* ``lightgbm_small`` / ``lightgbm_additive`` - LightGBM variants for small tables
  (:func:`variant_params`; ``lightgbm`` is the pipeline's own cross-fit, ``training.lgbm``);
* ``scorecard`` - the WoE logistic scorecard (``training.scorecard``), fitted per fold on the
  booster rows of the other folds (:func:`fit_scorecard`, :func:`scorecard_oof`);
* ``logistic`` - a one-hot logistic regression: numerics median-imputed with a missing indicator and
  standardised, categoricals one-hot (missing a level of its own), L2 strength by inner 5-fold log
  loss; a numeric coefficient against a stated risk direction drops that feature
  (:func:`fit_logistic`, :func:`logistic_oof`);
* the ``blend``'s stacker (:func:`stack_weights`).

Each out-of-fold function returns log-odds margins of the calibration rows from models that never
saw that row's fold, and the seconds it took; :func:`training.select.select` compares them.
"""

from __future__ import annotations

import time

import numpy as np

from training.bundle import ModelInput, decode
from training.master_scale import MasterScale


def variant_params(name: str, base: dict, n_rows: int) -> dict:
    """LightGBM parameters of a variant (``base``: ``training.lgbm.base_params`` of the table)."""
    if name == "lightgbm":
        return dict(base)
    leaf = int(min(50, max(10, n_rows // 100)))
    # one thread, as for the base cross-fit of a table (see fit_selected): the second only waits
    base = {**base, "num_threads": 1}
    if name == "lightgbm_small":
        return {
            **base,
            "learning_rate": 0.02,
            "num_leaves": 7,
            "max_depth": 3,
            "min_data_in_leaf": leaf,
            "feature_fraction": 0.7,
            "lambda_l2": 10.0,
            "cat_smooth": 30.0,
            "min_data_per_group": 20,
            "max_cat_threshold": 8,
        }
    if name == "lightgbm_additive":
        return {
            **base,
            "learning_rate": 0.05,
            "num_leaves": 2,
            "max_depth": 1,
            "min_data_in_leaf": leaf,
            "feature_fraction": 1.0,
            "lambda_l2": 5.0,
            "cat_smooth": 30.0,
            "min_data_per_group": 20,
            "max_cat_threshold": 8,
        }
    raise ValueError(f"unknown LightGBM variant {name!r}")


def fit_scorecard(
    X: np.ndarray, y: np.ndarray, rows: np.ndarray, features: list[ModelInput], scale: MasterScale
) -> dict:
    """The WoE scorecard's spec fitted on ``rows`` of the encoded matrix (decoded as serving decodes it)."""
    from training.scorecard import WoEScorecard

    frame = decode(X[rows], features)
    sc = WoEScorecard(
        directions={f.name: f.direction for f in features},
        categorical=[f.name for f in features if f.is_categorical],
        **scale.score_config.model_dump(),
    ).fit(frame, y[rows])
    return sc.spec_


def scorecard_oof(
    X: np.ndarray,
    y: np.ndarray,
    fit_rows: np.ndarray,
    cal_rows: np.ndarray,
    fold: np.ndarray,
    features: list[ModelInput],
    scale: MasterScale,
) -> tuple[np.ndarray, float]:
    """Out-of-fold scorecard log-odds of ``cal_rows`` (fold k scored by a scorecard of the other folds'
    booster rows), and the seconds it took."""
    from training.scorecard import scorecard_logit

    started = time.perf_counter()
    oof = np.empty(len(cal_rows))
    for k in np.unique(fold[cal_rows]):
        spec = fit_scorecard(X, y, fit_rows[fold[fit_rows] != k], features, scale)
        out = fold[cal_rows] == k
        oof[out] = scorecard_logit(spec, decode(X[cal_rows[out]], features))
    return oof, time.perf_counter() - started


def _design(X: np.ndarray, features: list[ModelInput], rows: np.ndarray) -> tuple[list[dict], list[dict], list]:
    """The one-hot design's parts learnt on ``rows``: numeric imputation and scaling, categorical levels."""
    numeric, categorical = [], []
    for j, f in enumerate(features):
        x = X[rows, j]
        if f.is_categorical:
            seen = np.unique(x[~np.isnan(x)]).astype(int)
            categorical.append(
                {"name": f.name, "j": j, "levels": [int(c) for c in seen], "has_missing": bool(np.isnan(x).any())}
            )
        else:
            miss = np.isnan(x)
            median = float(np.median(x[~miss])) if (~miss).any() else 0.0
            filled = np.where(miss, median, x)
            sd = float(filled.std()) or 1.0
            numeric.append(
                {
                    "name": f.name,
                    "j": j,
                    "median": median,
                    "mean": float(filled.mean()),
                    "sd": sd,
                    "has_missing": bool(miss.any()),
                    "missing_mean": float(miss.mean()),
                    "direction": f.direction,
                }
            )
    return numeric, categorical, []


def _design_matrix(X: np.ndarray, numeric: list[dict], categorical: list[dict]) -> tuple[np.ndarray, list]:
    cols, names = [], []
    for t in numeric:
        x = X[:, t["j"]]
        miss = np.isnan(x)
        cols.append((np.where(miss, t["median"], x) - t["mean"]) / t["sd"])
        names.append(("num", t["name"]))
        if t["has_missing"]:
            cols.append(miss.astype(float))
            names.append(("miss", t["name"]))
    for t in categorical:
        x = X[:, t["j"]]
        for c in t["levels"]:
            cols.append((x == c).astype(float))
            names.append(("cat", t["name"], c))
        if t["has_missing"]:
            cols.append(np.isnan(x).astype(float))
            names.append(("catmiss", t["name"]))
    return (np.column_stack(cols) if cols else np.zeros((len(X), 0))), names


def fit_logistic(
    X: np.ndarray, y: np.ndarray, rows: np.ndarray, features: list[ModelInput], *, seed: int, C: float | None = None
) -> dict:
    """One-hot logistic regression on ``rows``, its L2 strength ``C`` or else by 5-fold cross-validated log
    loss over 10 values; a numeric feature whose coefficient goes against its stated risk direction is left
    out and the model refitted. Returns the JSON-able spec ``training.bundle.logistic_terms`` scores."""
    import warnings

    from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
    from sklearn.model_selection import StratifiedKFold

    numeric, categorical, _ = _design(X, features, rows)
    y_r = y[rows].astype(int)
    n_splits = int(max(2, min(5, np.bincount(y_r, minlength=2).min())))
    while True:
        D, names = _design_matrix(X[rows], numeric, categorical)
        with warnings.catch_warnings():  # scikit-learn's notes on attribute renames and slow convergence
            warnings.simplefilter("ignore")
            if C is None:
                lr = LogisticRegressionCV(
                    Cs=10,
                    cv=StratifiedKFold(n_splits, shuffle=True, random_state=seed),
                    scoring="neg_log_loss",
                    max_iter=2000,
                ).fit(D, y_r)
                chosen = float(np.ravel(lr.C_)[0])
            else:
                lr, chosen = LogisticRegression(C=C, max_iter=2000).fit(D, y_r), C
        coef = dict(zip(names, lr.coef_[0]))
        wrong = [t for t in numeric if t["direction"] and coef[("num", t["name"])] * t["direction"] < 0]
        if not wrong:
            break
        numeric = [t for t in numeric if t not in wrong]
    spec = {"kind": "logistic", "C": chosen, "intercept": float(lr.intercept_[0]), "numeric": [], "categorical": []}
    centred = spec["intercept"]
    for t in numeric:
        c, m = float(coef[("num", t["name"])]), float(coef.get(("miss", t["name"]), 0.0))
        spec["numeric"].append(
            {
                "name": t["name"],
                "median": t["median"],
                "mean": t["mean"],
                "sd": t["sd"],
                "coef": c,
                "missing_coef": m,
                "missing_mean": t["missing_mean"],
            }
        )
        centred += m * t["missing_mean"]
    for t in categorical:
        f = features[t["j"]]
        coefs = {f.categories[c]: float(coef[("cat", t["name"], c)]) for c in t["levels"]}
        missing = float(coef.get(("catmiss", t["name"]), 0.0))
        x = X[rows, t["j"]]
        table = np.array([coefs.get(f.categories[int(v)], 0.0) if v == v else missing for v in x])
        spec["categorical"].append({"name": t["name"], "coefs": coefs, "missing": missing, "mean": float(table.mean())})
        centred += float(table.mean())
    spec["centred_intercept"] = centred
    return spec


def logistic_oof(
    X: np.ndarray,
    y: np.ndarray,
    fit_rows: np.ndarray,
    cal_rows: np.ndarray,
    fold: np.ndarray,
    features: list[ModelInput],
    *,
    seed: int,
) -> tuple[np.ndarray, float]:
    """Out-of-fold log-odds of the one-hot logistic model on ``cal_rows`` and the seconds it took.

    The L2 strength is chosen once, by cross-validation on all ``fit_rows`` (one number; choosing it
    again inside every fold multiplied the time for no measurable difference), then every fold refits."""
    from training.bundle import logistic_terms

    started = time.perf_counter()
    C = fit_logistic(X, y, fit_rows, features, seed=seed)["C"]
    oof = np.empty(len(cal_rows))
    for k in np.unique(fold[cal_rows]):
        spec = fit_logistic(X, y, fit_rows[fold[fit_rows] != k], features, seed=seed, C=C)
        out = fold[cal_rows] == k
        intercept, terms = logistic_terms(spec, X[cal_rows[out]], features)
        oof[out] = intercept + terms.sum(axis=1)
    return oof, time.perf_counter() - started


def stack_weights(margins: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Logistic stacker on margin columns: (intercept, weight per column)."""
    from sklearn.linear_model import LogisticRegression

    lr = LogisticRegression(C=1e4, max_iter=1000).fit(margins, y)
    return np.concatenate([lr.intercept_, lr.coef_[0]])
