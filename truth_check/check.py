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
:func:`class_agreement`, :func:`evaluation_rows`, :func:`fit_ceiling`, :func:`headline`) need no
MLflow; :func:`truth_check.runner.run` wires the model URI, the files and the MLflow run together.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd
import polars as pl
from scipy.special import expit

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
    "objective": "regression",
    "metric": "l2",
    "learning_rate": 0.05,
    "num_leaves": 31,
    "min_data_in_leaf": 20,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "num_threads": 2,
    "deterministic": True,
    "force_row_wise": True,
    "verbosity": -1,
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
    share = {
        who: {c: (float(np.mean(v == c)) if n else None) for c in labels} for who, v in (("model", m), ("truth", t))
    }
    return {
        "kappa": kappa,
        "confusion": {"rows": "true class", "columns": "model class", "labels": labels, "matrix": matrix},
        "class_share": share,
    }


def _mean_table(frame: pd.DataFrame, by: str, groups: Sequence[str], truth_groups: np.ndarray) -> list[dict]:
    out = []
    for g in groups:
        rows = frame[frame[by] == g]
        out.append(
            {
                by: g,
                "n": int(len(rows)),
                "n_true": int(np.sum(truth_groups == g)),
                "mean_pd": _finite(rows["pd"].mean()) if len(rows) else None,
                "mean_true_pd": _finite(rows[TRUE_PD].mean()) if len(rows) else None,
            }
        )
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
        ceiling = {
            "spearman": spearman(c_pd, true_pd),
            "kappa": class_agreement(scale.risk_class(c_pd), true_class)["kappa"] if len(frame) else None,
        }
        out["ceiling"] = ceiling
        out["spearman_ratio"] = _ratio(out["spearman"], ceiling["spearman"])
        out["kappa_ratio"] = _ratio(out["kappa"], ceiling["kappa"])
    return out


# -- rows -----------------------------------------------------------------------------------------
def evaluation_rows(
    features: pl.DataFrame, truth: pl.DataFrame, as_of: Sequence[date] | None = None, fitted: pl.DataFrame | None = None
) -> tuple[pl.DataFrame, dict]:
    """Feature rows at the chosen dates joined with their true PD, less fitted and in-default rows.

    ``as_of`` None: the latest date present in both ``features`` and ``truth``. ``fitted``: the
    (merchant_id, as_of) rows the model was fitted on. Returns the rows and what was dropped.
    """
    common = sorted(set(features["as_of"].unique().to_list()) & set(truth["as_of"].unique().to_list()))
    if not common:
        raise TruthCheckError(
            "no as_of date is both in the features and in the truth: were they built from the same simulated market?"
        )
    dates = [common[-1]] if not as_of else sorted(set(as_of))
    absent = [d for d in dates if d not in common]
    if absent:
        raise TruthCheckError(
            f"as_of {', '.join(map(str, absent))} not in both the features and the truth "
            f"(dates in both: {common[0]} .. {common[-1]}, {len(common)} of them)"
        )
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
        raise TruthCheckError(
            f"no rows left to check at {', '.join(facts['as_of'])} ({facts['feature_rows']} feature "
            f"rows, {facts['without_truth']} without truth, {in_default} in default, "
            f"{facts['fitted_rows_dropped']} fitted on)"
        )
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
        return {
            "train_rows": self.train_rows,
            "holdout_rows": self.holdout_rows,
            "holdout_merchants": self.holdout_merchants,
            "best_iteration": self.best_iteration,
            "holdout_rmse_logit": self.holdout_rmse_logit,
            "params": self.params,
            "target": "logit(true_pd_12m), PD clipped to [1e-4, 1 - 1e-4]",
        }


def fit_ceiling(
    X: np.ndarray,
    true_pd: np.ndarray,
    groups: np.ndarray,
    categorical: Sequence[int] = (),
    *,
    seed: int = 7,
    holdout: float = CEILING_HOLDOUT,
    max_rounds: int = CEILING_MAX_ROUNDS,
) -> Ceiling:
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
    booster = lgb.train(
        params,
        train,
        num_boost_round=max_rounds,
        valid_sets=[valid],
        callbacks=[lgb.early_stopping(CEILING_PATIENCE, verbose=False)],
    )
    best = int(booster.best_iteration or booster.current_iteration())
    rmse = float(np.sqrt(np.mean((booster.predict(X[is_held], num_iteration=best) - y[is_held]) ** 2)))
    return Ceiling(booster, best, int((~is_held).sum()), int(is_held.sum()), int(len(held)), rmse, params)


def headline(result: dict) -> dict[str, float]:
    """The headline numbers as ``truth.*`` metrics (None and NaN left out)."""
    out: dict[str, float | None] = {}
    for prefix, sec in (("truth.", result["all"]), ("truth.unseen.", result["unseen"])):
        ceiling = sec.get("ceiling", {})
        out.update(
            {
                f"{prefix}rows": sec["rows"],
                f"{prefix}spearman": sec["spearman"],
                f"{prefix}kappa": sec["kappa"],
                f"{prefix}ceiling_spearman": ceiling.get("spearman"),
                f"{prefix}ceiling_kappa": ceiling.get("kappa"),
                f"{prefix}spearman_ratio": sec.get("spearman_ratio"),
                f"{prefix}kappa_ratio": sec.get("kappa_ratio"),
                f"{prefix}calibration_slope": sec["calibration"]["slope"],
                f"{prefix}calibration_intercept": sec["calibration"]["intercept"],
                f"{prefix}calibration_offset": sec["calibration"]["offset"],
            }
        )
    return {k: float(v) for k, v in out.items() if v is not None and np.isfinite(v)}
