"""The truth check: a registered model judged against the simulator's true PD and a feature ceiling.

Rows
----
The check is measured on rows neither the model nor the ceiling was fitted on: by default the
**latest truth month**, the latest ``as_of`` present both in ``truth.parquet`` and in the
features (``panel.parquet`` ∪ ``latest.parquet``); ``as_of`` chooses other dates. Rows the
model was fitted on (role ``train`` or ``calibration`` in the run's
``evaluation/split_rows.parquet``) are dropped from those dates, and so are rows whose merchant
is already in default (true PD 1: the master scale's default grade is assigned on observed
default, never by the model). Every figure is given for **all** remaining merchants and for the
**unseen** ones: merchants none of whose rows trained or calibrated the model (see "Honest
evaluation" in DESIGN.md: a seen merchant's static attributes identify it).

Figures (one :func:`section` per population)
--------------------------------------------
* ``spearman`` - rank correlation of the model's ``pd`` with ``true_pd_12m``;
* ``kappa`` - quadratic-weighted Cohen's kappa of the model's class against the true class (the
  model's own master scale applied to ``true_pd_12m``), classes ordered A < B < C < D; with
  ``confusion`` (rows: true class, columns: model class) and ``class_share`` (share of merchants
  per class under the model and under the truth);
* ``by_class`` / ``by_grade`` - per model class (grade): merchants, mean PD, mean true PD;
* ``calibration`` - OLS of logit(true PD) on logit(PD), both clipped to [1e-4, 1 - 1e-4]:
  slope 1 and intercept 0 is perfect; slope < 1 means the model spreads PDs wider than the truth
  (over-confident), > 1 narrower; at slope 1 an intercept > 0 means PDs too low (under-prediction
  by a factor ~e^intercept in odds), < 0 too high. The intercept is the line's value at logit 0
  (PD 50 %), so away from slope 1 it mixes spread and level: ``offset``, the mean of
  logit(true PD) - logit(PD) (the intercept with the slope held at 1), gives the level alone;
* ``labels`` - AUC of ``pd`` and of ``true_pd_12m`` against the observed ``bad`` where those rows
  carry labels (usually none at the latest month: then skipped, with the reason);
* ``ceiling`` - the same Spearman and kappa for the feature ceiling, and the model's ratios to it
  (``spearman_ratio`` = model / ceiling, ``kappa_ratio``).

The feature ceiling
-------------------
A LightGBM regressor of logit(true PD) on the model's own training rows (role ``train``) and
the model's own features, encoded exactly as the serving bundle encodes them (categoricals
native), with fixed parameters (:data:`CEILING_PARAMS`, no monotone constraints) and early
stopping on 20 % of those merchants held out. Its PD is expit(prediction) (the median of a
log-normal-ish error, close to but below the mean), classed by the same master scale. It says
what the features allow when the target is the truth itself rather than a 0/1 outcome: a ratio
near 1 means the model extracts about what the features carry.

Functions taking frames and arrays (:func:`section`, :func:`calibration_line`,
:func:`class_agreement`, :func:`evaluation_rows`, :func:`fit_ceiling`) need no MLflow;
:func:`run` wires the model URI, the files and the MLflow run together.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
from scipy.special import expit

from core.settings import Settings
from training.master_scale import CLASSES, MasterScale

SPLIT_ROWS_ARTIFACT = "evaluation/split_rows.parquet"
JSON_ARTIFACT = "truth_check/truth_check.json"
JSON_NAME = "truth_check.json"
FITTED_ROLES = ("train", "calibration")
KEYS = ["merchant_id", "as_of"]
TRUE_PD = "true_pd_12m"
LABEL = "bad"
PD_CLIP = (1e-4, 1.0 - 1e-4)
CEILING_HOLDOUT = 0.2
CEILING_MAX_ROUNDS = 2000
CEILING_PATIENCE = 100
CEILING_PARAMS = {
    "objective": "regression", "metric": "l2", "learning_rate": 0.05, "num_leaves": 31,
    "min_data_in_leaf": 20, "feature_fraction": 0.8, "bagging_fraction": 0.8, "bagging_freq": 1,
    "lambda_l2": 1.0, "num_threads": 2, "deterministic": True, "force_row_wise": True, "verbosity": -1,
}
Progress = Callable[[str], None]


class TruthCheckError(RuntimeError):
    """The check cannot run: a missing artefact, file or date (the message says which and what to do)."""


# -- figures on frames ----------------------------------------------------------------------------
def logit(p) -> np.ndarray:
    """log(p / (1 - p)) with p clipped to :data:`PD_CLIP`."""
    p = np.clip(np.asarray(p, dtype=np.float64), *PD_CLIP)
    return np.log(p / (1.0 - p))


def _finite(x) -> float | None:
    x = float(x)
    return x if np.isfinite(x) else None


def spearman(a, b) -> float | None:
    """Spearman rank correlation (None with fewer than 3 rows or a constant input)."""
    from scipy.stats import spearmanr

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return None
    return _finite(spearmanr(a, b).statistic)


def calibration_line(pd_: Sequence[float], true_pd: Sequence[float]) -> dict:
    """OLS of logit(true PD) on logit(PD): ``slope`` 1 and ``intercept`` 0 is perfect; ``offset`` the mean
    logit gap (true - model; > 0: PDs too low) whatever the slope (module docstring)."""
    x, y = logit(pd_), logit(true_pd)
    offset = _finite(np.mean(y - x)) if len(x) else None
    if len(x) < 3 or np.ptp(x) == 0:
        return {"slope": None, "intercept": None, "offset": offset, "rows": int(len(x))}
    slope, intercept = np.polyfit(x, y, 1)
    return {"slope": _finite(slope), "intercept": _finite(intercept), "offset": offset, "rows": int(len(x))}


def class_agreement(model_class: Sequence[str], true_class: Sequence[str]) -> dict:
    """Quadratic-weighted kappa (A < B < C < D), confusion matrix (rows: truth) and class shares."""
    from sklearn.metrics import cohen_kappa_score, confusion_matrix

    m, t = np.asarray(model_class, dtype=object), np.asarray(true_class, dtype=object)
    labels = list(CLASSES)
    n = len(m)
    kappa = None
    if n and len(set(m) | set(t)) > 1:
        with np.errstate(invalid="ignore", divide="ignore"):
            kappa = _finite(cohen_kappa_score(t, m, labels=labels, weights="quadratic"))
    matrix = confusion_matrix(t, m, labels=labels).tolist() if n else [[0] * 4 for _ in labels]
    share = {who: {c: (float(np.mean(v == c)) if n else None) for c in labels} for who, v in (("model", m), ("truth", t))}
    return {"kappa": kappa, "confusion": {"rows": "true class", "columns": "model class", "labels": labels,
                                          "matrix": matrix},
            "class_share": share}


def _mean_table(frame: pd.DataFrame, by: str, groups: Sequence[str], truth_groups: np.ndarray) -> list[dict]:
    out = []
    for g in groups:
        rows = frame[frame[by] == g]
        out.append({by: g, "n": int(len(rows)), "n_true": int(np.sum(truth_groups == g)),
                    "mean_pd": _finite(rows["pd"].mean()) if len(rows) else None,
                    "mean_true_pd": _finite(rows[TRUE_PD].mean()) if len(rows) else None})
    return out


def label_auc(frame: pd.DataFrame) -> dict:
    """AUC of ``pd`` and of the true PD against ``bad`` on the rows that carry a label."""
    from sklearn.metrics import roc_auc_score

    labelled = frame[frame[LABEL].notna()] if LABEL in frame else frame.iloc[:0]
    y = labelled[LABEL].to_numpy(dtype=np.int8) if len(labelled) else np.zeros(0, dtype=np.int8)
    out = {"rows": int(len(y)), "bads": int(y.sum())}
    if len(np.unique(y)) < 2:
        out["skipped"] = "no labelled rows" if not len(y) else "labels hold one outcome only"
        return out
    out["auc_pd"] = float(roc_auc_score(y, labelled["pd"]))
    out["auc_true_pd"] = float(roc_auc_score(y, labelled[TRUE_PD]))
    return out


def _ratio(model: float | None, ceiling: float | None) -> float | None:
    return None if model is None or ceiling is None or ceiling <= 0 else model / ceiling


def section(frame: pd.DataFrame, scale: MasterScale) -> dict:
    """Every figure of the module docstring for one population.

    ``frame`` holds ``pd``, ``grade``, ``class`` (the model's), ``true_pd_12m``, optionally
    ``bad`` (null where unobserved), ``ceiling_pd`` and ``merchant_id``.
    """
    true_pd = frame[TRUE_PD].to_numpy(dtype=np.float64)
    true_class = scale.risk_class(true_pd) if len(frame) else np.zeros(0, dtype=object)
    true_grade = scale.grade(true_pd) if len(frame) else np.zeros(0, dtype=object)
    agreement = class_agreement(frame["class"].to_numpy(), true_class)
    out = {
        "rows": int(len(frame)),
        "merchants": int(frame["merchant_id"].nunique()) if "merchant_id" in frame else int(len(frame)),
        "spearman": spearman(frame["pd"], true_pd),
        "kappa": agreement["kappa"],
        "mean_pd": _finite(frame["pd"].mean()) if len(frame) else None,
        "mean_true_pd": _finite(true_pd.mean()) if len(frame) else None,
        "calibration": calibration_line(frame["pd"], true_pd),
        "confusion": agreement["confusion"],
        "class_share": agreement["class_share"],
        "by_class": _mean_table(frame, "class", CLASSES, true_class),
        "by_grade": _mean_table(frame, "grade", [g.grade for g in scale.live_grades], true_grade),
        "labels": label_auc(frame),
    }
    if "ceiling_pd" in frame:
        c_pd = frame["ceiling_pd"].to_numpy(dtype=np.float64)
        ceiling = {"spearman": spearman(c_pd, true_pd),
                   "kappa": class_agreement(scale.risk_class(c_pd), true_class)["kappa"] if len(frame) else None}
        out["ceiling"] = ceiling
        out["spearman_ratio"] = _ratio(out["spearman"], ceiling["spearman"])
        out["kappa_ratio"] = _ratio(out["kappa"], ceiling["kappa"])
    return out


# -- rows -----------------------------------------------------------------------------------------
def evaluation_rows(features: pl.DataFrame, truth: pl.DataFrame, as_of: Sequence[date] | None = None,
                    fitted: pl.DataFrame | None = None) -> tuple[pl.DataFrame, dict]:
    """Feature rows at the chosen dates joined with their true PD, less fitted and in-default rows.

    ``as_of`` None: the latest date present in both ``features`` and ``truth``. ``fitted``: the
    (merchant_id, as_of) rows the model was fitted on. Returns the rows and what was dropped.
    """
    common = sorted(set(features["as_of"].unique().to_list()) & set(truth["as_of"].unique().to_list()))
    if not common:
        raise TruthCheckError("no as_of date is both in the features and in the truth: were they built from "
                              "the same simulated market?")
    dates = [common[-1]] if not as_of else sorted(set(as_of))
    absent = [d for d in dates if d not in common]
    if absent:
        raise TruthCheckError(f"as_of {', '.join(map(str, absent))} not in both the features and the truth "
                              f"(dates in both: {common[0]} .. {common[-1]}, {len(common)} of them)")
    at = features.filter(pl.col("as_of").is_in(dates))
    rows = at.join(truth.select(*KEYS, TRUE_PD), on=KEYS, how="inner")
    facts = {"as_of": [str(d) for d in dates], "feature_rows": at.height, "without_truth": at.height - rows.height}
    in_default = rows.filter(pl.col(TRUE_PD) >= 1.0).height
    rows = rows.filter(pl.col(TRUE_PD) < 1.0)
    before = rows.height
    if fitted is not None:
        rows = rows.join(fitted.select(KEYS).unique(), on=KEYS, how="anti")
    facts.update(in_default=in_default, fitted_rows_dropped=before - rows.height, rows=rows.height)
    if not rows.height:
        raise TruthCheckError(f"no rows left to check at {', '.join(facts['as_of'])} ({facts['feature_rows']} feature "
                              f"rows, {facts['without_truth']} without truth, {in_default} in default, "
                              f"{facts['fitted_rows_dropped']} fitted on)")
    return rows.sort(KEYS), facts


# -- the feature ceiling --------------------------------------------------------------------------
@dataclass
class Ceiling:
    """The fitted ceiling: booster, its stopping round and the holdout it stopped on."""

    booster: object  # lightgbm.Booster
    best_iteration: int
    train_rows: int
    holdout_rows: int
    holdout_merchants: int
    holdout_rmse_logit: float
    params: dict

    def predict_pd(self, X: np.ndarray) -> np.ndarray:
        return expit(self.booster.predict(X, num_iteration=self.best_iteration))

    def summary(self) -> dict:
        return {"train_rows": self.train_rows, "holdout_rows": self.holdout_rows,
                "holdout_merchants": self.holdout_merchants, "best_iteration": self.best_iteration,
                "holdout_rmse_logit": self.holdout_rmse_logit, "params": self.params,
                "target": "logit(true_pd_12m), PD clipped to [1e-4, 1 - 1e-4]"}


def fit_ceiling(X: np.ndarray, true_pd: np.ndarray, groups: np.ndarray, categorical: Sequence[int] = (), *,
                seed: int = 7, holdout: float = CEILING_HOLDOUT, max_rounds: int = CEILING_MAX_ROUNDS) -> Ceiling:
    """LightGBM regressor of logit(true PD) on ``X``, early-stopped on ``holdout`` of the groups (merchants)."""
    import lightgbm as lgb

    y = logit(true_pd)
    ids = np.unique(groups)
    if len(ids) < 2:
        raise TruthCheckError("the feature ceiling needs training rows of at least 2 merchants")
    rng = np.random.default_rng(seed)
    held = rng.choice(ids, size=max(1, int(round(holdout * len(ids)))), replace=False)
    is_held = pd.Series(groups).isin(set(held)).to_numpy()
    params = {**CEILING_PARAMS, "seed": seed}
    cats = list(categorical) or "auto"
    train = lgb.Dataset(X[~is_held], y[~is_held], categorical_feature=cats, free_raw_data=False)
    valid = lgb.Dataset(X[is_held], y[is_held], categorical_feature=cats, reference=train)
    booster = lgb.train(params, train, num_boost_round=max_rounds, valid_sets=[valid],
                        callbacks=[lgb.early_stopping(CEILING_PATIENCE, verbose=False)])
    best = int(booster.best_iteration or booster.current_iteration())
    rmse = float(np.sqrt(np.mean((booster.predict(X[is_held], num_iteration=best) - y[is_held]) ** 2)))
    return Ceiling(booster, best, int((~is_held).sum()), int(is_held.sum()), int(len(held)), rmse, params)


# -- the whole check ------------------------------------------------------------------------------
def resolve_run(client, model_uri: str) -> dict:
    """``models:/name/version``, ``models:/name@alias`` or ``runs:/id/path`` -> run id, name, version."""
    if model_uri.startswith("runs:/"):
        run_id = model_uri.removeprefix("runs:/").split("/", 1)[0]
        return {"run_id": run_id, "name": None, "version": None}
    if not model_uri.startswith("models:/"):
        raise TruthCheckError(f"model URI {model_uri!r}: expected models:/NAME/VERSION, models:/NAME@ALIAS or "
                              "runs:/RUN_ID/model")
    ref = model_uri.removeprefix("models:/").rstrip("/")
    if "@" in ref:
        name, alias = ref.rsplit("@", 1)
        mv = client.get_model_version_by_alias(name, alias)
    else:
        name, _, version = ref.rpartition("/")
        mv = client.get_model_version(name, version)
    return {"run_id": mv.run_id, "name": name, "version": str(mv.version)}


def split_rows(client, run_id: str, tmp: str) -> pl.DataFrame:
    """The run's ``evaluation/split_rows.parquet`` (merchant_id, as_of, role)."""
    import mlflow

    folder, name = SPLIT_ROWS_ARTIFACT.rsplit("/", 1)
    if name not in {Path(a.path).name for a in client.list_artifacts(run_id, folder)}:
        raise TruthCheckError(f"this model's run ({run_id}) has no {SPLIT_ROWS_ARTIFACT}: retrain with this version "
                              "of lifecredit, whose training logs which rows trained the model")
    path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=SPLIT_ROWS_ARTIFACT, dst_path=tmp)
    rows = pl.read_parquet(path).select(pl.col("merchant_id").cast(pl.String), pl.col("as_of").cast(pl.Date),
                                        pl.col("role").cast(pl.String))
    roles = set(rows["role"].unique().to_list())
    if "train" not in roles or not roles <= {*FITTED_ROLES, "test"}:
        raise TruthCheckError(f"{SPLIT_ROWS_ARTIFACT} of run {run_id}: roles {sorted(map(str, roles))}, expected "
                              "train, calibration and test")
    return rows


def read_features(features_dir: Path) -> pl.DataFrame:
    """``panel.parquet`` ∪ ``latest.parquet`` (a row in both is taken from the panel, which carries ``bad``)."""
    parts = [pl.read_parquet(p) for p in (features_dir / "panel.parquet", features_dir / "latest.parquet") if p.exists()]
    if not parts:
        raise TruthCheckError(f"no panel.parquet or latest.parquet in {features_dir}: run `lifecredit features` first")
    frame = pl.concat(parts, how="diagonal_relaxed").unique(KEYS, keep="first", maintain_order=True)
    if LABEL not in frame.columns:
        frame = frame.with_columns(pl.lit(None, dtype=pl.Int8).alias(LABEL))
    return frame.with_columns(pl.col("merchant_id").cast(pl.String), pl.col("as_of").cast(pl.Date))


def read_truth(path: Path) -> pl.DataFrame:
    if not path.exists():
        raise TruthCheckError(f"{path} not found: the truth exists for simulated markets only "
                              "(`lifecredit simulate` writes it beside the raw tables)")
    return pl.read_parquet(path, columns=[*KEYS, TRUE_PD]).with_columns(
        pl.col("merchant_id").cast(pl.String), pl.col("as_of").cast(pl.Date))


def _load_model(model_uri: str, run_id: str, tmp: str):
    """The run's serving bundle (features, categories, master scale) and a scoring function for the model.

    A LightGBM model scores with the bundle (the same one its pyfunc wraps, without reasons);
    another kind (the scorecard challenger) through its pyfunc.
    """
    import mlflow

    from training.bundle import ScoringBundle, default_threads

    meta = mlflow.models.get_model_info(model_uri).metadata or {}
    bundle = ScoringBundle.load(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="serving_bundle",
                                                                    dst_path=tmp), num_threads=default_threads())
    kind = meta.get("kind", bundle.kind)
    if kind == "lightgbm":
        predict = lambda frame: bundle.predict(frame, reasons=False)  # noqa: E731
    else:
        model = mlflow.pyfunc.load_model(model_uri)
        predict = model.predict
    by_name = {f.name: f for f in bundle.features}
    features = [by_name[n] for n in meta.get("features", bundle.feature_names)]
    return predict, features, bundle.scale, kind


def run(model_uri: str, features_dir: str | Path, truth_path: str | Path, *, settings: Settings,
        out_dir: str | Path, as_of: Sequence[date] | None = None, seed: int = 7, log: bool = True,
        progress: Progress | None = None) -> dict:
    """Run the whole check; write ``OUT/truth_check.json`` and (local store, ``log``) log it to the model's run.

    ``settings`` names the MLflow store the model is read from. Returns the JSON's content plus ``out`` (its path) and ``logged`` (whether it went to the run).
    """
    from training.bundle import encode
    from training.registry import client as open_client

    say = progress or (lambda _msg: None)
    features_dir, truth_path, out_dir = Path(features_dir), Path(truth_path), Path(out_dir)
    truth = read_truth(truth_path)
    features = read_features(features_dir)
    c = open_client(settings)
    from mlflow.exceptions import MlflowException

    try:
        ref = resolve_run(c, model_uri)
    except MlflowException as err:
        raise TruthCheckError(f"model {model_uri}: {err.message}") from err
    run_id = ref["run_id"]
    with tempfile.TemporaryDirectory() as tmp:
        roles = split_rows(c, run_id, tmp)
        say(f"model {model_uri} (run {run_id}); loading it")
        predict, model_features, scale, kind = _load_model(model_uri, run_id, tmp)
    fitted = roles.filter(pl.col("role").is_in(FITTED_ROLES))
    seen = set(fitted["merchant_id"].to_list())
    rows, facts = evaluation_rows(features, truth, as_of, fitted)
    say(f"{rows.height:,} rows at {', '.join(facts['as_of'])}; scoring them")
    frame = rows.to_pandas()
    scored = predict(frame)
    # the ceiling: the model's own training rows, features and encoding, fitted to the truth
    train = (features.join(roles.filter(pl.col("role") == "train").select(KEYS), on=KEYS, how="semi")
             .join(truth, on=KEYS, how="inner").sort(KEYS).to_pandas())
    if not len(train):
        raise TruthCheckError("none of the model's training rows is in these features and truth: pass the features "
                              "the model was trained on")
    say(f"feature ceiling: LightGBM on logit(true PD) of the model's {len(train):,} training rows")
    cats = [j for j, f in enumerate(model_features) if f.is_categorical]
    ceiling = fit_ceiling(encode(train, model_features), train[TRUE_PD].to_numpy(), train["merchant_id"].to_numpy(),
                          cats, seed=seed)
    checked = pd.DataFrame({
        "merchant_id": frame["merchant_id"].to_numpy(), "as_of": frame["as_of"].to_numpy(),
        LABEL: frame[LABEL].to_numpy(), TRUE_PD: frame[TRUE_PD].to_numpy(),
        "pd": scored["pd"].to_numpy(), "grade": scored["grade"].astype(str).to_numpy(),
        "class": scored["class"].astype(str).to_numpy(),
        "ceiling_pd": ceiling.predict_pd(encode(frame, model_features)),
    })
    unseen = ~checked["merchant_id"].isin(seen).to_numpy()
    result = {
        "model": {"uri": model_uri, "run_id": run_id, "name": ref["name"], "version": ref["version"], "kind": kind,
                  "master_scale": f"{scale.name}@{scale.version}", "features": len(model_features)},
        "inputs": {"features": str(features_dir), "truth": str(truth_path)},
        "rows": facts,
        "seen_merchants": len(seen),
        "all": section(checked, scale),
        "unseen": section(checked[unseen], scale),
        "by_as_of": [{"as_of": str(pd.Timestamp(d).date()), "rows": int(len(g)), "spearman": spearman(g["pd"], g[TRUE_PD]),
                      "ceiling_spearman": spearman(g["ceiling_pd"], g[TRUE_PD])}
                     for d, g in checked.groupby("as_of", sort=True)],
        "ceiling": ceiling.summary(),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / JSON_NAME
    text = json.dumps(result, ensure_ascii=False, indent=2)
    out.write_text(text, encoding="utf-8")
    result["out"] = str(out)
    result["logged"] = False
    if log and _local(settings.tracking_uri):
        _log(c, run_id, result, text)
        result["logged"] = True
    return result


def _local(uri: str) -> bool:
    return uri.startswith(("sqlite:", "file:")) or "://" not in uri


def headline(result: dict) -> dict[str, float]:
    """The headline numbers as ``truth.*`` metrics (None and NaN left out)."""
    out: dict[str, float | None] = {}
    for prefix, sec in (("truth.", result["all"]), ("truth.unseen.", result["unseen"])):
        ceiling = sec.get("ceiling", {})
        out.update({
            f"{prefix}rows": sec["rows"], f"{prefix}spearman": sec["spearman"], f"{prefix}kappa": sec["kappa"],
            f"{prefix}ceiling_spearman": ceiling.get("spearman"), f"{prefix}ceiling_kappa": ceiling.get("kappa"),
            f"{prefix}spearman_ratio": sec.get("spearman_ratio"), f"{prefix}kappa_ratio": sec.get("kappa_ratio"),
            f"{prefix}calibration_slope": sec["calibration"]["slope"],
            f"{prefix}calibration_intercept": sec["calibration"]["intercept"],
            f"{prefix}calibration_offset": sec["calibration"]["offset"],
        })
    return {k: float(v) for k, v in out.items() if v is not None and np.isfinite(v)}


def _log(c, run_id: str, result: dict, text: str) -> None:
    import time

    from mlflow.entities import Metric

    stamp = int(time.time() * 1000)
    c.log_batch(run_id, metrics=[Metric(k, v, stamp, 0) for k, v in headline(result).items()])
    c.log_text(run_id, text, JSON_ARTIFACT)
