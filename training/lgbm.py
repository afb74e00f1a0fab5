"""The LightGBM PD booster: monotone in the catalogue's risk directions, native categoricals,
its number of trees chosen by merchant-grouped cross-fitting (:func:`crossfit`), optionally
tuned with Optuna.

Cross-fitting: the merchants of the fit period are dealt into ``K`` folds; fold model ``k``
trains on the booster rows of the other folds' merchants and scores fold ``k``'s calibration
rows (later in time, see ``training.data``). Every calibration margin therefore comes from a
model that never saw that merchant, nor any row as late as it; the pooled out-of-fold log loss
picks the number of trees, and the final booster is refitted on all booster rows with it. The
calibrator then fits those out-of-fold margins (``training.calibration``).

Fixed parameters (``--tune 0``) are deliberately conservative for noisy, imbalanced credit
panels: shallow trees (15 leaves), at least 1/80 of the training rows a leaf (50 to 200: a
merchant contributes a dozen near-identical monthly rows, so small leaves learn merchants, not
risk), 30 % of the features per tree and half the rows per round (strong subsampling: the
labels are rare and noisy, and averaging over many decorrelated trees ranks the bulk of the
book better; ``benchmarks/bench_validity.py`` judges such choices against the truth), L2, and a
small learning rate with early stopping on the pooled out-of-fold log loss (patience 100
rounds), so the number of trees adapts to the data (log loss rather than AUC: AUC on a few
hundred bads is noisy enough to stop after a handful of trees). Monotone constraints use the ``intermediate`` method
(tighter than ``basic`` at a modest cost). ``deterministic`` + a fixed seed: same data, same
model.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from core.progress import ProgressFn
from training.bundle import ModelInput

MAX_ROUNDS = 3000
_SAFE = re.compile(r'[^"\[\]{}:,\s]+')  # no JSON specials, no whitespace
PATIENCE = 100


def base_params(features: list[ModelInput], *, seed: int, num_threads: int = 2, n_rows: int | None = None) -> dict:
    """Fixed LightGBM parameters with monotone constraints from the features' risk directions.

    ``n_rows`` (training rows) sizes the smallest leaf; without it, 200.
    """
    return {
        "objective": "binary",
        "metric": ["binary_logloss", "auc"],
        "learning_rate": 0.03,
        "num_leaves": 15,
        "max_depth": -1,
        "min_data_in_leaf": 200 if n_rows is None else int(min(200, max(50, n_rows // 80))),
        "min_sum_hessian_in_leaf": 1e-3,
        "feature_fraction": 0.3,
        "bagging_fraction": 0.5,
        "bagging_freq": 1,
        "lambda_l2": 5.0,
        "cat_smooth": 20.0,
        "cat_l2": 10.0,
        "min_data_per_group": 50,
        "max_cat_threshold": 16,
        "monotone_constraints": [int(f.direction) for f in features],
        "monotone_constraints_method": "intermediate",
        "num_threads": num_threads,
        "seed": seed,
        "deterministic": True,
        "force_row_wise": True,
        "verbosity": -1,
    }


def booster_names(names: list[str]) -> list[str]:
    """Names LightGBM accepts: a table's column may be empty or hold JSON characters (``"``, ``:``,
    ``[`` ...) that LightGBM refuses; such a name becomes ``f{j}_`` + its letters and digits.

    Only the booster sees these: the bundle keeps the table's names, and scoring passes arrays.
    """
    return [
        n if n and _SAFE.fullmatch(n) else f"f{j}_" + re.sub(r"[^0-9A-Za-z_]+", "_", n) for j, n in enumerate(names)
    ]


@dataclass
class CrossFit:
    """The final booster and what cross-fitting learnt on the way."""

    booster: object  # lightgbm.Booster, refitted on every booster row
    params: dict
    best_iteration: int
    oof_margin: np.ndarray
    """Out-of-fold margin of each calibration row (in ``cal_rows`` order)."""
    cv_log_loss: float
    trials: list[dict]


def crossfit(
    X: np.ndarray,
    y: np.ndarray,
    fit_rows: np.ndarray,
    cal_rows: np.ndarray,
    fold: np.ndarray,
    features: list[ModelInput],
    *,
    seed: int,
    tune: int = 0,
    num_threads: int = 2,
    params: dict | None = None,
    refit: bool = True,
    weight: np.ndarray | None = None,
    progress: ProgressFn | None = None,
    fitter: Callable[[dict, object, int], object] | None = None,
) -> CrossFit:
    """Cross-fit (module docstring): ``fold[i]`` is row ``i``'s fold (by merchant), ``fit_rows`` train the
    boosters, ``cal_rows`` are scored out of fold. ``fit_rows`` and ``cal_rows`` may be the same rows
    (plain K-fold cross-validation, for a table without time).

    ``params`` replaces :func:`base_params`; ``refit=False`` skips the final fit (``booster`` None: a
    candidate being compared); ``weight`` (one per row of ``X``) weights the rows. ``fitter(params, train, rounds)`` replaces the local final fit
    (``training.dask_fit.DaskFitter``).
    """
    import lightgbm as lgb

    rows = np.union1d(fit_rows, cal_rows)
    pos = {r: i for i, r in enumerate(rows)}
    fit_pos = np.array([pos[r] for r in fit_rows])
    cal_pos = np.array([pos[r] for r in cal_rows])
    folds = [(fit_pos[fold[fit_rows] != k], cal_pos[fold[cal_rows] == k]) for k in np.unique(fold[cal_rows])]
    if len(folds) < 2 or any(len(tr) == 0 for tr, _ in folds):
        raise ValueError("cross-fitting needs at least 2 folds, each with booster rows of other merchants")
    names = booster_names([f.name for f in features])
    cats = [j for j, f in enumerate(features) if f.is_categorical]
    data = lgb.Dataset(
        X[rows],
        label=y[rows],
        weight=None if weight is None else weight[rows],
        feature_name=names,
        categorical_feature=cats,
        free_raw_data=False,
        params={"feature_pre_filter": False} if tune else None,
    )
    params = params or base_params(features, seed=seed, num_threads=num_threads, n_rows=len(fit_rows))
    trials: list[dict] = []

    def cv(p: dict) -> tuple[float, int, object]:
        res = lgb.cv(
            {**p, "metric": "binary_logloss"},
            data,
            num_boost_round=MAX_ROUNDS,
            folds=folds,
            stratified=False,
            shuffle=False,
            return_cvbooster=True,
            callbacks=[lgb.early_stopping(PATIENCE, verbose=False)],
        )
        curve = res["valid binary_logloss-mean"]
        return float(curve[-1]), len(curve), res["cvbooster"]

    if tune > 0:
        params, trials = _tune(params, cv, n_trials=tune, seed=seed, progress=progress)
    loss, best, cvb = cv(params)
    oof = np.empty(len(cal_rows))
    where = {r: i for i, r in enumerate(cal_rows)}
    for (_, te), b in zip(folds, cvb.boosters, strict=True):
        idx = [where[rows[i]] for i in te]
        oof[idx] = b.predict(X[rows[te]], raw_score=True, num_iteration=best)
    final = refit_booster(X, y, fit_rows, features, params, best, fitter, weight) if refit else None
    return CrossFit(booster=final, params=params, best_iteration=best, oof_margin=oof, cv_log_loss=loss, trials=trials)


def refit_booster(
    X: np.ndarray,
    y: np.ndarray,
    fit_rows: np.ndarray,
    features: list[ModelInput],
    params: dict,
    rounds: int,
    fitter: Callable[[dict, object, int], object] | None = None,
    weight: np.ndarray | None = None,
):
    """The final booster: all booster rows, the cross-fitted number of trees (on ``fitter`` if given)."""
    import lightgbm as lgb

    train = lgb.Dataset(
        X[fit_rows],
        label=y[fit_rows],
        weight=None if weight is None else weight[fit_rows],
        feature_name=booster_names([f.name for f in features]),
        categorical_feature=[j for j, f in enumerate(features) if f.is_categorical],
        free_raw_data=False,
    )
    if fitter is not None:
        return fitter(params, train, rounds)
    return lgb.train(params, train, num_boost_round=rounds)


def _tune(
    params: dict,
    evaluate: Callable[[dict], tuple[float, int, object]],
    *,
    n_trials: int,
    seed: int,
    progress: ProgressFn | None,
) -> tuple[dict, list[dict]]:
    """Optuna (TPE) over the main parameters; ``evaluate(params)`` gives (log loss, trees, model)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def objective(trial: optuna.Trial) -> float:
        trial_params = {
            **params,
            "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.2, log=True),
            "num_leaves": trial.suggest_int("num_leaves", 4, 63, log=True),
            "min_data_in_leaf": trial.suggest_int("min_data_in_leaf", 10, 400, log=True),
            "feature_fraction": trial.suggest_float("feature_fraction", 0.4, 1.0),
            "bagging_fraction": trial.suggest_float("bagging_fraction", 0.5, 1.0),
            "lambda_l2": trial.suggest_float("lambda_l2", 1e-3, 100.0, log=True),
        }
        loss, best, _ = evaluate(trial_params)
        trial.set_user_attr("best_iteration", best)
        if progress:
            progress(trial.number + 1, n_trials)
        return loss

    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(objective, n_trials=n_trials)
    trials = [{"number": t.number, "log_loss": t.value, **t.params, **t.user_attrs} for t in study.trials]
    return {**params, **study.best_params}, trials
