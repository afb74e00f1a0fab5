"""Model selection for bring-your-own tables: candidates compared on the training rows' own
out-of-fold predictions, never on the test rows.

Candidates (each gives an out-of-fold log-odds margin for every calibration row, from models that
never saw that row's fold; the folds are the split's ``fold`` of the calibration rows, the same
folds LightGBM is cross-fitted on):

* ``lightgbm`` - the pipeline's cross-fitted booster (``training.lgbm.crossfit``, its defaults tuned
  for the merchant panel: 15 leaves, leaves of at least 50 rows);
* ``lightgbm_small`` - defaults for small tables: 7 leaves at most 3 deep, leaves of 10-50 rows
  (1 % of the rows), 70 % of the features per tree, stronger L2 and categorical smoothing, a smaller
  learning rate;
* ``lightgbm_additive`` - boosted stumps (2 leaves: one feature per tree, so an additive model with
  non-linear shapes, the tree analogue of a scorecard), learning rate 0.05;
* ``scorecard`` - the WoE logistic scorecard (``training.scorecard``), fitted per fold on the
  booster rows of the other folds;
* ``logistic`` - a one-hot logistic regression, the careful analyst's linear model: numerics
  median-imputed with a missing indicator and standardised, categoricals one-hot (missing a level of
  its own), L2 strength by inner 5-fold log loss; a numeric coefficient against a stated risk
  direction drops that feature. Added because on small, mostly categorical or additive tables it
  beat both LightGBM and the scorecard (whose IV floor and rare-category merging lose signal there);
* ``blend`` - a logistic stacker on the out-of-fold margins of the best LightGBM variant and the
  better linear model (scorecard or logistic), itself cross-fitted over the same folds (fold k's
  weights learnt on the other folds);
  left out when a weight comes out non-positive (a blend that would turn a model against itself).

Every candidate's margin is then calibrated the way the registered model will be (Platt or
isotonic with logit tails, the lower cross-validated log loss; ``training.calibration``), again
fold by fold, so each candidate's out-of-fold PD is what it would have predicted for rows it never
saw. **Rule: the lowest out-of-fold log loss wins, unless a simpler candidate is within one
standard error of it** (the per-row log-loss differences against the best, paired on the same rows:
mean gap <= 1 SE), in which case the simplest such candidate wins (``SIMPLICITY``: logistic,
scorecard, boosted stumps, small LightGBM, LightGBM, blend). Log loss rather than AUC: the product
is a PD, and log loss is the proper score that rewards both ranking and calibration; it is also far
less noisy than AUC on a few hundred bads. The one-SE rule because on small tables the best OOF
loss among six candidates is partly luck (a winner's curse), and the simpler model then generalises
at least as well. AUC and Brier are logged beside it.

The winner is refitted for serving: a LightGBM variant on all booster rows with its cross-fitted
number of trees, the scorecard on all booster rows, a blend of both with the stacker's weights
on all out-of-fold margins; the calibrator is fitted on the winner's out-of-fold margins
(``training.calibration.choose_calibrator``). :func:`fit_selected` is that whole step, the one
code path of ``lifecredit train --table`` and of ``benchmarks/bench_byo.py``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from training.bundle import ModelInput, ScoringBundle, decode
from training.master_scale import MasterScale

LGBM_VARIANTS = ("lightgbm", "lightgbm_small", "lightgbm_additive")
LINEAR = ("scorecard", "logistic")
CANDIDATES = (*LGBM_VARIANTS, *LINEAR, "blend")
SMALL_TABLE_ROWS = 20_000
SIMPLICITY = ("logistic", "scorecard", "lightgbm_additive", "lightgbm_small", "lightgbm", "blend")
"""Simplest first: the order the one-standard-error rule prefers among statistically tied candidates."""


def variant_params(name: str, base: dict, n_rows: int) -> dict:
    """LightGBM parameters of a variant (``base``: ``training.lgbm.base_params`` of the table)."""
    if name == "lightgbm":
        return dict(base)
    leaf = int(min(50, max(10, n_rows // 100)))
    # one thread, as for the base cross-fit of a table (see fit_selected): the second only waits
    base = {**base, "num_threads": 1}
    if name == "lightgbm_small":
        return {**base, "learning_rate": 0.02, "num_leaves": 7, "max_depth": 3, "min_data_in_leaf": leaf,
                "feature_fraction": 0.7, "lambda_l2": 10.0, "cat_smooth": 30.0, "min_data_per_group": 20,
                "max_cat_threshold": 8}
    if name == "lightgbm_additive":
        return {**base, "learning_rate": 0.05, "num_leaves": 2, "max_depth": 1, "min_data_in_leaf": leaf,
                "feature_fraction": 1.0, "lambda_l2": 5.0, "cat_smooth": 30.0, "min_data_per_group": 20,
                "max_cat_threshold": 8}
    raise ValueError(f"unknown LightGBM variant {name!r}")


@dataclass
class Candidate:
    """One candidate's out-of-fold evidence and what it takes to refit it."""

    name: str
    oof_margin: np.ndarray  # calibration rows, in cal_rows order
    oof_pd: np.ndarray = field(default=None)  # cross-calibrated
    calibrator: str = ""
    log_loss: float = float("nan")
    auc: float = float("nan")
    brier: float = float("nan")
    info: dict = field(default_factory=dict)
    seconds: float = 0.0


@dataclass
class Selection:
    candidates: dict[str, Candidate]
    winner: str
    reason: str

    def table(self) -> list[dict]:
        """One row per candidate: out-of-fold log loss, AUC, Brier, calibrator, chosen."""
        return [{"candidate": c.name, "oof_log_loss": c.log_loss, "oof_auc": c.auc, "oof_brier": c.brier,
                 "calibrator": c.calibrator, "selected": c.name == self.winner, "seconds": c.seconds,
                 **{k: v for k, v in c.info.items() if isinstance(v, (int, float, str))}}
                for c in self.candidates.values()]

    def metrics(self) -> dict[str, float]:
        out = {}
        for c in self.candidates.values():
            out[f"oof.{c.name}.log_loss"] = c.log_loss
            out[f"oof.{c.name}.auc"] = c.auc
            out[f"oof.{c.name}.brier"] = c.brier
        return out


# -- out-of-fold pieces ------------------------------------------------------------------------
def cv_calibrated(margin: np.ndarray, y: np.ndarray, fold: np.ndarray) -> tuple[np.ndarray, str, dict[str, float]]:
    """Out-of-fold PD of margins: each fold's calibrator (Platt and isotonic) fitted on the other folds;
    the kind with the lower log loss. Returns (pd, kind, log loss of each kind)."""
    from sklearn.metrics import log_loss

    from training.calibration import IsotonicCalibrator, PlattCalibrator

    best: tuple[float, str, np.ndarray] | None = None
    losses = {}
    for name, make in (("platt", PlattCalibrator), ("isotonic", IsotonicCalibrator)):
        p = np.empty(len(margin))
        for k in np.unique(fold):
            out = fold == k
            p[out] = make().fit(margin[~out], y[~out]).predict_pd(margin[out])
        losses[name] = float(log_loss(y, p, labels=[0, 1]))
        if best is None or losses[name] < best[0]:
            best = (losses[name], name, p)
    return best[2], best[1], losses


def fit_scorecard(X: np.ndarray, y: np.ndarray, rows: np.ndarray, features: list[ModelInput],
                  scale: MasterScale) -> dict:
    """The WoE scorecard's spec fitted on ``rows`` of the encoded matrix (decoded as serving decodes it)."""
    from training.scorecard import WoEScorecard

    frame = decode(X[rows], features)
    sc = WoEScorecard(directions={f.name: f.direction for f in features},
                      categorical=[f.name for f in features if f.is_categorical],
                      **scale.score_config.model_dump()).fit(frame, y[rows])
    return sc.spec_


def scorecard_oof(X: np.ndarray, y: np.ndarray, fit_rows: np.ndarray, cal_rows: np.ndarray, fold: np.ndarray,
                  features: list[ModelInput], scale: MasterScale) -> tuple[np.ndarray, float]:
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
            categorical.append({"name": f.name, "j": j, "levels": [int(c) for c in seen],
                                "has_missing": bool(np.isnan(x).any())})
        else:
            miss = np.isnan(x)
            median = float(np.median(x[~miss])) if (~miss).any() else 0.0
            filled = np.where(miss, median, x)
            sd = float(filled.std()) or 1.0
            numeric.append({"name": f.name, "j": j, "median": median, "mean": float(filled.mean()), "sd": sd,
                            "has_missing": bool(miss.any()), "missing_mean": float(miss.mean()),
                            "direction": f.direction})
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


def fit_logistic(X: np.ndarray, y: np.ndarray, rows: np.ndarray, features: list[ModelInput], *, seed: int,
                 C: float | None = None) -> dict:
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
                lr = LogisticRegressionCV(Cs=10, cv=StratifiedKFold(n_splits, shuffle=True, random_state=seed),
                                          scoring="neg_log_loss", max_iter=2000).fit(D, y_r)
                chosen = float(np.ravel(lr.C_)[0])
            else:
                lr, chosen = LogisticRegression(C=C, max_iter=2000).fit(D, y_r), C
        coef = dict(zip(names, lr.coef_[0]))
        wrong = [t for t in numeric if t["direction"] and coef[("num", t["name"])] * t["direction"] < 0]
        if not wrong:
            break
        numeric = [t for t in numeric if t not in wrong]
    spec = {"kind": "logistic", "C": chosen, "intercept": float(lr.intercept_[0]), "numeric": [],
            "categorical": []}
    centred = spec["intercept"]
    for t in numeric:
        c, m = float(coef[("num", t["name"])]), float(coef.get(("miss", t["name"]), 0.0))
        spec["numeric"].append({"name": t["name"], "median": t["median"], "mean": t["mean"], "sd": t["sd"],
                                "coef": c, "missing_coef": m, "missing_mean": t["missing_mean"]})
        centred += m * t["missing_mean"]
    for t in categorical:
        f = features[t["j"]]
        coefs = {f.categories[c]: float(coef[("cat", t["name"], c)]) for c in t["levels"]}
        missing = float(coef.get(("catmiss", t["name"]), 0.0))
        x = X[rows, t["j"]]
        table = np.array([coefs.get(f.categories[int(v)], 0.0) if v == v else missing for v in x])
        spec["categorical"].append({"name": t["name"], "coefs": coefs, "missing": missing,
                                    "mean": float(table.mean())})
        centred += float(table.mean())
    spec["centred_intercept"] = centred
    return spec


def logistic_oof(X: np.ndarray, y: np.ndarray, fit_rows: np.ndarray, cal_rows: np.ndarray, fold: np.ndarray,
                 features: list[ModelInput], *, seed: int) -> tuple[np.ndarray, float]:
    """Out-of-fold log-odds of the one-hot logistic model on ``cal_rows`` and the seconds it took.

    The L2 strength is chosen once, by cross-validation on all ``fit_rows`` (one number; choosing it
    again inside every fold cost 5x the time for no measurable difference), then every fold refits."""
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


def _row_loss(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-12, 1 - 1e-12)
    return -(y * np.log(p) + (1 - y) * np.log(1 - p))


def _score(c: Candidate, y: np.ndarray, fold: np.ndarray) -> Candidate:
    from sklearn.metrics import brier_score_loss, roc_auc_score

    c.oof_pd, c.calibrator, losses = cv_calibrated(c.oof_margin, y, fold)
    c.log_loss = losses[c.calibrator]
    c.auc = float(roc_auc_score(y, c.oof_margin))
    c.brier = float(brier_score_loss(y, c.oof_pd))
    return c


# -- selection ---------------------------------------------------------------------------------
def select(X: np.ndarray, y: np.ndarray, fit_rows: np.ndarray, cal_rows: np.ndarray, fold: np.ndarray,
           features: list[ModelInput], *, base_oof: np.ndarray, base_trees: int, base_params: dict,
           scorecard: tuple[np.ndarray, float] | None, logistic: tuple[np.ndarray, float] | None = None,
           candidates: tuple[str, ...] = CANDIDATES, one_se: bool = True) -> Selection:
    """Compare the candidates on the calibration rows' out-of-fold predictions (module docstring).

    ``base_oof``/``base_trees``/``base_params``: the pipeline's own cross-fit (candidate ``lightgbm``);
    ``scorecard``: :func:`scorecard_oof`'s result (computed beside LightGBM by the caller), or None.
    """
    from training import lgbm

    y_cal = y[cal_rows].astype(int)
    f_cal = fold[cal_rows]
    out: dict[str, Candidate] = {}
    out["lightgbm"] = _score(Candidate("lightgbm", base_oof, info={"trees": base_trees}), y_cal, f_cal)
    for name in LGBM_VARIANTS[1:]:
        if name not in candidates:
            continue
        started = time.perf_counter()
        params = variant_params(name, base_params, len(fit_rows))
        cf = lgbm.crossfit(X, y, fit_rows, cal_rows, fold, features, seed=0, params=params, refit=False)
        oof, trees = cf.oof_margin, cf.best_iteration
        out[name] = _score(Candidate(name, oof, info={"trees": trees, "params": params}), y_cal, f_cal)
        out[name].seconds = round(time.perf_counter() - started, 3)
    for name, given in (("scorecard", scorecard), ("logistic", logistic)):
        if given is not None and name in candidates:
            out[name] = _score(Candidate(name, given[0]), y_cal, f_cal)
            out[name].seconds = round(given[1], 3)
    best_tree = min((c for c in out.values() if c.name in LGBM_VARIANTS), key=lambda c: c.log_loss)
    linear = [c for c in out.values() if c.name in LINEAR]
    if linear and "blend" in candidates:
        best_linear = min(linear, key=lambda c: c.log_loss)
        started = time.perf_counter()
        M = np.column_stack([best_tree.oof_margin, best_linear.oof_margin])
        blend = np.empty(len(y_cal))
        positive = True
        for k in np.unique(f_cal):
            w = stack_weights(M[f_cal != k], y_cal[f_cal != k])
            positive &= bool(np.all(w[1:] > 0))
            blend[f_cal == k] = w[0] + M[f_cal == k] @ w[1:]
        w = stack_weights(M, y_cal)
        if positive and np.all(w[1:] > 0):
            out["blend"] = _score(Candidate("blend", blend, info={
                "of": best_tree.name, "linear": best_linear.name, "intercept": float(w[0]), "w_lightgbm": float(w[1]),
                "w_linear": float(w[2])}), y_cal, f_cal)
            out["blend"].seconds = round(time.perf_counter() - started, 3)
    ranked = sorted(out.values(), key=lambda c: c.log_loss)
    best = ranked[0]
    winner = best.name
    reason = f"lowest out-of-fold log loss ({best.log_loss:.5f}"
    reason += f" vs {ranked[1].name} {ranked[1].log_loss:.5f})" if len(ranked) > 1 else ")"
    if one_se:  # the simplest candidate within one standard error of the best (paired per-row losses)
        loss_best = _row_loss(y_cal, best.oof_pd)
        for c in out.values():
            d = _row_loss(y_cal, c.oof_pd) - loss_best
            c.info["loss_gap_se"] = float(d.mean() / max(d.std(ddof=1) / np.sqrt(len(d)), 1e-12)) if c is not best \
                else 0.0
        tied = [c for c in out.values() if c.info["loss_gap_se"] <= 1.0]
        simplest = min(tied, key=lambda c: SIMPLICITY.index(c.name))
        if simplest is not best:
            winner = simplest.name
            reason = (f"simplest within one standard error of the lowest out-of-fold log loss ({simplest.name} "
                      f"{simplest.log_loss:.5f}, {simplest.info['loss_gap_se']:.2f} SE above {best.name} "
                      f"{best.log_loss:.5f})")
    return Selection(out, winner, reason)


@dataclass
class Fitted:
    """What the training pipeline needs after the fit: the bundle to register and the evidence."""

    bundle: ScoringBundle
    fit: object  # training.lgbm.CrossFit (the LightGBM candidate, always fitted)
    calibrator: object
    cal_losses: dict[str, float]
    selection: Selection | None
    oof_margin: np.ndarray  # the registered model's out-of-fold margins of the calibration rows


def fit_selected(X: np.ndarray, y: np.ndarray, split, features: list[ModelInput], scale: MasterScale, *,
                 seed: int, tune: int = 0, candidates: tuple[str, ...] | None = CANDIDATES,
                 fitter=None, run_beside: Callable | None = None,
                 progress: Callable[[str], None] | None = None, bundle_kwargs: dict | None = None) -> Fitted:
    """Cross-fit LightGBM, compare the candidates (``None``: LightGBM only, as before selection),
    refit the winner, calibrate it on its out-of-fold margins and build its bundle.

    ``run_beside(fn)`` runs ``fn`` in a helper thread and returns a future (the out-of-fold
    scorecards fit there while LightGBM trains); without it they run inline.
    """
    from training import lgbm
    from training.calibration import choose_calibrator

    say = progress or (lambda _m: None)
    fit_rows, cal_rows = split.train, split.valid
    jobs = {}
    if candidates and "scorecard" in candidates:
        jobs["scorecard"] = lambda: scorecard_oof(X, y, fit_rows, cal_rows, split.fold, features, scale)
    if candidates and "logistic" in candidates:
        jobs["logistic"] = lambda: logistic_oof(X, y, fit_rows, cal_rows, split.fold, features, seed=seed)
    if run_beside:
        jobs = {k: run_beside(job) for k, job in jobs.items()}
    # a table under 20k rows: one LightGBM thread (the second mostly waits on small data; on the loaded
    # 2-core machine 10k rows cross-fitted in 1.6 s instead of 3.0 s with OMP_WAIT_POLICY=PASSIVE, 0.9 s
    # instead of 7.6 s without; same trees); the panel keeps its two
    threads = 1 if candidates and len(np.union1d(fit_rows, cal_rows)) < SMALL_TABLE_ROWS else 2
    fit = lgbm.crossfit(X, y, fit_rows, cal_rows, split.fold, features, seed=seed, tune=tune, num_threads=threads,
                        progress=lambda done, total: say(f"Optuna trial {done}/{total} done"), fitter=fitter)
    selection = None
    kind, booster, spec, blend, logistic, oof = "lightgbm", fit.booster, None, None, None, fit.oof_margin
    if candidates:
        done = {k: (job.result() if hasattr(job, "result") else job()) for k, job in jobs.items()}
        selection = select(X, y, fit_rows, cal_rows, split.fold, features, base_oof=fit.oof_margin,
                           base_trees=fit.best_iteration, base_params=fit.params, scorecard=done.get("scorecard"),
                           logistic=done.get("logistic"), candidates=candidates)
        win = selection.candidates[selection.winner]
        say(f"selected {selection.winner}: {selection.reason}")
        oof = win.oof_margin
        tree = win.info.get("of", win.name)
        lin = win.info.get("linear", win.name)
        if tree in LGBM_VARIANTS and tree != "lightgbm":
            c = selection.candidates[tree]
            booster = lgbm.refit_booster(X, y, fit_rows, features, c.info["params"], c.info["trees"])
        if lin == "scorecard":
            spec = fit_scorecard(X, y, fit_rows, features, scale)
        elif lin == "logistic":
            logistic = fit_logistic(X, y, fit_rows, features, seed=seed)
        if win.name in LINEAR:
            kind, booster = win.name, None
        elif win.name == "blend":
            kind = "blend"
            blend = {"intercept": win.info["intercept"], "lightgbm": win.info["w_lightgbm"],
                     lin: win.info["w_linear"], "lightgbm_variant": tree}
    calibrator, cal_losses = choose_calibrator(oof, y[cal_rows], groups=split.fold[cal_rows], seed=seed)
    bundle = ScoringBundle(booster=booster, calibrator=calibrator.to_dict(), scale=scale, features=features,
                           kind=kind, scorecard=spec, blend=blend, logistic=logistic, **(bundle_kwargs or {}))
    if kind != "lightgbm":  # the reasons' reference: the mean margin over the booster rows
        bundle._baseline = float(np.mean(bundle.margin(X[fit_rows])))
    return Fitted(bundle, fit, calibrator, cal_losses, selection, oof)


def selection_frame(selection: Selection) -> pd.DataFrame:
    return pd.DataFrame(selection.table())
