"""Model selection for bring-your-own tables: candidates compared on the training rows' own
out-of-fold predictions, never on the test rows.

Candidates (fitted in ``training.candidates``; each gives an out-of-fold log-odds margin for every calibration row, from models that
never saw that row's fold; the folds are the split's ``fold`` of the calibration rows, the same
folds LightGBM is cross-fitted on):

* ``lightgbm`` - the pipeline's cross-fitted booster (``training.lgbm.crossfit``, its defaults tuned
  for the merchant panel: 15 leaves, leaves of at least 50 rows);
* ``lightgbm_small`` - defaults for small tables: 7 leaves at most 3 deep, leaves of 10-50 rows
  (1 % of the rows), 70 % of the features per tree, stronger L2 and categorical smoothing, a smaller
  learning rate;
* ``lightgbm_additive`` - boosted stumps (2 leaves: one feature per tree, so an additive model with
  non-linear shapes, the tree analogue of a scorecard), learning rate 0.05;
* ``scorecard`` - the WoE logistic scorecard (``training.scorecard``);
* ``logistic`` - a one-hot logistic regression, the careful analyst's linear model. Added because
  on small, mostly categorical or additive tables it beat both LightGBM and the scorecard (whose IV
  floor and rare-category merging lose signal there);
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
(``training.calibration.choose_calibrator``). :func:`fit_winner` and :func:`calibrate_winner` are
the two steps (the fit and calibrate steps of ``training.train``, the one code path of
``lifecredit train --table``); :func:`fit_selected` runs both, for ``benchmarks/bench_byo.py``.

The module is over 400 lines because comparing, refitting and calibrating the winner share one
rule (the one-SE choice) and its record; the candidates themselves are fitted in ``training.candidates``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from training.bundle import ModelInput, ScoringBundle
from training.candidates import (
    fit_logistic,
    fit_scorecard,
    logistic_oof,
    scorecard_oof,
    stack_weights,
    variant_params,
)
from training.master_scale import MasterScale

LGBM_VARIANTS = ("lightgbm", "lightgbm_small", "lightgbm_additive")
LINEAR = ("scorecard", "logistic")
CANDIDATES = (*LGBM_VARIANTS, *LINEAR, "blend")
SMALL_TABLE_ROWS = 20_000
SIMPLICITY = ("logistic", "scorecard", "lightgbm_additive", "lightgbm_small", "lightgbm", "blend")
"""Simplest first: the order the one-standard-error rule prefers among statistically tied candidates."""


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
        return [
            {
                "candidate": c.name,
                "oof_log_loss": c.log_loss,
                "oof_auc": c.auc,
                "oof_brier": c.brier,
                "calibrator": c.calibrator,
                "selected": c.name == self.winner,
                "seconds": c.seconds,
                **{k: v for k, v in c.info.items() if isinstance(v, (int, float, str))},
            }
            for c in self.candidates.values()
        ]

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
def select(
    X: np.ndarray,
    y: np.ndarray,
    fit_rows: np.ndarray,
    cal_rows: np.ndarray,
    fold: np.ndarray,
    features: list[ModelInput],
    *,
    base_oof: np.ndarray,
    base_trees: int,
    base_params: dict,
    scorecard: tuple[np.ndarray, float] | None,
    logistic: tuple[np.ndarray, float] | None = None,
    candidates: tuple[str, ...] = CANDIDATES,
    one_se: bool = True,
) -> Selection:
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
            out["blend"] = _score(
                Candidate(
                    "blend",
                    blend,
                    info={
                        "of": best_tree.name,
                        "linear": best_linear.name,
                        "intercept": float(w[0]),
                        "w_lightgbm": float(w[1]),
                        "w_linear": float(w[2]),
                    },
                ),
                y_cal,
                f_cal,
            )
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
            c.info["loss_gap_se"] = (
                float(d.mean() / max(d.std(ddof=1) / np.sqrt(len(d)), 1e-12)) if c is not best else 0.0
            )
        tied = [c for c in out.values() if c.info["loss_gap_se"] <= 1.0]
        simplest = min(tied, key=lambda c: SIMPLICITY.index(c.name))
        if simplest is not best:
            winner = simplest.name
            reason = (
                f"simplest within one standard error of the lowest out-of-fold log loss ({simplest.name} "
                f"{simplest.log_loss:.5f}, {simplest.info['loss_gap_se']:.2f} SE above {best.name} "
                f"{best.log_loss:.5f})"
            )
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


@dataclass
class Winner:
    """The selected model refitted on all booster rows, before calibration."""

    kind: str  # the bundle kind: lightgbm, scorecard, logistic or blend
    fit: object  # training.lgbm.CrossFit (the LightGBM candidate, always fitted)
    selection: Selection | None
    oof_margin: np.ndarray  # the winner's out-of-fold margins of the calibration rows
    booster: object = None
    scorecard: dict | None = None
    blend: dict | None = None
    logistic: dict | None = None


def fit_winner(
    X: np.ndarray,
    y: np.ndarray,
    split,
    features: list[ModelInput],
    scale: MasterScale,
    *,
    seed: int,
    tune: int = 0,
    candidates: tuple[str, ...] | None = CANDIDATES,
    fitter=None,
    run_beside: Callable | None = None,
    progress: Callable[[str], None] | None = None,
) -> Winner:
    """Cross-fit LightGBM, compare the candidates (``None``: LightGBM only, as before selection) and
    refit the winner.

    ``run_beside(fn)`` runs ``fn`` in a helper thread and returns a future (the out-of-fold
    scorecards fit there while LightGBM trains); without it they run inline.
    """
    from training import lgbm

    say = progress or (lambda _m: None)
    fit_rows, cal_rows = split.train, split.valid
    jobs = {}
    if candidates and "scorecard" in candidates:
        jobs["scorecard"] = lambda: scorecard_oof(X, y, fit_rows, cal_rows, split.fold, features, scale)
    if candidates and "logistic" in candidates:
        jobs["logistic"] = lambda: logistic_oof(X, y, fit_rows, cal_rows, split.fold, features, seed=seed)
    if run_beside:
        jobs = {k: run_beside(job) for k, job in jobs.items()}
    # a table under SMALL_TABLE_ROWS rows: one LightGBM thread (on small data the second mostly waits,
    # and one thread fits the same trees sooner; figures: benchmarks/RESULTS.md); the panel keeps its two
    threads = 1 if candidates and len(np.union1d(fit_rows, cal_rows)) < SMALL_TABLE_ROWS else 2
    fit = lgbm.crossfit(
        X,
        y,
        fit_rows,
        cal_rows,
        split.fold,
        features,
        seed=seed,
        tune=tune,
        num_threads=threads,
        progress=lambda done, total: say(f"Optuna trial {done}/{total} done"),
        fitter=fitter,
    )
    if not candidates:
        return Winner("lightgbm", fit, None, fit.oof_margin, booster=fit.booster)
    done = {k: (job.result() if hasattr(job, "result") else job()) for k, job in jobs.items()}
    selection = select(
        X,
        y,
        fit_rows,
        cal_rows,
        split.fold,
        features,
        base_oof=fit.oof_margin,
        base_trees=fit.best_iteration,
        base_params=fit.params,
        scorecard=done.get("scorecard"),
        logistic=done.get("logistic"),
        candidates=candidates,
    )
    say(f"selected {selection.winner}: {selection.reason}")
    return _refit(selection, fit, X, y, fit_rows, features, scale, seed=seed)


def _refit(
    selection: Selection,
    fit,
    X: np.ndarray,
    y: np.ndarray,
    fit_rows: np.ndarray,
    features: list[ModelInput],
    scale: MasterScale,
    *,
    seed: int,
) -> Winner:
    """The selection's winner (and a blend's parts) refitted on all booster rows."""
    from training import lgbm

    win = selection.candidates[selection.winner]
    out = Winner("lightgbm", fit, selection, win.oof_margin, booster=fit.booster)
    tree = win.info.get("of", win.name)
    lin = win.info.get("linear", win.name)
    if tree in LGBM_VARIANTS and tree != "lightgbm":
        c = selection.candidates[tree]
        out.booster = lgbm.refit_booster(X, y, fit_rows, features, c.info["params"], c.info["trees"])
    if lin == "scorecard":
        out.scorecard = fit_scorecard(X, y, fit_rows, features, scale)
    elif lin == "logistic":
        out.logistic = fit_logistic(X, y, fit_rows, features, seed=seed)
    if win.name in LINEAR:
        out.kind, out.booster = win.name, None
    elif win.name == "blend":
        out.kind = "blend"
        out.blend = {
            "intercept": win.info["intercept"],
            "lightgbm": win.info["w_lightgbm"],
            lin: win.info["w_linear"],
            "lightgbm_variant": tree,
        }
    return out


def calibrate_winner(
    winner: Winner,
    X: np.ndarray,
    y: np.ndarray,
    split,
    features: list[ModelInput],
    scale: MasterScale,
    *,
    seed: int,
    bundle_kwargs: dict | None = None,
) -> Fitted:
    """Calibrate the winner on its out-of-fold margins of the calibration rows and build its serving bundle."""
    from training.calibration import choose_calibrator

    cal_rows = split.valid
    calibrator, cal_losses = choose_calibrator(winner.oof_margin, y[cal_rows], groups=split.fold[cal_rows], seed=seed)
    bundle = ScoringBundle(
        booster=winner.booster,
        calibrator=calibrator.to_dict(),
        scale=scale,
        features=features,
        kind=winner.kind,
        scorecard=winner.scorecard,
        blend=winner.blend,
        logistic=winner.logistic,
        **(bundle_kwargs or {}),
    )
    if winner.kind != "lightgbm":  # the reasons' reference: the mean margin over the booster rows
        bundle._baseline = float(np.mean(bundle.margin(X[split.train])))
    return Fitted(bundle, winner.fit, calibrator, cal_losses, winner.selection, winner.oof_margin)


def fit_selected(
    X: np.ndarray,
    y: np.ndarray,
    split,
    features: list[ModelInput],
    scale: MasterScale,
    *,
    seed: int,
    bundle_kwargs: dict | None = None,
    **choice,
) -> Fitted:
    """:func:`fit_winner` (``choice``: its keyword options) then :func:`calibrate_winner`, for callers with
    nothing in between."""
    winner = fit_winner(X, y, split, features, scale, seed=seed, **choice)
    return calibrate_winner(winner, X, y, split, features, scale, seed=seed, bundle_kwargs=bundle_kwargs)
