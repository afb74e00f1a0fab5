"""Bring-your-own tables: ``train --table``'s selected model vs a careful analyst, paired per fold.

    .venv/bin/python benchmarks/bench_byo.py [--tables a,b] [--folds 5] [--trials 20] [--quick]

There are no real credit tables on this machine and nothing is downloaded, so the tables are
synthetic, in the shapes a reviewer measured on real ones (hundreds to 10k rows, bad rates 5-30 %,
mostly categorical or mostly numeric, missing values, interactions, threshold effects):

========================  ======  ========  =====================================================
table                     rows    bad rate  shape
========================  ======  ========  =====================================================
loans_numeric_10k         10,000  ~10 %     ``tests/integration/test_byo.py::credit_table``: mostly
                                            numeric, non-linear, an interaction, 5 % missing income
german_categorical_1k      1,000  ~30 %     German-credit-like: 13 categoricals, 4 numerics, an
                                            additive logistic truth over the categories
numeric_linear_3k          3,000   ~5 %     12 numerics, a linear logistic truth, 15 % missing with
                                            its own effect (missing not at random)
mixed_small_500              500  ~20 %     mixed, an interaction and a threshold, missing values
thresholds_5k              5,000  ~15 %     numerics with steps and a U shape, 2 categoricals
========================  ======  ========  =====================================================

Each table is written to Parquet and read with ``training.data.load_table`` (the CLI's loader:
feature types, categories). Outer folds: ``--folds`` stratified folds; for each, the three
contenders fit on the other folds' rows only and score the fold:

* **lifecredit**: ``training.select.fit_selected`` - the function ``train --table`` runs (LightGBM
  cross-fitted on 5 inner stratified folds, the small-table variants, the WoE scorecard, the blend,
  the winner by out-of-fold log loss, refitted and calibrated) - on a split whose booster and
  calibration rows are the outer fold-train rows and whose test rows are the outer fold; the fold is
  scored with the bundle it builds (``ScoringBundle.predict``), as ``lifecredit predict`` would.
* **tuned LightGBM**: an inner stratified 80/20 split of the fold-train rows, ``--trials`` Optuna
  (TPE) trials over learning rate, leaves, leaf size, feature and row subsampling and L2, each
  early-stopped on the inner validation log loss (patience 100), native categoricals; then refitted
  on all fold-train rows with the best trial's parameters and number of trees.
* **one-hot logistic regression**: numerics median-imputed with a missing indicator and
  standardised, categoricals one-hot (missing its own level, unseen ignored); the L2 strength
  chosen by 5-fold cross-validated log loss (``LogisticRegressionCV``).

Reports per table and fold the AUC and Brier score of each, the selected candidate, the paired
differences (lifecredit - reference) with their mean and standard error, and whether the goal
holds: mean paired AUC at least that of both references, mean paired Brier no worse. The ratio
printed is lifecredit's mean AUC over the better reference's (and wall time over the references').
Last line: JSON with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import warnings
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before lightgbm loads (as the CLI does)

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import polars as pl  # noqa: E402


# -- tables ------------------------------------------------------------------------------------
def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _intercept_for(logit: np.ndarray, rate: float) -> float:
    """The shift of ``logit`` that gives a mean PD of ``rate`` (bisection)."""
    lo, hi = -20.0, 20.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _sigmoid(logit + mid).mean() < rate else (lo, mid)
    return (lo + hi) / 2


def _label(rng, logit: np.ndarray, rate: float) -> np.ndarray:
    return (rng.random(len(logit)) < _sigmoid(logit + _intercept_for(logit, rate))).astype(int)


def loans_numeric(n: int, seed: int) -> pl.DataFrame:
    sys.path.insert(0, str(ROOT / "tests" / "integration"))
    from test_byo import credit_table

    return credit_table(n, seed=seed).drop("application_date")


def german_categorical(n: int, seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    cols, logit = {}, np.zeros(n)
    levels = [
        ("checking_status", 4, 1.2),
        ("credit_history", 5, 0.9),
        ("purpose", 10, 0.5),
        ("savings", 5, 0.6),
        ("employment", 5, 0.5),
        ("personal_status", 4, 0.3),
        ("other_debtors", 3, 0.4),
        ("property", 4, 0.4),
        ("other_plans", 3, 0.4),
        ("housing", 3, 0.3),
        ("job", 4, 0.2),
        ("telephone", 2, 0.1),
        ("foreign_worker", 2, 0.3),
    ]
    for name, k, strength in levels:
        p = rng.dirichlet(np.full(k, 2.0))
        codes = rng.choice(k, n, p=p)
        effect = rng.normal(0, strength, k)
        logit += effect[codes]
        cols[name] = np.array([f"{name[:3].upper()}{c}" for c in codes], dtype=object)
    duration = rng.integers(4, 72, n)
    amount = rng.lognormal(8.0, 0.7, n).round()
    age = rng.integers(19, 75, n)
    rate = rng.integers(1, 5, n)
    logit += 0.025 * duration + 0.25 * (np.log(amount) - 8.0) - 0.015 * (age - 35) + 0.15 * rate
    y = _label(rng, logit, 0.30)
    return pl.DataFrame(
        {
            "id": np.arange(n),
            **cols,
            "duration": duration,
            "credit_amount": amount,
            "age": age,
            "installment_rate": rate,
            "bad": y,
        }
    )


def numeric_linear(n: int, seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    k = 12
    cov = 0.3 * np.ones((k, k)) + 0.7 * np.eye(k)
    Z = rng.multivariate_normal(np.zeros(k), cov, n)
    beta = np.array([0.8, -0.6, 0.5, 0.4, -0.4, 0.3, 0.2, -0.2, 0.1, 0.0, 0.0, 0.0])
    logit = Z @ beta
    missing = rng.random(n) < 0.15
    logit += 0.6 * missing  # a missing bureau record is itself a risk signal
    y = _label(rng, logit, 0.05)
    cols = {f"x{j:02d}": Z[:, j] for j in range(k)}
    cols["x00"] = np.where(missing, np.nan, cols["x00"])
    cols["x01"] = np.where(missing, np.nan, cols["x01"])
    return pl.DataFrame({"id": np.arange(n), **cols, "bad": y}).with_columns(
        pl.col("x00").fill_nan(None), pl.col("x01").fill_nan(None)
    )


def mixed_small(n: int, seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    income = rng.lognormal(8.3, 0.6, n)
    util = np.clip(rng.beta(2, 3, n), 0, 1)
    tenure = rng.integers(0, 240, n)
    inquiries = rng.poisson(1.5, n)
    sector = rng.choice(["retail", "catering", "services", "repair", "beauty"], n, p=[0.3, 0.3, 0.2, 0.1, 0.1])
    owner = rng.choice(["own", "rent", "family"], n)
    logit = (
        2.0 * util
        + 0.4 * inquiries
        - 0.005 * tenure
        - 0.6 * (np.log(income) - 8.3)
        + 1.2 * util * (owner == "rent")
        + 0.8 * (inquiries >= 4)
        + np.select([sector == "catering", sector == "beauty"], [0.5, -0.4], 0.0)
    )
    y = _label(rng, logit, 0.20)
    income = np.where(rng.random(n) < 0.10, np.nan, income)
    tenure = np.where(rng.random(n) < 0.05, np.nan, tenure)
    return pl.DataFrame(
        {
            "id": np.arange(n),
            "income": income,
            "utilisation": util,
            "tenure_months": tenure,
            "inquiries": inquiries,
            "sector": sector,
            "owner": owner,
            "bad": y,
        }
    ).with_columns(pl.col("income").fill_nan(None), pl.col("tenure_months").fill_nan(None))


def thresholds(n: int, seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    dpd_max = rng.choice([0, 0, 0, 0, 5, 15, 35, 65, 95], n)
    age = rng.integers(18, 80, n)
    ratio = rng.gamma(2.0, 0.2, n)
    balance = rng.lognormal(9, 1.2, n)
    months = rng.integers(1, 120, n)
    channel = rng.choice(["branch", "online", "agent", "partner"], n, p=[0.4, 0.3, 0.2, 0.1])
    region = rng.choice([f"R{i}" for i in range(12)], n)
    region_effect = dict(zip([f"R{i}" for i in range(12)], rng.normal(0, 0.3, 12)))
    logit = (
        np.select([dpd_max >= 90, dpd_max >= 30, dpd_max > 0], [2.5, 1.5, 0.6], 0.0)
        + 0.0015 * (age - 45) ** 2
        + 1.2 * (ratio > 0.6)
        + 0.8 * (ratio > 1.0)
        - 0.3 * (np.log(balance) - 9) * (months > 24)
        + np.where(channel == "partner", 0.5, 0.0)
        + np.array([region_effect[r] for r in region])
    )
    y = _label(rng, logit, 0.15)
    ratio = np.where(rng.random(n) < 0.08, np.nan, ratio)
    return pl.DataFrame(
        {
            "id": np.arange(n),
            "dpd_max_12m": dpd_max,
            "age": age,
            "debt_ratio": ratio,
            "balance": balance,
            "months_on_book": months,
            "channel": channel,
            "region": region,
            "bad": y,
        }
    ).with_columns(pl.col("debt_ratio").fill_nan(None))


TABLES = {  # name -> (generator, rows, target, id, --categorical)
    "loans_numeric_10k": (loans_numeric, 10_000, "default_flag", "loan_id", ["branch"]),
    "german_categorical_1k": (german_categorical, 1_000, "bad", "id", []),
    "numeric_linear_3k": (numeric_linear, 3_000, "bad", "id", []),
    "mixed_small_500": (mixed_small, 500, "bad", "id", []),
    "thresholds_5k": (thresholds, 5_000, "bad", "id", []),
}


# -- contenders --------------------------------------------------------------------------------
def lifecredit_fold(table, train_rows: np.ndarray, test_rows: np.ndarray, seed: int) -> tuple[np.ndarray, str]:
    """``train --table``'s fit on the fold-train rows (its own inner stratified folds), the fold scored."""
    from sklearn.model_selection import StratifiedKFold

    from training.bundle import encode
    from training.data import FOLDS, Split
    from training.master_scale import MasterScale
    from training.select import fit_selected
    from training.train import TABLE_CANDIDATES

    y = table.y
    fold = np.full(len(y), -1, dtype=np.int64)
    n_folds = int(max(2, min(FOLDS, np.bincount(y[train_rows], minlength=2).min())))  # as stratified_split
    for k, (_, idx) in enumerate(
        StratifiedKFold(n_folds, shuffle=True, random_state=seed).split(train_rows, y[train_rows])
    ):
        fold[train_rows[idx]] = k
    split = Split("stratified_random", train_rows, train_rows, test_rows, fold, {})
    data = replace(table, split=split)
    X = encode(data.frame, data.features)
    fitted = fit_selected(
        X,
        y,
        split,
        data.features,
        MasterScale.load(),
        seed=seed,
        candidates=TABLE_CANDIDATES,
        bundle_kwargs={"id_columns": data.id_columns, "target": data.target, "num_threads": 2},
    )
    pd_test = fitted.bundle.predict(data.frame.iloc[test_rows], reasons=False)["pd"].to_numpy()
    return pd_test, fitted.selection.winner


def _analyst_frame(table) -> tuple[pd.DataFrame, list[str], list[str]]:
    names = [f.name for f in table.features]
    cat = [f.name for f in table.features if f.is_categorical]
    num = [n for n in names if n not in cat]
    return table.frame[names], num, cat


def tuned_lightgbm_fold(table, train_rows, test_rows, seed: int, trials: int) -> np.ndarray:
    import lightgbm as lgb
    import optuna
    from sklearn.model_selection import train_test_split

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    frame, num, cat = _analyst_frame(table)
    X = frame.copy()
    for c in cat:
        X[c] = X[c].astype("category")
    y = table.y
    inner_tr, inner_va = train_test_split(train_rows, test_size=0.2, stratify=y[train_rows], random_state=seed)
    base = {
        "objective": "binary",
        "metric": "binary_logloss",
        "verbosity": -1,
        "num_threads": 1,
        "seed": seed,
        "deterministic": True,
        "force_row_wise": True,
        "bagging_freq": 1,
    }
    dtr = lgb.Dataset(X.iloc[inner_tr], y[inner_tr], free_raw_data=False, params={"feature_pre_filter": False})
    dva = lgb.Dataset(X.iloc[inner_va], y[inner_va], reference=dtr, free_raw_data=False)

    def objective(trial):
        params = {
            **base,
            "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.2, log=True),
            "num_leaves": trial.suggest_int("num_leaves", 2, 63, log=True),
            "min_data_in_leaf": trial.suggest_int("min_data_in_leaf", 5, 200, log=True),
            "feature_fraction": trial.suggest_float("feature_fraction", 0.4, 1.0),
            "bagging_fraction": trial.suggest_float("bagging_fraction", 0.5, 1.0),
            "lambda_l2": trial.suggest_float("lambda_l2", 1e-3, 100.0, log=True),
        }
        b = lgb.train(params, dtr, 3000, valid_sets=[dva], callbacks=[lgb.early_stopping(100, verbose=False)])
        trial.set_user_attr("trees", int(b.best_iteration))
        return float(b.best_score["valid_0"]["binary_logloss"])

    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(objective, n_trials=trials)
    best = study.best_trial
    full = lgb.Dataset(X.iloc[train_rows], y[train_rows])
    booster = lgb.train({**base, **best.params}, full, max(1, best.user_attrs["trees"]))
    return booster.predict(X.iloc[test_rows])


def logistic_fold(table, train_rows, test_rows, seed: int) -> np.ndarray:
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    frame, num, cat = _analyst_frame(table)
    X = frame.copy()
    for c in cat:
        X[c] = X[c].astype(object).where(X[c].notna(), "__missing__").astype(str)
    for c in num:
        X[c] = pd.to_numeric(X[c], errors="coerce").astype(float)
    y = table.y
    model = make_pipeline(
        ColumnTransformer(
            [
                ("num", make_pipeline(SimpleImputer(strategy="median", add_indicator=True), StandardScaler()), num),
                ("cat", OneHotEncoder(handle_unknown="ignore"), cat),
            ]
        ),
        LogisticRegressionCV(
            Cs=10, cv=StratifiedKFold(5, shuffle=True, random_state=seed), scoring="neg_log_loss", max_iter=3000
        ),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X.iloc[train_rows], y[train_rows])
    return model.predict_proba(X.iloc[test_rows])[:, 1]


# -- benchmark ---------------------------------------------------------------------------------
def run_table(name: str, path: Path, spec, folds: int, trials: int, seed: int) -> dict:
    from sklearn.metrics import brier_score_loss, roc_auc_score
    from sklearn.model_selection import StratifiedKFold

    from training.data import load_table

    _, _, target, id_col, categorical = spec
    table = load_table(path, target=target, id_col=id_col, categorical=categorical, seed=seed)
    y = table.y
    rows = {"lifecredit": [], "tuned_lightgbm": [], "logistic": []}
    seconds = dict.fromkeys(rows, 0.0)
    selected = []
    for k, (tr, te) in enumerate(StratifiedKFold(folds, shuffle=True, random_state=seed).split(np.zeros(len(y)), y)):
        for who, fn in (
            ("lifecredit", lambda: lifecredit_fold(table, tr, te, seed)),
            ("tuned_lightgbm", lambda: tuned_lightgbm_fold(table, tr, te, seed, trials)),
            ("logistic", lambda: logistic_fold(table, tr, te, seed)),
        ):
            started = time.perf_counter()
            out = fn()
            seconds[who] += time.perf_counter() - started
            if who == "lifecredit":
                out, winner = out
                selected.append(winner)
            rows[who].append({"auc": float(roc_auc_score(y[te], out)), "brier": float(brier_score_loss(y[te], out))})
        line = "  ".join(f"{who} AUC {r[-1]['auc']:.4f} Brier {r[-1]['brier']:.4f}" for who, r in rows.items())
        print(f"  {name} fold {k}: {line}  [selected {selected[-1]}]", flush=True)
    result = {
        "rows": int(len(y)),
        "bad_rate": float(y.mean()),
        "features": len(table.features),
        "categorical": sum(f.is_categorical for f in table.features),
        "selected": selected,
        "per_fold": rows,
        "seconds": {k: round(v, 1) for k, v in seconds.items()},
        "paired": {},
    }
    ours = {m: np.array([r[m] for r in rows["lifecredit"]]) for m in ("auc", "brier")}
    for ref in ("tuned_lightgbm", "logistic"):
        theirs = {m: np.array([r[m] for r in rows[ref]]) for m in ("auc", "brier")}
        result["paired"][ref] = {}
        for m in ("auc", "brier"):
            d = ours[m] - theirs[m]
            result["paired"][ref][m] = {
                "mean_diff": float(d.mean()),
                "se": float(d.std(ddof=1) / np.sqrt(len(d))),
                "folds_ours_better": int((d > 0).sum() if m == "auc" else (d < 0).sum()),
            }
    mean = {who: {m: float(np.mean([r[m] for r in rs])) for m in ("auc", "brier")} for who, rs in rows.items()}
    result["mean"] = mean
    result["goal_auc"] = all(result["paired"][r]["auc"]["mean_diff"] >= 0 for r in result["paired"])
    result["goal_brier"] = all(result["paired"][r]["brier"]["mean_diff"] <= 0 for r in result["paired"])
    result["auc_ratio_vs_best_reference"] = mean["lifecredit"]["auc"] / max(
        mean["tuned_lightgbm"]["auc"], mean["logistic"]["auc"]
    )
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tables", default=",".join(TABLES), help="comma-separated subset of: " + ", ".join(TABLES))
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--trials", type=int, default=20, help="Optuna trials of the tuned LightGBM reference")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--quick", action="store_true", help="3 folds, 8 trials, tables at a fifth of their rows (>= 500)")
    args = ap.parse_args()
    folds, trials = (3, 8) if args.quick else (args.folds, args.trials)
    out: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.tables.split(","):
            spec = TABLES[name]
            n = max(500, spec[1] // 5) if args.quick else spec[1]
            path = Path(tmp) / f"{name}.parquet"
            spec[0](n, args.seed).write_parquet(path)
            print(f"{name}: {n:,} rows", flush=True)
            out[name] = run_table(name, path, spec, folds, trials, args.seed)
    print()
    print(
        f"{'table':24} {'rows':>6} {'bad':>5}  {'AUC ours':>8} {'tunedLGB':>8} {'logit':>8}  "
        f"{'dAUC lgb':>9} {'dAUC lr':>9}  {'Brier ours':>10} {'dBr lgb':>9} {'dBr lr':>9}  goal  selected"
    )
    for name, r in out.items():
        m, p = r["mean"], r["paired"]
        sel = ",".join(sorted(set(r["selected"]), key=r["selected"].index))
        print(
            f"{name:24} {r['rows']:>6} {r['bad_rate']:>5.1%}  {m['lifecredit']['auc']:>8.4f} "
            f"{m['tuned_lightgbm']['auc']:>8.4f} {m['logistic']['auc']:>8.4f}  "
            f"{p['tuned_lightgbm']['auc']['mean_diff']:>+9.4f} {p['logistic']['auc']['mean_diff']:>+9.4f}  "
            f"{m['lifecredit']['brier']:>10.5f} {p['tuned_lightgbm']['brier']['mean_diff']:>+9.5f} "
            f"{p['logistic']['brier']['mean_diff']:>+9.5f}  "
            f"{'yes' if r['goal_auc'] and r['goal_brier'] else 'NO':4}  {sel}"
        )
    ratios = [r["auc_ratio_vs_best_reference"] for r in out.values()]
    secs = {who: sum(r["seconds"][who] for r in out.values()) for who in ("lifecredit", "tuned_lightgbm", "logistic")}
    holds = all(r["goal_auc"] and r["goal_brier"] for r in out.values())
    print(
        "\nratio: lifecredit mean AUC / better reference's, per table: "
        + ", ".join(f"{x:.4f}" for x in ratios)
        + f" (min {min(ratios):.4f})"
    )
    print(
        f"time: lifecredit {secs['lifecredit']:.0f} s, tuned LightGBM {secs['tuned_lightgbm']:.0f} s "
        f"({args.trials if not args.quick else trials} trials), logistic {secs['logistic']:.0f} s"
    )
    print(f"goal (mean paired AUC >= both references, Brier no worse, every table): {'holds' if holds else 'NOT met'}")
    print(
        json.dumps(
            {
                "tables": out,
                "auc_ratio_min": min(ratios),
                "seconds": secs,
                "goal_holds": holds,
                "folds": folds,
                "trials": trials,
            }
        )
    )


if __name__ == "__main__":
    main()
