"""Train, evaluate, log and register: the one entry point of the training stage.

:func:`train_from_features` trains on the feature panel with its catalogue;
:func:`train_from_table` trains the same pipeline on any labelled table. :func:`_pipeline` runs
the steps in order, one function each:

1. load (``training.data``): the labelled rows, already split into booster / calibration / test
   rows (test: merchants held out whole, after every booster row; stratified at random for a
   table without a time column); encode them as the serving bundle does;
2. fit (``_fit``): the WoE scorecard challenger starts on the booster + calibration rows (it
   needs no validation set) in a thread beside LightGBM (which releases the GIL), while another
   thread imports MLflow and opens its store; the LightGBM booster is cross-fitted by merchant
   (monotone where directions are known, native categoricals; the number of trees by
   out-of-fold log loss, ``tune`` Optuna trials first if asked) and refitted on all booster rows
   (``training.lgbm.crossfit``). For a table (not the feature panel), candidates are compared on
   the same folds and the one with the lowest out-of-fold log loss is refitted: this LightGBM,
   two LightGBM variants for small tables, the WoE scorecard, a one-hot logistic regression and
   a blend (``training.select``; never the test rows);
3. calibrate (``_calibrate``): to PD on the winner's out-of-fold margins of the calibration rows
   (Platt or isotonic with logit tails, lower merchant-grouped CV log loss wins), then PD to
   score, grade and class with the master scale, in the serving bundle;
4. evaluate (``_evaluate``): both models on the test rows with the same code
   (``training.evaluate``), plus PSI, CSI and importance (gain and mean |TreeSHAP| on a sample);
5. log (``training.tracking``): one MLflow run with params, metrics, the dataset with its hash,
   evaluation, plots, model card, points table, the native booster, the serving bundle, both
   pyfunc models and the selection table;
6. register (``_register``): the selected model's pyfunc, with alias ``challenger``.

It returns ``{"run_id", "model_uri", "version", "metrics", "challenger_metrics", ...}``; the
CLI prints the first five as its last stdout line.

Nothing here reads the simulator's truth: only the panel or table it is given.

The module is over 400 lines because the named steps read top to bottom in one place, with this
account of each; MLflow logging lives in ``training.tracking``.
"""

from __future__ import annotations

import gc
import sys
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from core.settings import Settings
from training import tracking
from training.bundle import encode
from training.data import TrainingTable, load_panel, load_table
from training.master_scale import MasterScale
from training.select import Fitted, Winner, calibrate_winner, fit_winner
from training.tracking import Evidence, Logged, flat_metrics

DEFAULT_EXPERIMENT = "lifecredit"
SHAP_SAMPLE = 2000
SWITCH_INTERVAL = 0.0005  # s; Python's default 0.005 (see _train)
Progress = Callable[[str], None]
TABLE_CANDIDATES = ("lightgbm", "lightgbm_small", "lightgbm_additive", "scorecard", "logistic", "blend")
"""Candidates of ``train --table``, chosen by out-of-fold log loss on the training rows (``training.select``)."""
PANEL_CANDIDATES = None
"""The feature panel keeps the cross-fitted LightGBM without a comparison: serving precomputes its TreeSHAP
reasons with the catalogue's thresholds and groups, which the other candidates do not have."""


@dataclass(frozen=True)
class _Run:
    """What one training run was asked for: the entry points' arguments, passed to every step."""

    settings: Settings
    experiment: str
    model_name: str | None
    seed: int
    tune: int
    master_scale: str | Path | None
    say: Progress
    engine: str
    scheduler: str | None
    candidates: tuple[str, ...] | None


def train_from_features(
    features_dir: str | Path,
    *,
    settings: Settings,
    experiment: str = DEFAULT_EXPERIMENT,
    model_name: str | None = None,
    seed: int = 7,
    tune: int = 0,
    catalog: str | Path | None = None,
    master_scale: str | Path | None = None,
    progress: Progress | None = None,
    engine: str = "local",
    scheduler: str | None = None,
) -> dict:
    """Train on ``<features_dir>/panel.parquet`` (labelled rows) with the feature catalogue.

    ``settings`` names the MLflow store and the default registered model name.

    ``engine="dask"`` fits the booster on a Dask cluster (``scheduler``, or a local one; see
    ``training.dask_fit``); everything else runs here, unchanged.
    """
    say = progress or (lambda _msg: None)
    say(f"loading {Path(features_dir) / 'panel.parquet'}")
    return _train(
        lambda: load_panel(features_dir, catalog, seed=seed),
        _Run(settings, experiment, model_name, seed, tune, master_scale, say, engine, scheduler, PANEL_CANDIDATES),
    )


def train_from_table(
    table: str | Path,
    *,
    settings: Settings,
    target: str,
    id_col: str,
    time_col: str | None = None,
    categorical: list[str] | None = None,
    monotone: dict[str, int] | None = None,
    experiment: str = DEFAULT_EXPERIMENT,
    model_name: str | None = None,
    seed: int = 7,
    tune: int = 0,
    master_scale: str | Path | None = None,
    progress: Progress | None = None,
    engine: str = "local",
    scheduler: str | None = None,
) -> dict:
    """Train the same pipeline on any feature table (Parquet or CSV); see :func:`training.data.load_table`."""
    say = progress or (lambda _msg: None)
    say(f"loading {table}")
    return _train(
        lambda: load_table(
            table,
            target=target,
            id_col=id_col,
            time_col=time_col,
            categorical=categorical,
            monotone=monotone,
            seed=seed,
        ),
        _Run(settings, experiment, model_name, seed, tune, master_scale, say, engine, scheduler, TABLE_CANDIDATES),
    )


def _train(load: Callable[[], TrainingTable], run: _Run) -> dict:
    """Run :func:`_pipeline` in the conditions it was tuned for (figures: ``benchmarks/RESULTS.md``).

    * Two helper threads, one opening the MLflow store, one fitting the challenger, both while
      LightGBM trains (it releases the GIL during each boosting round). The challenger in a
      process did not pay: spawned, it repeats the imports; forked (after the load, before any
      thread), it won on a quiet machine and lost on a loaded one.
    * A short GIL switch interval (0.5 ms, default 5 ms): the LightGBM thread needs the GIL briefly
      between rounds, and beside a busy Python thread it waited far longer than it computed.
    * BLAS on one thread: the matrices are small, and a multi-threaded OpenBLAS only spins
      against LightGBM's threads (the scorecard's Newton steps ran slower).
    * No cyclic garbage collection: importing MLflow, scikit-learn and optbinning allocates so
      much that it ran repeated full collections over hundreds of thousands of live objects,
      holding the GIL; left for later, the garbage costs a little peak memory.
    """
    from threadpoolctl import threadpool_limits

    interval, collecting = sys.getswitchinterval(), gc.isenabled()
    sys.setswitchinterval(SWITCH_INTERVAL)
    if not run.tune:  # tuning builds a booster per trial for minutes: collect as usual
        gc.disable()
    try:
        with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(2, thread_name_prefix="train") as pool:
            return _pipeline(load, run, pool)
    finally:
        sys.setswitchinterval(interval)
        if collecting:
            gc.enable()


def _pipeline(load: Callable[[], TrainingTable], run: _Run, pool: ThreadPoolExecutor) -> dict:
    """The steps in order: load, encode, fit, calibrate, evaluate, log, register.

    The MLflow store opens and the challenger fits in ``pool`` while LightGBM trains.
    """
    clock = _Clock()
    data = load()  # first: a missing or invalid table touches no MLflow store
    clock.lap("load")
    store = pool.submit(_open_store, run.experiment, run.settings)
    model_name = run.model_name or run.settings.model_name
    scale = MasterScale.load(run.master_scale)
    X = _encode(data)
    clock.lap("prepare")
    winner, challenger = _fit(data, X, scale, run, pool)
    fitted = _calibrate(winner, data, X, scale, run)
    clock.lap("lightgbm")
    evidence = _evaluate(data, X, fitted, scale, challenger, run, clock)
    run.say("logging to MLflow")
    c, exp_id = store.result()
    clock.lap("store_wait")
    with tracking.started_run(exp_id) as (run_id, tmp):
        logged = tracking.log_run(
            run_id,
            tmp,
            data=data,
            fitted=fitted,
            scale=scale,
            evidence=evidence,
            model_name=model_name,
            seed=run.seed,
            tune=run.tune,
            engine=run.engine,
            lap=clock.lap,
        )
        version = _register(c, logged, model_name, data, evidence)
        clock.lap("register")
        tracking.log_timings(clock.timings)
    run.say(f"registered {model_name} version {version} (alias challenger), run {run_id}")
    return _result(logged, model_name, version, data, fitted, evidence, clock.timings)


class _Clock:
    """Seconds per step, in the order the steps ran (logged as ``time.*`` metrics)."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.timings[name] = round(now - self._last, 3)
        self._last = now


def _open_store(experiment: str, settings: Settings) -> tuple:
    """Import MLflow and open its store and experiment (in the background, while LightGBM trains)."""
    from training import pyfunc, registry  # noqa: F401 - pyfunc: its MLflow modules load here too

    c = registry.client(settings)
    return c, registry.experiment_id(c, experiment, settings)


def _encode(data: TrainingTable) -> np.ndarray:
    """The feature matrix as the serving bundle encodes it; the rows' roles come with the table's split."""
    return encode(data.frame, data.features)


def _fit(
    data: TrainingTable, X: np.ndarray, scale: MasterScale, run: _Run, pool: ThreadPoolExecutor
) -> tuple[Winner, Future]:
    """Start the scorecard challenger in ``pool``, then cross-fit LightGBM (and for a table compare the
    candidates) and refit the winner (``training.select.fit_winner``); returns it and the challenger's future."""
    split = data.split
    fit_rows = np.union1d(split.train, split.valid)
    run.say(
        f"scorecard challenger (optimal binning, WoE, logistic regression) on {len(fit_rows):,} "
        "booster + calibration rows, beside LightGBM"
    )
    challenger = pool.submit(_challenger, data, scale)
    run.say(
        f"LightGBM cross-fitted by merchant: {len(split.train):,} booster rows, out-of-fold margins on "
        f"{len(split.valid):,} calibration rows" + (f", {run.tune} Optuna trials first" if run.tune else "")
    )
    fitter = _dask_fitter(data, run) if run.engine == "dask" else None
    if run.candidates:
        run.say("candidates compared on the training rows' out-of-fold log loss: " + ", ".join(run.candidates))
    winner = fit_winner(
        X,
        data.y,
        split,
        data.features,
        scale,
        seed=run.seed,
        tune=run.tune,
        candidates=run.candidates,
        fitter=fitter,
        run_beside=pool.submit,
        progress=run.say,
    )
    return winner, challenger


def _dask_fitter(data: TrainingTable, run: _Run):
    """The final fit on Dask, partitioned by the first id column (the merchant)."""
    from training.dask_fit import DaskFitter

    fitter = DaskFitter(run.scheduler, groups=data.frame[data.id_columns[0]].to_numpy()[data.split.train])
    run.say(f"the final fit runs on Dask ({run.scheduler or 'a local cluster of 2 workers'})")
    return fitter


def _calibrate(winner: Winner, data: TrainingTable, X: np.ndarray, scale: MasterScale, run: _Run) -> Fitted:
    """Calibrate the winner to PD on its out-of-fold margins and build the serving bundle."""
    fitted = calibrate_winner(
        winner,
        X,
        data.y,
        data.split,
        data.features,
        scale,
        seed=run.seed,
        bundle_kwargs={
            "id_columns": data.id_columns,
            "target": data.target,
            "feature_set": data.feature_set,
            "catalog_yaml": data.catalog_text,
            "num_threads": 2,
        },
    )
    run.say(
        f"calibrated: {fitted.calibrator.to_dict()['kind']} (CV log loss "
        + ", ".join(f"{k} {v:.4f}" for k, v in fitted.cal_losses.items())
        + ")"
    )
    return fitted


def _challenger(data: TrainingTable, scale: MasterScale) -> tuple:
    """Fit the WoE scorecard on booster + calibration rows and evaluate it on the test rows.

    The scorecard needs no calibration rows of its own (a logistic model is its own calibration),
    so it fits on every row the booster side may use; never on a test merchant.
    Returns the scorecard, its evaluation and the seconds it took.
    """
    from training import evaluate as ev
    from training.scorecard import WoEScorecard, scorecard_predict

    started = time.perf_counter()
    split, y, features = data.split, data.y, data.features
    names = [f.name for f in features]
    fit_rows = np.union1d(split.train, split.valid)
    frame_fit = data.frame.iloc[fit_rows][names]
    scorecard = WoEScorecard(
        directions={f.name: f.direction for f in features},
        categorical=[f.name for f in features if f.is_categorical],
        **scale.score_config.model_dump(),
    ).fit(frame_fit, y[fit_rows])
    frame_test = data.frame.iloc[split.test]
    sc_test = scorecard_predict(scorecard.spec_, frame_test, scale)
    sc_train_score = scale.score(scorecard.predict_proba(frame_fit)[:, 1])
    evaluation = ev.evaluate_predictions(
        y[split.test], sc_test, scale, train_score=sc_train_score, clusters=frame_test[data.id_columns[0]].to_numpy()
    )
    return scorecard, evaluation, round(time.perf_counter() - started, 3)


def _evaluate(
    data: TrainingTable, X: np.ndarray, fitted: Fitted, scale: MasterScale, challenger: Future, run: _Run, clock: _Clock
) -> Evidence:
    """Evaluate the registered model on the test rows with the challenger's code, add importance and CSI,
    collect the challenger and assemble ``evaluation.json``."""
    from training import evaluate as ev

    split, y, bundle = data.split, data.y, fitted.bundle
    oof_auc = ev.discrimination(y[split.valid], fitted.oof_margin)["auc"]
    run.say("evaluating on the test rows (merchants no fitted row came from)")
    frame_test = data.frame.iloc[split.test]
    pred_test = bundle.predict(frame_test, reasons=False)
    score_train = bundle.score_encoded(X[split.train], reasons=False).score
    merchants = frame_test[data.id_columns[0]].to_numpy()  # Jeffreys counts each merchant once
    evaluation_lgb = ev.evaluate_predictions(
        y[split.test], pred_test, scale, train_score=score_train, clusters=merchants
    )
    importance = _importance(fitted.fit.booster, X[split.test], data.features, run.seed)
    csi = ev.characteristic_stability(data.frame.iloc[split.train], frame_test, data.features)
    clock.lap("evaluation")
    scorecard, evaluation_sc, clock.timings["challenger"] = challenger.result()
    clock.lap("challenger_wait")
    selection = _selection_record(fitted)
    evaluation = {
        "target": data.target,
        "id_columns": data.id_columns,
        "feature_set": data.feature_set,
        "split": split.params(y),
        "master_scale": {"name": scale.name, "version": scale.version, "grades": scale.table()},
        "calibration": {"chosen": fitted.calibrator.to_dict()["kind"], "cv_log_loss": fitted.cal_losses},
        "selection": selection,
        "lightgbm": {
            **evaluation_lgb,
            "model_kind": bundle.kind,
            "selected_model": selection["selected_model"],
            "best_iteration": fitted.fit.best_iteration,
            "cv_log_loss": fitted.fit.cv_log_loss,
            "oof_auc": oof_auc,
            "baseline": {"margin": bundle.baseline, "pd": float(bundle.pd_from_margin(np.array([bundle.baseline]))[0])},
        },
        "challenger": {
            **evaluation_sc,
            "selected_features": scorecard.selected_,
            "information_value": scorecard.information_value_,
        },
        "csi": csi,
        "importance": importance.to_dict("records"),
    }
    return Evidence(evaluation, evaluation_lgb, evaluation_sc, scorecard, importance, csi, oof_auc, pred_test)


def _importance(booster, X_test: np.ndarray, features: list, seed: int) -> pd.DataFrame:
    """Gain and mean |TreeSHAP| on a seeded sample of the test rows, per feature, largest SHAP first."""
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(len(X_test), size=min(SHAP_SAMPLE, len(X_test)), replace=False))
    contrib = booster.predict(X_test[sample], pred_contrib=True)[:, :-1]
    return pd.DataFrame(
        {
            "feature": [f.name for f in features],
            "gain": booster.feature_importance("gain"),
            "mean_abs_shap": np.abs(contrib).mean(axis=0),
            "direction": [f.direction for f in features],
        }
    ).sort_values("mean_abs_shap", ascending=False, ignore_index=True)


def _selection_record(fitted: Fitted) -> dict:
    """The model selection as logged: winner, rule, reason, one row per candidate and the metrics."""
    sel = fitted.selection
    if sel is None:
        return {
            "selected_model": "lightgbm",
            "rule": "feature panel: the cross-fitted LightGBM, not compared "
            "(serving's TreeSHAP reasons with catalogue thresholds rely on it)",
            "reason": "",
            "candidates": [],
            "metrics": {},
        }
    rows = [{k: v for k, v in r.items() if k != "params"} for r in sel.table()]
    return {
        "selected_model": sel.winner,
        "rule": "lowest out-of-fold log loss on the training rows (each candidate's margins out of fold "
        "on the cross-fitting folds, calibrated fold by fold); test rows never used",
        "reason": sel.reason,
        "candidates": rows,
        "metrics": sel.metrics(),
    }


def _register(c, logged: Logged, model_name: str, data: TrainingTable, evidence: Evidence) -> str:
    """Register the logged model as a new version of ``model_name`` with alias ``challenger``."""
    from training import registry

    split = data.split
    return registry.register(
        c,
        logged.model_uri,
        model_name,
        run_id=logged.run_id,
        tags={
            "test_auc": f"{evidence.lightgbm['metrics']['auc']:.4f}",
            "selected_model": evidence.evaluation["selection"]["selected_model"],
            "feature_set": f"{data.feature_set['name']}@{data.feature_set['version']}",
            "test_window": f"{split.bounds.get('test_from', '')}..{split.bounds.get('test_to', '')}",
        },
    )


def _result(
    logged: Logged,
    model_name: str,
    version: str,
    data: TrainingTable,
    fitted: Fitted,
    evidence: Evidence,
    timings: dict[str, float],
) -> dict:
    """What the entry points return (the CLI prints run_id, model_uri, version and both metrics)."""
    selection = evidence.evaluation["selection"]
    return {
        "run_id": logged.run_id,
        "model_uri": f"models:/{model_name}/{version}",
        "version": version,
        "challenger_model_uri": logged.challenger_model_uri,
        "metrics": flat_metrics(evidence.lightgbm["metrics"], None),
        "challenger_metrics": flat_metrics(evidence.challenger["metrics"], None),
        "calibrator": fitted.calibrator.to_dict()["kind"],
        "selected_model": selection["selected_model"],
        "selection": selection["candidates"],
        "split": data.split.params(data.y),
        "timings_s": timings,
    }
