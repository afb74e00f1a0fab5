"""Train, evaluate, log and register: the one entry point of the training stage.

:func:`train_from_features` trains on the feature panel with its catalogue;
:func:`train_from_table` trains the same pipeline on any labelled table. Both:

1. split into booster / calibration / test rows (test: merchants held out whole, after every
   booster row; stratified at random for a table without a time column; see ``training.data``);
2. cross-fit the LightGBM booster by merchant (monotone where directions are known, native
   categoricals; the number of trees by out-of-fold log loss, ``tune`` Optuna trials first if
   asked), then refit it on all booster rows (``training.lgbm.crossfit``);
   For a table (not the feature panel), compare candidates on the same folds and register the
   one with the lowest out-of-fold log loss: this LightGBM, two LightGBM variants for small
   tables, the WoE scorecard, a one-hot logistic regression and a blend (``training.select``;
   never the test rows);
3. calibrate to PD on the (winner's) out-of-fold margins of the calibration rows (Platt or
   isotonic with logit tails, lower merchant-grouped CV log loss wins);
4. map PD to score, grade and class with the master scale;
5. fit the WoE scorecard challenger on the booster + calibration rows (it needs no
   validation set), in a thread beside the LightGBM fit (which releases the GIL), while
   another thread imports MLflow and opens its store;
6. evaluate both on the test rows with the same code (``training.evaluate``), plus PSI,
   CSI, importance (gain and mean |TreeSHAP| on a sample) and plots;
7. log everything to one MLflow run (params, metrics, the dataset with its hash, evaluation,
   plots, points table, the native booster, the serving bundle, both pyfunc models, the
   selection table) and register the selected model's pyfunc with alias ``challenger``.

It returns ``{"run_id", "model_uri", "version", "metrics", "challenger_metrics", ...}``; the
CLI prints the first five as its last stdout line.

Nothing here reads the simulator's truth: only the panel or table it is given.
"""

from __future__ import annotations

import gc
import json
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from core.settings import Settings
from training.bundle import encode
from training.data import TrainingTable, load_panel, load_table
from training.master_scale import MasterScale

DEFAULT_EXPERIMENT = "lifecredit"
SHAP_SAMPLE = 2000
SWITCH_INTERVAL = 0.0005  # s; Python's default 0.005 (see _train)
Progress = Callable[[str], None]
TABLE_CANDIDATES = ("lightgbm", "lightgbm_small", "lightgbm_additive", "scorecard", "logistic", "blend")
"""Candidates of ``train --table``, chosen by out-of-fold log loss on the training rows (``training.select``)."""
PANEL_CANDIDATES = None
"""The feature panel keeps the cross-fitted LightGBM without a comparison: serving precomputes its TreeSHAP
reasons with the catalogue's thresholds and groups, which the other candidates do not have."""


def train_from_features(features_dir: str | Path, *, settings: Settings, experiment: str = DEFAULT_EXPERIMENT,
                        model_name: str | None = None, seed: int = 7, tune: int = 0,
                        catalog: str | Path | None = None, master_scale: str | Path | None = None,
                        progress: Progress | None = None, engine: str = "local", scheduler: str | None = None) -> dict:
    """Train on ``<features_dir>/panel.parquet`` (labelled rows) with the feature catalogue.

    ``settings`` names the MLflow store and the default registered model name.

    ``engine="dask"`` fits the booster on a Dask cluster (``scheduler``, or a local one; see
    ``training.dask_fit``); everything else runs here, unchanged.
    """
    say = progress or (lambda _msg: None)
    say(f"loading {Path(features_dir) / 'panel.parquet'}")
    return _train(lambda: load_panel(features_dir, catalog, seed=seed), settings=settings, experiment=experiment,
                  model_name=model_name, seed=seed, tune=tune, master_scale=master_scale, say=say,
                  engine=engine, scheduler=scheduler, candidates=PANEL_CANDIDATES)


def train_from_table(table: str | Path, *, settings: Settings, target: str, id_col: str, time_col: str | None = None,
                     categorical: list[str] | None = None, monotone: dict[str, int] | None = None,
                     experiment: str = DEFAULT_EXPERIMENT, model_name: str | None = None, seed: int = 7,
                     tune: int = 0, master_scale: str | Path | None = None,
                     progress: Progress | None = None, engine: str = "local", scheduler: str | None = None) -> dict:
    """Train the same pipeline on any feature table (Parquet or CSV); see :func:`training.data.load_table`."""
    say = progress or (lambda _msg: None)
    say(f"loading {table}")
    return _train(lambda: load_table(table, target=target, id_col=id_col, time_col=time_col, categorical=categorical,
                                     monotone=monotone, seed=seed), settings=settings,
                  experiment=experiment, model_name=model_name, seed=seed, tune=tune, master_scale=master_scale,
                  say=say, engine=engine, scheduler=scheduler, candidates=TABLE_CANDIDATES)


def _train(load: Callable[[], TrainingTable], **kwargs) -> dict:
    """Run :func:`_pipeline` in the conditions it was tuned for on the 2-core benchmark machine.

    * Two helper threads, one opening the MLflow store, one fitting the challenger, both while
      LightGBM trains (it releases the GIL during each boosting round). The challenger in a
      process did not pay: spawned, it repeats ~2 s of imports; forked (after the load, before
      any thread), the run was 0.5 s shorter on a quiet machine and 0.5 s longer on a loaded one.
    * A 0.5 ms GIL switch interval (default 5 ms): the LightGBM thread needs the GIL briefly
      between rounds (beside a busy Python thread the fit took 1.8 s instead of 3.7 s; alone 2.0 s).
    * BLAS on one thread: the matrices are small, and a multi-threaded OpenBLAS only spins
      against LightGBM's threads (the scorecard's Newton steps ran 2-3x slower).
    * No cyclic garbage collection: importing MLflow, scikit-learn and optbinning allocates so
      much that it ran 8 full collections over ~470k live objects (0.8 s of CPU, holding the
      GIL); left for later, the garbage is ~76k objects (+25 MB peak).
    """
    from threadpoolctl import threadpool_limits

    interval, collecting = sys.getswitchinterval(), gc.isenabled()
    sys.setswitchinterval(SWITCH_INTERVAL)
    if not kwargs.get("tune"):  # tuning builds a booster per trial for minutes: collect as usual
        gc.disable()
    try:
        with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(2, thread_name_prefix="train") as pool:
            return _pipeline(load, pool=pool, **kwargs)
    finally:
        sys.setswitchinterval(interval)
        if collecting:
            gc.enable()


def _open_store(experiment: str, settings: Settings) -> tuple:
    """Import MLflow and open its store and experiment (in the background, while LightGBM trains)."""
    from training import pyfunc, registry  # noqa: F401 - pyfunc: its MLflow modules load here too

    c = registry.client(settings)
    return c, registry.experiment_id(c, experiment, settings)


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
    evaluation = ev.evaluate_predictions(y[split.test], sc_test, scale, train_score=sc_train_score,
                                         clusters=frame_test[data.id_columns[0]].to_numpy())
    return scorecard, evaluation, round(time.perf_counter() - started, 3)


def _pipeline(load: Callable[[], TrainingTable], *, pool: ThreadPoolExecutor, settings: Settings, experiment: str,
              model_name: str | None, seed: int, tune: int, master_scale: str | Path | None, say: Progress,
              engine: str = "local", scheduler: str | None = None,
              candidates: tuple[str, ...] | None = None) -> dict:
    """Load, fit, calibrate, evaluate, log and register (the steps of the module docstring).

    The MLflow store opens and the challenger fits in ``pool`` while LightGBM trains.
    """
    from training import evaluate as ev
    from training.select import fit_selected

    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[name] = round(now - clock, 3)
        clock = now

    data = load()  # first: a missing or invalid table touches no MLflow store
    lap("load")
    store = pool.submit(_open_store, experiment, settings)
    model_name = model_name or settings.model_name
    scale = MasterScale.load(master_scale)
    split, y, features = data.split, data.y, data.features
    names = [f.name for f in features]
    X = encode(data.frame, features)
    lap("prepare")

    fit_rows = np.union1d(split.train, split.valid)
    say(f"scorecard challenger (optimal binning, WoE, logistic regression) on {len(fit_rows):,} "
        "booster + calibration rows, beside LightGBM")
    challenger = pool.submit(_challenger, data, scale)
    say(f"LightGBM cross-fitted by merchant: {len(split.train):,} booster rows, out-of-fold margins on "
        f"{len(split.valid):,} calibration rows" + (f", {tune} Optuna trials first" if tune else ""))
    fitter = None
    if engine == "dask":  # partitioned by the first id column (the merchant)
        from training.dask_fit import DaskFitter

        fitter = DaskFitter(scheduler, groups=data.frame[data.id_columns[0]].to_numpy()[split.train])
        say(f"the final fit runs on Dask ({scheduler or 'a local cluster of 2 workers'})")
    if candidates:
        say("candidates compared on the training rows' out-of-fold log loss: " + ", ".join(candidates))
    fitted = fit_selected(X, y, split, features, scale, seed=seed, tune=tune, candidates=candidates, fitter=fitter,
                          run_beside=pool.submit, progress=say,
                          bundle_kwargs={"id_columns": data.id_columns, "target": data.target,
                                         "feature_set": data.feature_set, "catalog_yaml": data.catalog_text,
                                         "num_threads": 2})
    fit, bundle, calibrator, cal_losses = fitted.fit, fitted.bundle, fitted.calibrator, fitted.cal_losses
    selection = _selection_record(fitted)
    lap("lightgbm")
    say(f"calibrated: {calibrator.to_dict()['kind']} (CV log loss "
        + ", ".join(f"{k} {v:.4f}" for k, v in cal_losses.items()) + ")")

    oof_auc = ev.discrimination(y[split.valid], fitted.oof_margin)["auc"]
    say("evaluating on the test rows (merchants no fitted row came from)")
    frame_train = data.frame.iloc[split.train]
    frame_test = data.frame.iloc[split.test]
    y_test = y[split.test]
    pred_test = bundle.predict(frame_test, reasons=False)
    score_train = scale.score(bundle.pd_from_margin(bundle.margin(X[split.train])))
    merchants = frame_test[data.id_columns[0]].to_numpy()  # Jeffreys counts each merchant once
    evaluation_lgb = ev.evaluate_predictions(y_test, pred_test, scale, train_score=score_train, clusters=merchants)
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(len(split.test), size=min(SHAP_SAMPLE, len(split.test)), replace=False))
    contrib = fit.booster.predict(X[split.test][sample], pred_contrib=True)[:, :-1]
    importance = pd.DataFrame({
        "feature": names,
        "gain": fit.booster.feature_importance("gain"),
        "mean_abs_shap": np.abs(contrib).mean(axis=0),
        "direction": [f.direction for f in features],
    }).sort_values("mean_abs_shap", ascending=False, ignore_index=True)
    csi = ev.characteristic_stability(frame_train, frame_test, features)
    lap("evaluation")
    scorecard, evaluation_sc, timings["challenger"] = challenger.result()
    lap("challenger_wait")
    evaluation = {
        "target": data.target,
        "id_columns": data.id_columns,
        "feature_set": data.feature_set,
        "split": split.params(y),
        "master_scale": {"name": scale.name, "version": scale.version, "grades": scale.table()},
        "calibration": {"chosen": calibrator.to_dict()["kind"], "cv_log_loss": cal_losses},
        "selection": selection,
        "lightgbm": {**evaluation_lgb, "model_kind": bundle.kind, "selected_model": selection["selected_model"],
                     "best_iteration": fit.best_iteration, "cv_log_loss": fit.cv_log_loss,
                     "oof_auc": oof_auc,
                     "baseline": {"margin": bundle.baseline,
                                  "pd": float(bundle.pd_from_margin(np.array([bundle.baseline]))[0])}},
        "challenger": {**evaluation_sc, "selected_features": scorecard.selected_,
                       "information_value": scorecard.information_value_},
        "csi": csi,
        "importance": importance.to_dict("records"),
    }

    say("logging to MLflow")
    import mlflow

    from training import pyfunc, registry

    c, exp_id = store.result()
    lap("store_wait")
    with tempfile.TemporaryDirectory() as tmp_dir, mlflow.start_run(experiment_id=exp_id) as run:
        tmp = Path(tmp_dir)
        run_id = run.info.run_id
        mlflow.set_tags({"feature_set": f"{data.feature_set['name']}@{data.feature_set['version']}",
                         "model_name": model_name, "source": str(data.source)})
        lgb_params = {k: v for k, v in fit.params.items() if k != "monotone_constraints"}
        mlflow.log_params({
            **{f"lgbm.{k}": v for k, v in lgb_params.items()},
            "lgbm.monotone_features": sum(1 for f in features if f.direction),
            "lgbm.best_iteration": fit.best_iteration, "tune_trials": tune, "seed": seed, "engine": engine,
            **{f"window.{k}": v for k, v in split.params(y).items()},
            "calibrator": calibrator.to_dict()["kind"],
            "selected_model": selection["selected_model"], "model_kind": bundle.kind,
            "selection_rule": selection["rule"][:500],
            "master_scale": f"{scale.name}@{scale.version}",
            "feature_set.name": data.feature_set["name"], "feature_set.version": data.feature_set["version"],
            "n_features": len(features), "dataset_sha256": data.sha256,
        })
        mlflow.log_input(_dataset(data), context="training",
                         tags={"rows": str(len(data.frame)), "sha256": data.sha256})
        metrics = _flat_metrics(evaluation_lgb["metrics"], "test")
        metrics.update(_flat_metrics(evaluation_sc["metrics"], "challenger.test"))
        metrics["oof_auc"] = oof_auc
        metrics["cv_log_loss"] = fit.cv_log_loss
        metrics.update({f"calibration.cv_log_loss.{k}": v for k, v in cal_losses.items()})
        metrics.update({k: v for k, v in selection["metrics"].items() if v == v})
        mlflow.log_metrics(metrics)

        logged = tmp / "run"  # the run's artifact tree, logged in one call
        bundle_dir = bundle.save(logged / "serving_bundle")
        if (bundle_dir / "model.txt").exists():  # the native booster, beside the bundle (not for a scorecard)
            shutil.copy(bundle_dir / "model.txt", logged / "model.txt")
        ev_dir = logged / "evaluation"
        ev_dir.mkdir()
        (ev_dir / "evaluation.json").write_text(
            json.dumps(evaluation, ensure_ascii=False, indent=2, default=_json_default), encoding="utf-8")
        (ev_dir / "model_card.md").write_text(_model_card(model_name, data, evaluation), encoding="utf-8")
        importance.to_csv(ev_dir / "feature_importance.csv", index=False)
        pd.DataFrame({"feature": list(csi), "csi": list(csi.values())}).to_csv(ev_dir / "csi.csv", index=False)
        frame_test[[*data.id_columns, data.target, *names]].to_parquet(ev_dir / "test_window.parquet", index=False)
        _split_rows(data).to_parquet(ev_dir / "split_rows.parquet", index=False)
        if fit.trials:
            pd.DataFrame(fit.trials).to_csv(ev_dir / "optuna_trials.csv", index=False)
        if selection["candidates"]:
            pd.DataFrame(selection["candidates"]).to_csv(ev_dir / "selection.csv", index=False)
        ev.write_plots(ev_dir / "plots", y_test, pred_test, evaluation_lgb, importance,
                       title=_TITLES.get(selection["selected_model"], selection["selected_model"]))
        sc_dir, sc_model_dir = logged / "challenger", tmp / "scorecard_model"
        sc_dir.mkdir()
        sc_model_dir.mkdir()
        scorecard.points_table_.to_csv(sc_dir / "points_table.csv", index=False)
        (sc_model_dir / "scorecard.json").write_text(json.dumps(scorecard.spec_, ensure_ascii=False, indent=1),
                                                     encoding="utf-8")
        (sc_model_dir / "master_scale.yaml").write_text(scale.to_yaml(), encoding="utf-8")
        mlflow.log_artifacts(str(logged))
        lap("log_artifacts")

        model_meta = {"id_columns": data.id_columns, "target": data.target, "features": names,
                      "feature_set": data.feature_set, "master_scale": f"{scale.name}@{scale.version}"}
        ids = {c: pd.api.types.is_datetime64_any_dtype(data.frame[c]) for c in data.id_columns}
        example = pyfunc.input_example(frame_test.head(3), features, data.id_columns)
        info = pyfunc.log_model("model", {"serving_bundle": str(bundle_dir)},
                                {**model_meta, "kind": bundle.kind, "selected_model": selection["selected_model"]},
                                signature=pyfunc.model_signature(features, ids, reasons=True), example=example)
        sc_info = pyfunc.log_model("challenger_model", {"scorecard": str(sc_model_dir)},
                                   {**model_meta, "kind": "scorecard"},
                                   signature=pyfunc.model_signature(features, ids, reasons=False), example=example)
        lap("log_models")
        version = registry.register(c, info.model_uri, model_name, run_id=run_id, tags={
            "test_auc": f"{evaluation_lgb['metrics']['auc']:.4f}", "selected_model": selection["selected_model"],
            "feature_set": f"{data.feature_set['name']}@{data.feature_set['version']}",
            "test_window": f"{split.bounds.get('test_from', '')}..{split.bounds.get('test_to', '')}",
        })
        lap("register")
        mlflow.log_metrics({f"time.{k}": v for k, v in timings.items()})
    say(f"registered {model_name} version {version} (alias challenger), run {run_id}")
    return {
        "run_id": run_id,
        "model_uri": f"models:/{model_name}/{version}",
        "version": version,
        "challenger_model_uri": sc_info.model_uri,
        "metrics": _flat_metrics(evaluation_lgb["metrics"], None),
        "challenger_metrics": _flat_metrics(evaluation_sc["metrics"], None),
        "calibrator": calibrator.to_dict()["kind"],
        "selected_model": selection["selected_model"],
        "selection": selection["candidates"],
        "split": split.params(y),
        "timings_s": timings,
    }


_TITLES = {"lightgbm": "LightGBM", "lightgbm_small": "LightGBM (small-table defaults)",
           "lightgbm_additive": "LightGBM (boosted stumps)", "scorecard": "WoE scorecard",
           "logistic": "One-hot logistic regression",
           "blend": "LightGBM + scorecard blend"}


def _selection_record(fitted) -> dict:
    """The model selection as logged: winner, rule, reason, one row per candidate and the metrics."""
    sel = fitted.selection
    if sel is None:
        return {"selected_model": "lightgbm", "rule": "feature panel: the cross-fitted LightGBM, not compared "
                "(serving's TreeSHAP reasons with catalogue thresholds rely on it)", "reason": "", "candidates": [],
                "metrics": {}}
    rows = [{k: v for k, v in r.items() if k != "params"} for r in sel.table()]
    return {"selected_model": sel.winner,
            "rule": "lowest out-of-fold log loss on the training rows (each candidate's margins out of fold "
                    "on the cross-fitting folds, calibrated fold by fold); test rows never used",
            "reason": sel.reason, "candidates": rows, "metrics": sel.metrics()}


def _model_card(model_name: str, data: TrainingTable, evaluation: dict) -> str:
    """A one-page summary for reviewers: data, windows, method, test evidence, reasons and limits."""
    lgb, sc, split = evaluation["lightgbm"], evaluation["challenger"], evaluation["split"]
    m = lgb["metrics"]
    classes = "\n".join(
        f"| {r['group']} | {r['n']:,} ({r['obligors']:,}) | {_pct(r['mean_pd'])} | {_pct(r['default_rate'])} | "
        f"{'-' if r['jeffreys_p'] is None else format(r['jeffreys_p'], '.3f')} | {'yes' if r['rejected'] else 'no'} |"
        for r in lgb["by_class"])
    top = ", ".join(r["feature"] for r in evaluation["importance"][:8])
    sel = evaluation["selection"]
    chosen = sel["selected_model"]
    if sel["candidates"]:
        rows = "\n".join(f"| {r['candidate']}{' (selected)' if r['selected'] else ''} | {r['oof_log_loss']:.5f} | "
                         f"{r['oof_auc']:.4f} | {r['oof_brier']:.5f} | {r['calibrator']} |" for r in sel["candidates"])
        selection = (f"\n\n**Model selection.** {sel['rule']}. Registered: **{chosen}** ({sel['reason']}).\n\n"
                     "| candidate | OOF log loss | OOF AUC | OOF Brier | calibrator |\n|---|---:|---:|---:|---|\n"
                     + rows)
    else:
        selection = f"\n\n**Model selection.** {sel['rule']}."
    if chosen == "scorecard":
        reasons = ("Per row, the scorecard features whose bin lost the most points against that feature's best "
                   "bin (coefficient x WoE gap, in log-odds), up to four.")
    elif chosen == "logistic":
        reasons = ("Per row, the features whose logistic term is furthest above its mean over the training rows "
                   "(the exact SHAP value of a linear model), up to four.")
    else:
        reasons = (f"Per row, the features with the largest positive TreeSHAP contribution to the LightGBM margin"
                   f"{' (times its blend weight: the scorecard part gives no reasons)' if chosen == 'blend' else ''}"
                   f" (LightGBM `pred_contrib`), up to four, with the catalogue's reason texts.")
    return f"""# Model card: {model_name}

**Purpose.** 12-month probability of default (90+ days past due or written off) of a life-service
merchant, mapped to a score, a rating grade and a credit-risk class A (low) / B (general) /
C (higher) / D (high) by the master scale {evaluation['master_scale']['name']}@{evaluation['master_scale']['version']}.

**Data.** {data.feature_set['name']}@{data.feature_set['version']} from `{data.source}`
(SHA-256 `{data.sha256}`), {len(data.features)} features, label `{data.target}`.
Split: {split['split']}{f"; booster rows {split['train_from']}..{split['train_to']} ({split['train_groups']} merchants in {split['folds']} folds), calibration rows of the same merchants {split['valid_from']}..{split['valid_to']}, test rows {split['test_from']}..{split['test_to']} of {split['test_groups']} merchants held out whole (no booster or calibration row came from them)" if split['split'] == 'merchant_disjoint' else ""}.
Rows: booster {split['train_rows']:,}, calibration {split['valid_rows']:,}, test {split['test_rows']:,}
({split['test_bads']:,} defaults).

**Method.** LightGBM (binary; monotone constraints from the catalogue's risk directions; native
categoricals; {lgb['best_iteration']} trees, chosen by the pooled out-of-fold log loss of cross-fitting by
merchant, then refitted on all booster rows), calibrated to PD by {evaluation['calibration']['chosen']} on the
out-of-fold margins of the calibration rows (merchant-grouped cross-validated log loss:
{", ".join(f"{k} {v:.4f}" for k, v in evaluation['calibration']['cv_log_loss'].items())}).
Challenger: WoE logistic scorecard on {len(sc['selected_features'])} features, fitted on booster + calibration rows.{selection}

**Test evidence** (the registered model, {chosen}). AUC {m['auc']:.4f} (Gini {m['gini']:.4f}, KS {m['ks']:.4f}); Brier {m['brier']:.4f};
ECE {m['ece']:.4f}; mean PD {_pct(m['mean_pd'])} vs observed {_pct(m['default_rate'])};
score PSI train->test {m.get('psi_score_train_test', float('nan')):.3f}; Herfindahl of grades {m['herfindahl']:.3f}.
Challenger AUC {sc['metrics']['auc']:.4f}.

| class | rows (merchants) | mean PD | observed | Jeffreys p (per merchant) | rejected at 1% |
|---|---:|---:|---:|---:|---|
{classes}

**Reason codes.** {reasons} The baseline, the model's expected margin over the training rows, is
{lgb['baseline']['margin']:.4f} (PD {_pct(lgb['baseline']['pd'])} after calibration).
Most important features (mean |SHAP|): {top}.

**Limits.** The PD is calibrated to the calibration rows' period and default level; a shift in the economy
(see the PSI and CSI in `evaluation.json`) calls for recalibration. Grade D (default) is assigned
on observed default, never by the model.
"""


def _split_rows(data: TrainingTable) -> pd.DataFrame:
    """Id columns and role (train / calibration / test) of every row the run fitted or evaluated on."""
    parts = [data.frame.iloc[idx][data.id_columns].assign(role=role) for role, idx in data.split.roles()]
    return pd.concat(parts, ignore_index=True)


def _pct(x) -> str:
    return "-" if x is None else f"{x:.2%}"


def _dataset(data: TrainingTable):
    """The training table as an MLflow dataset: name@version, source path, file hash, schema.

    A metadata dataset with the schema built from the feature list: letting MLflow infer a
    schema from the frame inspects every value (~10 s on a 30k-row panel).
    """
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.types import ColSpec, Schema

    kinds = {"float": "double", "int": "double", "bool": "boolean", "category": "string"}
    columns = [ColSpec("datetime" if c == data.time_col else "string", c) for c in data.id_columns]
    if data.time_col and data.time_col not in data.id_columns:
        columns.append(ColSpec("datetime", data.time_col))
    columns += [ColSpec("long", data.target)] + [ColSpec(kinds[f.dtype], f.name, required=False) for f in data.features]
    with warnings.catch_warnings():  # two source classes claim local paths; either is right
        warnings.simplefilter("ignore", UserWarning)
        source = resolve_dataset_source(data.source.as_uri())
    return MetaDataset(source=source, name=f"{data.feature_set['name']}@{data.feature_set['version']}",
                       digest=data.sha256[:36], schema=Schema(columns))


def _flat_metrics(metrics: dict, prefix: str | None) -> dict[str, float]:
    out = {}
    for k, v in metrics.items():
        if isinstance(v, (int, float, np.integer, np.floating)) and v == v:  # drop NaN
            out[f"{prefix}.{k}" if prefix else k] = float(v)
    return out


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, (pd.Timestamp, np.datetime64)):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o)}")
