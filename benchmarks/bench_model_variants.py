"""Model variants against the truth: what the pipeline's modelling choices buy (issue 13, item 0).

    .venv/bin/python benchmarks/bench_model_variants.py [--work benchmarks/out/validity]
        [--market seed7-baseline --other seed11-baseline] [--variants base,no_identity,...]

Reuses the markets ``bench_validity.py`` built in ``--work`` (run it first). For each variant the
pipeline's own pieces run in this process - the merchant-disjoint split, ``lgbm.crossfit``, the
calibrator choice, the serving bundle - with one thing changed, and the result is judged as
``bench_validity`` judges it: AUC on the test rows (merchants held out whole) minus the true PD's
AUC on the same rows; Spearman and class kappa against the true PD at the latest month as ratios
to the feature ceiling (fitted once, on the base split's booster rows); the share of class A;
and the AUC gap on the other market's last six labelled months. The reference is the ``base``
variant, run in the same process: each variant's line gives its difference to it.

Variants: ``base`` (the pipeline as it is); ``with_identity`` (sector, province, urban/rural and
business form as native categorical inputs, as before catalogue 1.3.0); ``merchant_weight`` (one unit of weight per merchant and outcome window:
a row weighs max(1/rows of its merchant, 1/12)); ``leaf_merchants`` (a leaf holds at least 50
merchants' worth of rows); ``small_leaves`` (a leaf of 30 rows: lets the few rows 60+ days in
arrears form leaves of their own); ``unconstrained`` (no monotone constraints); ``slow`` (learning rate
0.01); ``half_features`` (the earlier 50 % features and 80 % rows per round).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

VARIANTS = (
    "base",
    "with_identity",
    "merchant_weight",
    "leaf_merchants",
    "small_leaves",
    "unconstrained",
    "slow",
    "half_features",
)
IDENTITY = ("sector", "province", "urban_rural", "business_form")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "out" / "validity")
    ap.add_argument("--market", default="seed7-baseline")
    ap.add_argument("--other", default="seed11-baseline")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    args = ap.parse_args()
    market, other = _load(args.work / args.market), _load(args.work / args.other)
    ceiling = _ceiling(market)
    rows = []
    for name in args.variants.split(","):
        r = _run(name, market, other, ceiling)
        rows.append(r)
        base = rows[0]
        print(
            f"{name:<16} trees {r['trees']:>4}  {r['calibrator']:<8} unseen gap {r['unseen_gap']:+.4f}  "
            f"Spearman ratio {r['spearman_ratio']:.3f}  kappa ratio {r['kappa_ratio']:.3f}  "
            f"class A {r['class_a']:.1%} (truth {r['class_a_truth']:.1%})  transfer gap {r['transfer_gap']:+.4f}"
            + (
                ""
                if r is base
                else f"  | vs base: unseen {r['unseen_gap'] - base['unseen_gap']:+.4f}, Spearman "
                f"{r['spearman_ratio'] - base['spearman_ratio']:+.3f}, kappa {r['kappa_ratio'] - base['kappa_ratio']:+.3f}, "
                f"transfer {r['transfer_gap'] - base['transfer_gap']:+.4f}"
            ),
            flush=True,
        )
    print(json.dumps({"market": args.market, "other": args.other, "ceiling": ceiling, "variants": rows}))


def _load(d: Path) -> dict:
    import polars as pl

    from training.data import load_panel

    truth = pl.read_parquet(d / "raw" / "truth.parquet").with_columns(pl.col("as_of").cast(pl.Date))
    data = load_panel(d / "features")
    ids = pl.read_parquet(d / "features" / "panel.parquet", columns=["merchant_id", "as_of", *IDENTITY])
    left = pl.from_pandas(data.frame).drop(IDENTITY, strict=False)
    data.frame = left.join(
        ids.with_columns(pl.col("as_of").cast(left.schema["as_of"])),
        on=["merchant_id", "as_of"],
        how="left",
        maintain_order="left",
    ).to_pandas()
    frame = (
        pl.from_pandas(data.frame)
        .with_columns(pl.col("as_of").cast(pl.Date))
        .join(truth, on=["merchant_id", "as_of"], how="left")
        .to_pandas()
    )
    latest = (
        pl.read_parquet(d / "features" / "latest.parquet")
        .with_columns(pl.col("as_of").cast(pl.Date))
        .join(truth, on=["merchant_id", "as_of"])
        .filter(pl.col("true_pd_12m") < 1)
        .to_pandas()
    )
    late = sorted(frame["as_of"].unique())[-6:]
    return {"data": data, "frame": frame, "latest": latest, "late": frame[frame["as_of"].isin(late)]}


def _ceiling(m: dict) -> dict:
    from scipy.stats import spearmanr
    from sklearn.metrics import cohen_kappa_score

    from training.bundle import encode
    from training.master_scale import MasterScale
    from truth_check.check import fit_ceiling

    data, frame, latest = m["data"], m["frame"], m["latest"]
    train = frame.iloc[data.split.train]
    cats = [j for j, f in enumerate(data.features) if f.is_categorical]
    c = fit_ceiling(
        encode(train, data.features), train["true_pd_12m"].to_numpy(), train["merchant_id"].to_numpy(), cats
    )
    p, t = c.predict_pd(encode(latest, data.features)), latest["true_pd_12m"].to_numpy()
    scale = MasterScale.load()
    return {
        "spearman": float(spearmanr(p, t).statistic),
        "kappa": float(
            cohen_kappa_score(scale.risk_class(p).astype(str), scale.risk_class(t).astype(str), weights="quadratic")
        ),
    }


def _run(name: str, m: dict, other: dict, ceiling: dict) -> dict:
    import numpy as np
    import pandas as pd
    from scipy.stats import spearmanr
    from sklearn.metrics import cohen_kappa_score, roc_auc_score

    from training import lgbm
    from training.bundle import ScoringBundle, encode
    from training.calibration import choose_calibrator
    from training.master_scale import MasterScale

    if name not in VARIANTS:
        sys.exit(f"unknown variant {name!r}; choose from {', '.join(VARIANTS)}")
    data, frame = m["data"], m["frame"]
    s, y = data.split, data.y
    features = list(data.features)
    if name == "with_identity":
        from training.bundle import ModelInput

        features += [
            ModelInput(
                name=n,
                dtype="category",
                reason=False,
                categories=tuple(sorted(data.frame[n].dropna().astype(str).unique())),
            )
            for n in IDENTITY
        ]
    X = encode(data.frame, features)
    params = lgbm.base_params(features, seed=7, n_rows=len(s.train))
    weight = None
    if name == "merchant_weight":
        n = pd.Series(data.frame["merchant_id"]).map(data.frame["merchant_id"].value_counts()).to_numpy()
        weight = np.maximum(1.0 / n, 1.0 / 12)
    elif name == "leaf_merchants":
        rows_per_merchant = len(s.train) / data.frame["merchant_id"].iloc[s.train].nunique()
        params["min_data_in_leaf"] = int(50 * rows_per_merchant)
    elif name == "small_leaves":
        params["min_data_in_leaf"] = 30
    elif name == "unconstrained":
        params["monotone_constraints"] = [0] * len(features)
    elif name == "slow":
        params["learning_rate"] = 0.01
    elif name == "half_features":
        params.update(feature_fraction=0.5, bagging_fraction=0.8)
    fit = lgbm.crossfit(X, y, s.train, s.valid, s.fold, features, seed=7, params=params, weight=weight)
    calibrator, _ = choose_calibrator(fit.oof_margin, y[s.valid], groups=s.fold[s.valid], seed=7)
    scale = MasterScale.load()
    bundle = ScoringBundle(booster=fit.booster, calibrator=calibrator.to_dict(), scale=scale, features=features)
    test = bundle.predict(data.frame.iloc[s.test], reasons=False)["pd"].to_numpy()
    latest = bundle.predict(m["latest"], reasons=False)
    truth = m["latest"]["true_pd_12m"].to_numpy()
    late = other["late"]
    transfer = bundle.predict(late, reasons=False)["pd"].to_numpy()
    return {
        "variant": name,
        "trees": fit.best_iteration,
        "calibrator": calibrator.to_dict()["kind"],
        "unseen_gap": float(
            roc_auc_score(y[s.test], test) - roc_auc_score(y[s.test], frame["true_pd_12m"].iloc[s.test])
        ),
        "spearman_ratio": float(spearmanr(latest["pd"], truth).statistic) / ceiling["spearman"],
        "kappa_ratio": float(
            cohen_kappa_score(latest["class"].astype(str), scale.risk_class(truth).astype(str), weights="quadratic")
        )
        / ceiling["kappa"],
        "class_a": float((latest["class"] == "A").mean()),
        "class_a_truth": float((scale.risk_class(truth) == "A").mean()),
        "transfer_gap": float(roc_auc_score(late["bad"], transfer) - roc_auc_score(late["bad"], late["true_pd_12m"])),
    }


if __name__ == "__main__":
    main()
