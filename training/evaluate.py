"""Validation evidence for a PD model: the same code for the LightGBM champion candidate, the
scorecard challenger, the promotion gate and (later) the regulator views.

Everything here takes plain arrays (labels, PDs, scores, grades, classes) so that any model can
be judged the same way. Definitions:

* **AUC / Gini / KS**: discrimination of PD against the observed 12-month default; Gini =
  2 AUC - 1; KS = the largest gap between the cumulative distributions of bads and goods.
* **Brier, log loss**: mean squared error and cross-entropy of PD against the outcome.
* **ECE** (expected calibration error): the row-weighted mean absolute gap between mean PD
  and observed default rate over 10 equal-count PD bins (equal-count because PDs crowd near
  zero).
* **Jeffreys test** (per grade and per class): with a Jeffreys prior Beta(1/2, 1/2), the
  posterior of the true default rate after ``d`` defaults in ``n`` is Beta(d + 1/2, n - d + 1/2);
  the p-value is its CDF at the mean predicted PD. A small p-value says the observed default
  rate is significantly above the prediction (PD underestimated); the test is one-sided, as in
  the ECB's instructions for reporting the validation of internal models. A group is
  *rejected* at ``alpha`` (1%) when p < alpha. The test assumes independent obligors: when
  a test window holds several monthly rows of one merchant (``clusters``), those rows share
  most of their 12-month outcome window (one default labels up to twelve of them), so the test
  counts each merchant once - ``n`` becomes the number of distinct merchants in the group and
  ``d`` its default rate times that number. Row counts are reported beside it.
* **Herfindahl index** of the grade distribution: sum of squared shares (1/K when spread evenly
  over K grades, 1 when all in one); also reported normalised to [0, 1].
* **PSI**: population stability index sum((a - e) ln(a / e)) over bins fixed on the expected
  (train) distribution: 10 equal-count score bins for the score; the same for every numeric
  feature (the characteristic stability index, CSI), with missing values a bin of their own, and
  one bin per category for categoricals. Below 0.1 stable, 0.1-0.25 drifting, above 0.25 shifted.
* **Lift and gains** by PD decile (decile 1 = riskiest tenth).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from core.vocabulary import CLASSES

JEFFREYS_ALPHA = 0.01
PSI_EPS = 1e-4


# -- discrimination and calibration ---------------------------------------------------------
def ks_statistic(y: np.ndarray, p: np.ndarray) -> float:
    order = np.argsort(-p, kind="stable")
    ys = y[order]
    bads, goods = max(ys.sum(), 1), max(len(ys) - ys.sum(), 1)
    return float(np.max(np.abs(np.cumsum(ys) / bads - np.cumsum(1 - ys) / goods)))


def discrimination(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import roc_auc_score

    y = np.asarray(y).astype(int)
    if len(np.unique(y)) < 2:
        return {"auc": float("nan"), "gini": float("nan"), "ks": float("nan")}
    auc = float(roc_auc_score(y, p))
    return {"auc": auc, "gini": 2 * auc - 1, "ks": ks_statistic(y, np.asarray(p))}


def calibration(y: np.ndarray, p: np.ndarray, n_bins: int = 10) -> dict:
    from sklearn.metrics import brier_score_loss, log_loss

    y = np.asarray(y).astype(int)
    p = np.asarray(p, dtype=np.float64)
    bins = _equal_count_bins(p, n_bins)
    curve = (
        pd.DataFrame({"bin": bins, "y": y, "p": p})
        .groupby("bin")
        .agg(n=("y", "size"), mean_pd=("p", "mean"), default_rate=("y", "mean"))
        .reset_index()
    )
    ece = float((curve["n"] * (curve["mean_pd"] - curve["default_rate"]).abs()).sum() / len(y))
    return {
        "brier": float(brier_score_loss(y, p)),
        "log_loss": float(log_loss(y, np.clip(p, 1e-12, 1 - 1e-12), labels=[0, 1])),
        "ece": ece,
        "curve": curve.drop(columns="bin").to_dict("records"),
    }


def _equal_count_bins(p: np.ndarray, n_bins: int) -> np.ndarray:
    ranks = pd.Series(p).rank(method="first").to_numpy()
    return np.minimum(((ranks - 1) * n_bins / max(len(p), 1)).astype(int), n_bins - 1)


# -- groups: grades and classes -----------------------------------------------------------
def jeffreys_pvalue(n: float, defaults: float, mean_pd: float) -> float:
    """One-sided Jeffreys p-value: P(true default rate <= mean_pd | defaults out of n)."""
    from scipy.stats import beta

    return float(beta.cdf(mean_pd, defaults + 0.5, n - defaults + 0.5))


def group_table(
    y: np.ndarray,
    p: np.ndarray,
    groups: np.ndarray,
    order: list[str],
    alpha: float = JEFFREYS_ALPHA,
    clusters: np.ndarray | None = None,
) -> list[dict]:
    """Count, mean PD, observed default rate and Jeffreys test for each group in ``order``.

    ``clusters`` (a merchant id per row) makes the test count merchants, not rows (see the
    module docstring); ``obligors`` is that count.
    """
    frame = pd.DataFrame(
        {
            "g": np.asarray(groups).astype(str),
            "y": np.asarray(y).astype(int),
            "p": p,
            "c": np.arange(len(p)) if clusters is None else np.asarray(clusters),
        }
    )
    stats = frame.groupby("g").agg(
        n=("y", "size"), defaults=("y", "sum"), mean_pd=("p", "mean"), obligors=("c", "nunique")
    )
    rows = []
    for g in order:
        if g in stats.index:
            n, d, mpd = int(stats.at[g, "n"]), int(stats.at[g, "defaults"]), float(stats.at[g, "mean_pd"])
            k = int(stats.at[g, "obligors"])
            pval = jeffreys_pvalue(k, d * k / n, mpd)
            rows.append(
                {
                    "group": g,
                    "n": n,
                    "obligors": k,
                    "share": n / len(frame),
                    "defaults": d,
                    "mean_pd": mpd,
                    "default_rate": d / n,
                    "jeffreys_p": pval,
                    "rejected": bool(pval < alpha),
                }
            )
        else:
            rows.append(
                {
                    "group": g,
                    "n": 0,
                    "obligors": 0,
                    "share": 0.0,
                    "defaults": 0,
                    "mean_pd": None,
                    "default_rate": None,
                    "jeffreys_p": None,
                    "rejected": False,
                }
            )
    return rows


def herfindahl(counts) -> dict[str, float]:
    counts = np.asarray(counts, dtype=np.float64)
    shares = counts / max(counts.sum(), 1)
    hi = float((shares**2).sum())
    k = len(counts)
    return {"herfindahl": hi, "herfindahl_normalised": (hi - 1 / k) / (1 - 1 / k) if k > 1 else 1.0}


# -- stability ----------------------------------------------------------------------------
def psi_from_counts(expected, actual) -> float:
    e = np.asarray(expected, dtype=np.float64)
    a = np.asarray(actual, dtype=np.float64)
    e = np.maximum(e / max(e.sum(), 1), PSI_EPS)
    a = np.maximum(a / max(a.sum(), 1), PSI_EPS)
    return float(((a - e) * np.log(a / e)).sum())


def psi(expected, actual, *, n_bins: int = 10, categorical: bool = False) -> float:
    """PSI of ``actual`` against ``expected`` (bins fixed on ``expected``; see module docstring)."""
    if categorical:
        e = pd.Series(np.asarray(expected, dtype=object)).fillna("<null>").astype(str)
        a = pd.Series(np.asarray(actual, dtype=object)).fillna("<null>").astype(str)
        cats = sorted(set(e) | set(a))
        return psi_from_counts(
            e.value_counts().reindex(cats, fill_value=0), a.value_counts().reindex(cats, fill_value=0)
        )
    e = np.asarray(expected, dtype=np.float64)
    a = np.asarray(actual, dtype=np.float64)
    e_ok, a_ok = e[~np.isnan(e)], a[~np.isnan(a)]
    edges = np.unique(np.quantile(e_ok, np.linspace(0, 1, n_bins + 1)[1:-1])) if len(e_ok) else np.array([])
    e_counts = np.append(
        np.bincount(np.searchsorted(edges, e_ok, side="right"), minlength=len(edges) + 1), np.isnan(e).sum()
    )
    a_counts = np.append(
        np.bincount(np.searchsorted(edges, a_ok, side="right"), minlength=len(edges) + 1), np.isnan(a).sum()
    )
    return psi_from_counts(e_counts, a_counts)


def characteristic_stability(train: pd.DataFrame, test: pd.DataFrame, features) -> dict[str, float]:
    """CSI (a PSI per feature) between the train and test windows."""
    return {
        f.name: psi(train[f.name].to_numpy(), test[f.name].to_numpy(), categorical=f.is_categorical) for f in features
    }


def lift_gains(y: np.ndarray, p: np.ndarray, n: int = 10) -> list[dict]:
    """Per PD decile, riskiest first: rows, defaults, default rate, lift, cumulative share of bads."""
    y = np.asarray(y).astype(int)
    decile = n - _equal_count_bins(np.asarray(p, dtype=np.float64), n)  # 1 = riskiest
    frame = pd.DataFrame({"d": decile, "y": y}).groupby("d")["y"].agg(["size", "sum"]).sort_index()
    base = y.mean() if len(y) else float("nan")
    total = max(y.sum(), 1)
    rows, cum = [], 0
    for d, (size, bads) in frame.iterrows():
        cum += bads
        rows.append(
            {
                "decile": int(d),
                "n": int(size),
                "defaults": int(bads),
                "default_rate": bads / size,
                "lift": (bads / size) / base if base else float("nan"),
                "cumulative_gain": cum / total,
            }
        )
    return rows


# -- one call for a model ------------------------------------------------------------------
def evaluate_predictions(
    y: np.ndarray,
    pred: pd.DataFrame,
    scale,
    *,
    train_score: np.ndarray | None = None,
    alpha: float = JEFFREYS_ALPHA,
    clusters: np.ndarray | None = None,
) -> dict:
    """All test-window evidence for one model's predictions (``pd``, ``score``, ``grade``, ``class``).

    ``clusters``: the merchant id of each row (Jeffreys counts merchants; see :func:`group_table`).
    """
    y = np.asarray(y).astype(int)
    p = pred["pd"].to_numpy(dtype=np.float64)
    cal = calibration(y, p)
    grade_order = [g.grade for g in scale.grades]
    by_grade = group_table(y, p, pred["grade"].to_numpy(), grade_order, alpha, clusters)
    by_class = group_table(y, p, pred["class"].to_numpy(), list(CLASSES), alpha, clusters)
    metrics = {
        "n": int(len(y)),
        "defaults": int(y.sum()),
        "default_rate": float(y.mean()) if len(y) else float("nan"),
        "mean_pd": float(p.mean()) if len(p) else float("nan"),
        **discrimination(y, p),
        **{k: cal[k] for k in ("brier", "log_loss", "ece")},
        **herfindahl([r["n"] for r in by_grade if r["group"] != scale.default_grade.grade]),
        "classes_rejected": sum(r["rejected"] for r in by_class),
        "grades_rejected": sum(r["rejected"] for r in by_grade),
    }
    if train_score is not None:
        metrics["psi_score_train_test"] = psi(train_score, pred["score"].to_numpy(dtype=np.float64))
    return {
        "metrics": metrics,
        "by_grade": by_grade,
        "by_class": by_class,
        "jeffreys_alpha": alpha,
        "calibration_curve": cal["curve"],
        "lift_gains": lift_gains(y, p),
    }


# -- plots ---------------------------------------------------------------------------------
def _figure(width: float = 6.0, height: float = 4.2):
    from matplotlib.figure import (
        Figure,  # the object API: no pyplot, no global backend state
    )

    return Figure(figsize=(width, height), dpi=100)


def write_plots(
    out: Path,
    y: np.ndarray,
    pred: pd.DataFrame,
    evaluation: dict,
    importance: pd.DataFrame | None = None,
    *,
    title: str = "",
) -> list[Path]:
    """ROC, calibration, score by class, class distribution (and importance) as PNG files in ``out``."""
    from sklearn.metrics import roc_curve

    out.mkdir(parents=True, exist_ok=True)
    y = np.asarray(y).astype(int)
    paths = []

    fig = _figure()
    ax = fig.add_subplot()
    fpr, tpr, _ = roc_curve(y, pred["pd"].to_numpy())
    ax.plot(fpr, tpr, label=f"AUC {evaluation['metrics']['auc']:.3f}")
    ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=0.8)
    ax.set(xlabel="false positive rate (goods)", ylabel="true positive rate (bads)", title=f"ROC {title}".strip())
    ax.legend(loc="lower right")
    paths.append(_save(fig, out / "roc.png"))

    fig = _figure()
    ax = fig.add_subplot()
    curve = pd.DataFrame(evaluation["calibration_curve"])
    top = float(max(curve["mean_pd"].max(), curve["default_rate"].max()) * 1.1) or 1.0
    ax.plot([0, top], [0, top], ls="--", c="grey", lw=0.8)
    ax.plot(curve["mean_pd"], curve["default_rate"], marker="o")
    ax.set(
        xlabel="mean predicted PD",
        ylabel="observed default rate",
        title=f"calibration (10 equal-count bins), ECE {evaluation['metrics']['ece']:.4f}",
    )
    paths.append(_save(fig, out / "calibration.png"))

    fig = _figure()
    ax = fig.add_subplot()
    for cls in CLASSES:
        s = pred.loc[pred["class"] == cls, "score"]
        if len(s):
            ax.hist(s, bins=30, alpha=0.6, label=f"{cls} ({len(s)})")
    ax.set(xlabel="score", ylabel="merchants", title="score distribution by class")
    ax.legend()
    paths.append(_save(fig, out / "score_by_class.png"))

    fig = _figure()
    ax = fig.add_subplot()
    rows = evaluation["by_class"]
    x = np.arange(len(rows))
    ax.bar(x - 0.2, [r["share"] for r in rows], width=0.4, label="share of merchants")
    ax.bar(x + 0.2, [r["default_rate"] or 0 for r in rows], width=0.4, label="observed default rate")
    ax.plot(x + 0.2, [r["mean_pd"] or 0 for r in rows], "k_", ms=18, mew=2, label="mean PD")
    ax.set_xticks(x, [r["group"] for r in rows])
    ax.set(title="class distribution and default rates (test window)")
    ax.legend()
    paths.append(_save(fig, out / "class_distribution.png"))

    if importance is not None and len(importance):
        top_n = importance.head(20).iloc[::-1]
        fig = _figure(10.5, max(3.0, 0.28 * len(top_n) + 1))
        for k, (col, label) in enumerate((("gain", "total gain"), ("mean_abs_shap", "mean |SHAP| (margin)"))):
            ax = fig.add_subplot(1, 2, k + 1)
            ax.barh(top_n["feature"], top_n[col])
            ax.set(xlabel=label)
            if k:
                ax.set_yticklabels([])
        fig.suptitle("feature importance (top 20 by mean |SHAP|)")
        fig.subplots_adjust(left=0.36, right=0.97, top=0.9, wspace=0.08)
        paths.append(_save(fig, out / "feature_importance.png"))
    return paths


def _save(fig, path: Path) -> Path:
    fig.savefig(path)
    return path
