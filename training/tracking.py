"""MLflow logging of one training run: tags, params, the dataset, metrics, artefacts and both pyfunc models.

The log step of ``training.train``: :func:`started_run` opens the run and a scratch folder,
:func:`log_run` writes everything into it (the artefact tree ``serving_bundle/``, ``model.txt``,
``evaluation/`` with the model card, ``challenger/``) and logs the registered model's and the
challenger's pyfunc models; :func:`log_timings` adds the step timings last. MLflow is imported
inside the functions: the pipeline imports it in a helper thread while LightGBM trains.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from training.data import TrainingTable
from training.master_scale import MasterScale

TITLES = {
    "lightgbm": "LightGBM",
    "lightgbm_small": "LightGBM (small-table defaults)",
    "lightgbm_additive": "LightGBM (boosted stumps)",
    "scorecard": "WoE scorecard",
    "logistic": "One-hot logistic regression",
    "blend": "LightGBM + scorecard blend",
}
"""Plot titles of the selectable models."""


@dataclass
class Evidence:
    """What the evaluate step found on the test rows, as the log step writes it."""

    evaluation: dict  # evaluation/evaluation.json
    lightgbm: dict  # the registered model's evaluation (training.evaluate.evaluate_predictions)
    challenger: dict  # the scorecard challenger's evaluation
    scorecard: object  # the fitted training.scorecard.WoEScorecard
    importance: pd.DataFrame
    csi: dict[str, float]
    oof_auc: float
    pred_test: pd.DataFrame  # the registered model's predictions of the test rows


@dataclass
class Logged:
    """The logged run and its two pyfunc models."""

    run_id: str
    model_uri: str
    challenger_model_uri: str


@contextmanager
def started_run(experiment_id: str) -> Iterator[tuple[str, Path]]:
    """An MLflow run in ``experiment_id`` and a scratch folder for its artefacts, both closed on exit."""
    import mlflow

    with tempfile.TemporaryDirectory() as tmp_dir, mlflow.start_run(experiment_id=experiment_id) as run:
        yield run.info.run_id, Path(tmp_dir)


def log_run(
    run_id: str,
    tmp: Path,
    *,
    data: TrainingTable,
    fitted,
    scale: MasterScale,
    evidence: Evidence,
    model_name: str,
    seed: int,
    tune: int,
    engine: str,
    lap: Callable[[str], None],
) -> Logged:
    """Log tags, params, the dataset, metrics, the artefact tree and both pyfunc models to the active run.

    ``fitted``: ``training.select.Fitted``; ``lap(name)`` records the seconds since the last lap.
    """
    import mlflow

    selection = evidence.evaluation["selection"]
    mlflow.set_tags(
        {
            "feature_set": f"{data.feature_set['name']}@{data.feature_set['version']}",
            "model_name": model_name,
            "source": str(data.source),
        }
    )
    mlflow.log_params(_params(data, fitted, scale, selection, seed=seed, tune=tune, engine=engine))
    mlflow.log_input(_dataset(data), context="training", tags={"rows": str(len(data.frame)), "sha256": data.sha256})
    mlflow.log_metrics(_metrics(fitted, evidence))
    logged = tmp / "run"  # the run's artifact tree, logged in one call
    bundle_dir = fitted.bundle.save(logged / "serving_bundle")
    if (bundle_dir / "model.txt").exists():  # the native booster, beside the bundle (not for a scorecard)
        shutil.copy(bundle_dir / "model.txt", logged / "model.txt")
    _write_evaluation(logged / "evaluation", data, fitted, evidence, model_name)
    sc_model_dir = _write_challenger(logged / "challenger", tmp / "scorecard_model", evidence.scorecard, scale)
    mlflow.log_artifacts(str(logged))
    lap("log_artifacts")
    model_uri, challenger_uri = _log_models(data, fitted, scale, selection, bundle_dir, sc_model_dir)
    lap("log_models")
    return Logged(run_id, model_uri, challenger_uri)


def log_timings(timings: dict[str, float]) -> None:
    """The seconds of each step, as ``time.*`` metrics of the active run."""
    import mlflow

    mlflow.log_metrics({f"time.{k}": v for k, v in timings.items()})


def _params(
    data: TrainingTable, fitted, scale: MasterScale, selection: dict, *, seed: int, tune: int, engine: str
) -> dict:
    """The run's params: LightGBM's, the split windows, calibrator, selection, scale and feature set."""
    fit, features = fitted.fit, data.features
    lgb_params = {k: v for k, v in fit.params.items() if k != "monotone_constraints"}
    return {
        **{f"lgbm.{k}": v for k, v in lgb_params.items()},
        "lgbm.monotone_features": sum(1 for f in features if f.direction),
        "lgbm.best_iteration": fit.best_iteration,
        "tune_trials": tune,
        "seed": seed,
        "engine": engine,
        **{f"window.{k}": v for k, v in data.split.params(data.y).items()},
        "calibrator": fitted.calibrator.to_dict()["kind"],
        "selected_model": selection["selected_model"],
        "model_kind": fitted.bundle.kind,
        "selection_rule": selection["rule"][:500],
        "master_scale": f"{scale.name}@{scale.version}",
        "feature_set.name": data.feature_set["name"],
        "feature_set.version": data.feature_set["version"],
        "n_features": len(features),
        "dataset_sha256": data.sha256,
    }


def _metrics(fitted, evidence: Evidence) -> dict[str, float]:
    """Test metrics of both models, out-of-fold AUC and log loss, calibration and selection losses."""
    metrics = flat_metrics(evidence.lightgbm["metrics"], "test")
    metrics.update(flat_metrics(evidence.challenger["metrics"], "challenger.test"))
    metrics["oof_auc"] = evidence.oof_auc
    metrics["cv_log_loss"] = fitted.fit.cv_log_loss
    metrics.update({f"calibration.cv_log_loss.{k}": v for k, v in fitted.cal_losses.items()})
    metrics.update({k: v for k, v in evidence.evaluation["selection"]["metrics"].items() if v == v})
    return metrics


def _write_evaluation(ev_dir: Path, data: TrainingTable, fitted, evidence: Evidence, model_name: str) -> None:
    """``evaluation/``: the JSON, model card, importance, CSI, test window, split rows, trials, selection, plots."""
    from training.evaluate import write_plots

    evaluation, selection = evidence.evaluation, evidence.evaluation["selection"]
    split = data.split
    frame_test = data.frame.iloc[split.test]
    names = [f.name for f in data.features]
    ev_dir.mkdir()
    (ev_dir / "evaluation.json").write_text(
        json.dumps(evaluation, ensure_ascii=False, indent=2, default=_json_default), encoding="utf-8"
    )
    (ev_dir / "model_card.md").write_text(model_card(model_name, data, evaluation), encoding="utf-8")
    evidence.importance.to_csv(ev_dir / "feature_importance.csv", index=False)
    pd.DataFrame({"feature": list(evidence.csi), "csi": list(evidence.csi.values())}).to_csv(
        ev_dir / "csi.csv", index=False
    )
    frame_test[[*data.id_columns, data.target, *names]].to_parquet(ev_dir / "test_window.parquet", index=False)
    _split_rows(data).to_parquet(ev_dir / "split_rows.parquet", index=False)
    if fitted.fit.trials:
        pd.DataFrame(fitted.fit.trials).to_csv(ev_dir / "optuna_trials.csv", index=False)
    if selection["candidates"]:
        pd.DataFrame(selection["candidates"]).to_csv(ev_dir / "selection.csv", index=False)
    write_plots(
        ev_dir / "plots",
        data.y[split.test],
        evidence.pred_test,
        evidence.lightgbm,
        evidence.importance,
        title=TITLES.get(selection["selected_model"], selection["selected_model"]),
    )


def _write_challenger(sc_dir: Path, sc_model_dir: Path, scorecard, scale: MasterScale) -> Path:
    """The challenger's points table (an artefact) and its model folder (spec and scale, for its pyfunc)."""
    sc_dir.mkdir()
    sc_model_dir.mkdir()
    scorecard.points_table_.to_csv(sc_dir / "points_table.csv", index=False)
    (sc_model_dir / "scorecard.json").write_text(
        json.dumps(scorecard.spec_, ensure_ascii=False, indent=1), encoding="utf-8"
    )
    (sc_model_dir / "master_scale.yaml").write_text(scale.to_yaml(), encoding="utf-8")
    return sc_model_dir


def _log_models(
    data: TrainingTable, fitted, scale: MasterScale, selection: dict, bundle_dir: Path, sc_model_dir: Path
) -> tuple[str, str]:
    """Log the registered model's pyfunc (``model``) and the challenger's (``challenger_model``); their URIs."""
    from training import pyfunc

    features, bundle = data.features, fitted.bundle
    model_meta = {
        "id_columns": data.id_columns,
        "target": data.target,
        "features": [f.name for f in features],
        "feature_set": data.feature_set,
        "master_scale": f"{scale.name}@{scale.version}",
    }
    ids = {c: pd.api.types.is_datetime64_any_dtype(data.frame[c]) for c in data.id_columns}
    example = pyfunc.input_example(data.frame.iloc[data.split.test].head(3), features, data.id_columns)
    info = pyfunc.log_model(
        "model",
        {"serving_bundle": str(bundle_dir)},
        {**model_meta, "kind": bundle.kind, "selected_model": selection["selected_model"]},
        signature=pyfunc.model_signature(features, ids, reasons=True),
        example=example,
    )
    sc_info = pyfunc.log_model(
        "challenger_model",
        {"scorecard": str(sc_model_dir)},
        {**model_meta, "kind": "scorecard"},
        signature=pyfunc.model_signature(features, ids, reasons=False),
        example=example,
    )
    return info.model_uri, sc_info.model_uri


def model_card(model_name: str, data: TrainingTable, evaluation: dict) -> str:
    """A one-page summary for reviewers: data, windows, method, test evidence, reasons and limits."""
    lgb, sc, split = evaluation["lightgbm"], evaluation["challenger"], evaluation["split"]
    m = lgb["metrics"]
    classes = "\n".join(
        f"| {r['group']} | {r['n']:,} ({r['obligors']:,}) | {_pct(r['mean_pd'])} | {_pct(r['default_rate'])} | "
        f"{'-' if r['jeffreys_p'] is None else format(r['jeffreys_p'], '.3f')} | {'yes' if r['rejected'] else 'no'} |"
        for r in lgb["by_class"]
    )
    top = ", ".join(r["feature"] for r in evaluation["importance"][:8])
    sel = evaluation["selection"]
    chosen = sel["selected_model"]
    if sel["candidates"]:
        rows = "\n".join(
            f"| {r['candidate']}{' (selected)' if r['selected'] else ''} | {r['oof_log_loss']:.5f} | "
            f"{r['oof_auc']:.4f} | {r['oof_brier']:.5f} | {r['calibrator']} |"
            for r in sel["candidates"]
        )
        selection = (
            f"\n\n**Model selection.** {sel['rule']}. Registered: **{chosen}** ({sel['reason']}).\n\n"
            "| candidate | OOF log loss | OOF AUC | OOF Brier | calibrator |\n|---|---:|---:|---:|---|\n" + rows
        )
    else:
        selection = f"\n\n**Model selection.** {sel['rule']}."
    if chosen == "scorecard":
        reasons = (
            "Per row, the scorecard features whose bin lost the most points against that feature's best "
            "bin (coefficient x WoE gap, in log-odds), up to four."
        )
    elif chosen == "logistic":
        reasons = (
            "Per row, the features whose logistic term is furthest above its mean over the training rows "
            "(the exact SHAP value of a linear model), up to four."
        )
    else:
        reasons = (
            f"Per row, the features with the largest positive TreeSHAP contribution to the LightGBM margin"
            f"{' (times its blend weight: the scorecard part gives no reasons)' if chosen == 'blend' else ''}"
            f" (LightGBM `pred_contrib`), up to four, with the catalogue's reason texts."
        )
    return f"""# Model card: {model_name}

**Purpose.** 12-month probability of default (90+ days past due or written off) of a life-service
merchant, mapped to a score, a rating grade and a credit-risk class A (low) / B (general) /
C (higher) / D (high) by the master scale {evaluation["master_scale"]["name"]}@{evaluation["master_scale"]["version"]}.

**Data.** {data.feature_set["name"]}@{data.feature_set["version"]} from `{data.source}`
(SHA-256 `{data.sha256}`), {len(data.features)} features, label `{data.target}`.
Split: {split["split"]}{f"; booster rows {split['train_from']}..{split['train_to']} ({split['train_groups']} merchants in {split['folds']} folds), calibration rows of the same merchants {split['valid_from']}..{split['valid_to']}, test rows {split['test_from']}..{split['test_to']} of {split['test_groups']} merchants held out whole (no booster or calibration row came from them)" if split["split"] == "merchant_disjoint" else ""}.
Rows: booster {split["train_rows"]:,}, calibration {split["valid_rows"]:,}, test {split["test_rows"]:,}
({split["test_bads"]:,} defaults).

**Method.** LightGBM (binary; monotone constraints from the catalogue's risk directions; native
categoricals; {lgb["best_iteration"]} trees, chosen by the pooled out-of-fold log loss of cross-fitting by
merchant, then refitted on all booster rows), calibrated to PD by {evaluation["calibration"]["chosen"]} on the
out-of-fold margins of the calibration rows (merchant-grouped cross-validated log loss:
{", ".join(f"{k} {v:.4f}" for k, v in evaluation["calibration"]["cv_log_loss"].items())}).
Challenger: WoE logistic scorecard on {len(sc["selected_features"])} features, fitted on booster + calibration rows.{selection}

**Test evidence** (the registered model, {chosen}). AUC {m["auc"]:.4f} (Gini {m["gini"]:.4f}, KS {m["ks"]:.4f}); Brier {m["brier"]:.4f};
ECE {m["ece"]:.4f}; mean PD {_pct(m["mean_pd"])} vs observed {_pct(m["default_rate"])};
score PSI train->test {m.get("psi_score_train_test", float("nan")):.3f}; Herfindahl of grades {m["herfindahl"]:.3f}.
Challenger AUC {sc["metrics"]["auc"]:.4f}.

| class | rows (merchants) | mean PD | observed | Jeffreys p (per merchant) | rejected at 1% |
|---|---:|---:|---:|---:|---|
{classes}

**Reason codes.** {reasons} The baseline, the model's expected margin over the training rows, is
{lgb["baseline"]["margin"]:.4f} (PD {_pct(lgb["baseline"]["pd"])} after calibration).
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
    schema from the frame inspects every value, which is slow on a panel (figures: benchmarks/RESULTS.md).
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
    return MetaDataset(
        source=source,
        name=f"{data.feature_set['name']}@{data.feature_set['version']}",
        digest=data.sha256[:36],
        schema=Schema(columns),
    )


def flat_metrics(metrics: dict, prefix: str | None) -> dict[str, float]:
    """The numeric, non-NaN entries of ``metrics`` as floats, names prefixed with ``prefix.``."""
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
