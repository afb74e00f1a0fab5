"""Model validity benchmark: PDs and classes against the simulator's truth (issue 13's goals).

    .venv/bin/python benchmarks/bench_validity.py [--merchants N --months M --volume-scale F]
        [--markets 7,11,13:downturn] [--work DIR] [--reuse]

For each market (a seed, optionally ``:downturn``; the first is the demo market: the defaults
are ``scripts/demo.sh``'s) it runs the real command line, as a user would, into one MLflow store:
``simulate`` -> ``validate`` -> ``features`` -> ``train`` -> ``promote`` (never forced) ->
``truth-check``. Then, reading ``truth.parquet`` (a benchmark may; training never does):

* **gate**: whether ``promote`` passed unforced, and the failing checks if not;
* **truth check**: Spearman(pd, true PD) and quadratic-weighted kappa of the class against the
  true class, each with the feature ceiling's on the same rows and the ratio (goal >= 0.85);
  class shares under the model and the truth (goal: a class holding >= 5 % of merchants under
  the truth holds at least half that share under the model);
* **unseen merchants, same market**: AUC of the model's PD on its test rows (merchants held out
  whole, after every training row) against the AUC of ``true_pd_12m`` on the same rows (the
  reference doing the same job: ranking the same rows; goal: gap >= -0.03);
* **another market**: the first market's model applied to every other market's late labelled
  rows (its last six labelled months): AUC against the true PD's AUC on the same rows (goal
  gap >= -0.03), mean PD against the observed rate, and the Jeffreys test per class at 1 %
  (each merchant counted once; goal: none rejected).

Prints a table per market, the goals, then one JSON line with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
LC = str(ROOT / ".venv" / "bin" / "lifecredit")
LATE_MONTHS = 6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--merchants", type=int, default=int(os.environ.get("DEMO_MERCHANTS", 12000)))
    ap.add_argument("--months", type=int, default=int(os.environ.get("DEMO_MONTHS", 30)))
    ap.add_argument("--volume-scale", type=float, default=float(os.environ.get("DEMO_VOLUME_SCALE", 0.1)))
    ap.add_argument("--markets", default="7,11,13:downturn", help="seed[:scenario],... (the first is the demo's)")
    ap.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "out" / "validity")
    ap.add_argument("--reuse", action="store_true", help="reuse markets and features already in --work")
    args = ap.parse_args()

    markets = [_parse(m) for m in args.markets.split(",")]
    if not args.reuse:
        shutil.rmtree(args.work, ignore_errors=True)
    mlruns = args.work / "mlruns"
    shutil.rmtree(mlruns, ignore_errors=True)
    env = {
        **os.environ,
        "LIFECREDIT_MLRUNS_DIR": str(mlruns),
        "LIFECREDIT_DATA_DIR": str(args.work / "data"),
        "OMP_WAIT_POLICY": "PASSIVE",
    }
    results = []
    for seed, scenario in markets:
        name = f"seed{seed}-{scenario}"
        d = args.work / name
        started = time.perf_counter()
        if not (args.reuse and (d / "features" / "panel.parquet").exists()):
            _lc(
                env,
                "simulate",
                "--merchants",
                args.merchants,
                "--months",
                args.months,
                "--seed",
                seed,
                "--volume-scale",
                args.volume_scale,
                "--scenario",
                scenario,
                "--out",
                d / "raw",
            )
            _lc(env, "validate", "--raw", d / "raw", "--out", d / "validated")
            _lc(env, "features", "--raw", d / "validated", "--out", d / "features")
        prepared = time.perf_counter()
        model = f"validity-{name}"
        train = json.loads(_lc(env, "train", "--features", d / "features", "--model-name", model).splitlines()[-1])
        trained = time.perf_counter()
        gate = _gate(env, model, train["version"])
        truth = json.loads(
            _lc(
                env,
                "truth-check",
                "--model",
                train["model_uri"],
                "--features",
                d / "features",
                "--truth",
                d / "raw" / "truth.parquet",
                "--out",
                d / "truth_check",
            ).splitlines()[-1]
        )
        check = json.loads((d / "truth_check" / "truth_check.json").read_text(encoding="utf-8"))
        results.append(
            {
                "market": name,
                "dir": d,
                "model_uri": train["model_uri"],
                "run_id": train["run_id"],
                "test": train["metrics"],
                "split": _evaluation(mlruns, train["run_id"])["split"],
                "gate": gate,
                "truth": truth,
                "check": check,
                "unseen": _unseen(mlruns, train["run_id"], d),
                "reasons": _reasons(mlruns, train["model_uri"], d),
                "seconds": {"prepare": prepared - started, "train": trained - prepared},
            }
        )
    first = results[0]
    for other in results[1:]:
        other["from_first"] = _transfer(mlruns, first["model_uri"], other["dir"])
    _report(results)


def _parse(spec: str) -> tuple[int, str]:
    seed, _, scenario = spec.partition(":")
    return int(seed), scenario or "baseline"


def _lc(env: dict, *args) -> str:
    proc = subprocess.run([LC, *map(str, args)], env=env, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        sys.exit(f"lifecredit {args[0]} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return proc.stdout


def _gate(env: dict, model: str, version: str) -> dict:
    """``lifecredit promote`` unforced: passed or not, and the checks that failed."""
    proc = subprocess.run(
        [LC, "promote", "--version", version, "--model-name", model], env=env, capture_output=True, text=True, cwd=ROOT
    )
    out = proc.stdout + proc.stderr
    failed = [line.strip() for line in out.splitlines() if "FAIL" in line]
    return {"passed": proc.returncode == 0, "failed": failed}


def _scores(mlruns: Path, model_uri: str, frame):
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{(mlruns / 'mlflow.db').resolve()}")
    mlflow.set_registry_uri(f"sqlite:///{(mlruns / 'mlflow.db').resolve()}")
    return mlflow.pyfunc.load_model(model_uri).predict(frame)


def _evaluation(mlruns: Path, run_id: str) -> dict:
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{(mlruns / 'mlflow.db').resolve()}")
    return json.loads(mlflow.artifacts.load_text(f"runs:/{run_id}/evaluation/evaluation.json"))


def _truth(d: Path):
    import polars as pl

    return pl.read_parquet(d / "raw" / "truth.parquet").select(
        "merchant_id", pl.col("as_of").cast(pl.Date), "true_pd_12m"
    )


def _unseen(mlruns: Path, run_id: str, d: Path) -> dict:
    """The run's test rows (merchants held out whole) joined to the truth: AUC of PD vs of true PD."""
    import mlflow
    import polars as pl
    from sklearn.metrics import roc_auc_score

    mlflow.set_tracking_uri(f"sqlite:///{(mlruns / 'mlflow.db').resolve()}")
    rows = pl.read_parquet(
        mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="evaluation/split_rows.parquet")
    )
    test = rows.filter(pl.col("role") == "test").select("merchant_id", pl.col("as_of").cast(pl.Date))
    panel = pl.read_parquet(d / "features" / "panel.parquet").with_columns(pl.col("as_of").cast(pl.Date))
    frame = panel.join(test, on=["merchant_id", "as_of"], how="semi").join(_truth(d), on=["merchant_id", "as_of"])
    pdf = frame.to_pandas()
    scored = _scores(mlruns, f"runs:/{run_id}/model", pdf)
    y = pdf["bad"].to_numpy().astype(int)
    auc, truth_auc = roc_auc_score(y, scored["pd"]), roc_auc_score(y, pdf["true_pd_12m"])
    return {
        "rows": len(pdf),
        "merchants": int(pdf["merchant_id"].nunique()),
        "defaults": int(y.sum()),
        "auc": float(auc),
        "truth_auc": float(truth_auc),
        "gap": float(auc - truth_auc),
    }


def _transfer(mlruns: Path, model_uri: str, d: Path) -> dict:
    """``model_uri`` on another market's last LATE_MONTHS labelled months: AUC vs truth, Jeffreys per class."""
    import polars as pl
    from sklearn.metrics import roc_auc_score

    from training.evaluate import group_table

    panel = pl.read_parquet(d / "features" / "panel.parquet").with_columns(pl.col("as_of").cast(pl.Date))
    labelled = panel.filter(pl.col("bad").is_not_null())
    late = labelled["as_of"].unique().sort()[-LATE_MONTHS:]
    frame = labelled.filter(pl.col("as_of").is_in(late.implode())).join(_truth(d), on=["merchant_id", "as_of"])
    pdf = frame.to_pandas()
    scored = _scores(mlruns, model_uri, pdf)
    y = pdf["bad"].to_numpy().astype(int)
    p = scored["pd"].to_numpy()
    merchants = pdf["merchant_id"].to_numpy()
    classes = group_table(y, p, scored["class"].to_numpy(), list("ABCD"), clusters=merchants)
    from training.master_scale import MasterScale

    t = pdf["true_pd_12m"].to_numpy()  # the truth's own verdict on the same rows (a surprise shock beats it too)
    truth_rejected = [
        r["group"]
        for r in group_table(y, t, MasterScale.load().risk_class(t), list("ABCD"), clusters=merchants)
        if r["rejected"]
    ]
    auc, truth_auc = roc_auc_score(y, p), roc_auc_score(y, pdf["true_pd_12m"])
    return {
        "rows": len(pdf),
        "defaults": int(y.sum()),
        "from": str(late[0]),
        "to": str(late[-1]),
        "auc": float(auc),
        "truth_auc": float(truth_auc),
        "gap": float(auc - truth_auc),
        "mean_pd": float(p.mean()),
        "default_rate": float(y.mean()),
        "mean_true_pd": float(t.mean()),
        "truth_jeffreys_rejected": truth_rejected,
        "jeffreys": [
            {
                k: r[k]
                for k in ("group", "n", "obligors", "defaults", "mean_pd", "default_rate", "jeffreys_p", "rejected")
            }
            for r in classes
        ],
    }


ARREARS = {"current_dpd", "worst_dpd_365d", "worst_dpd_ever", "delinquent_months_365d", "months_since_last_delinquency"}
SALES_PREFIXES = ("sales_", "sale_count_", "net_sales_", "active_days_")
IDENTITY = {"sector", "province", "urban_rural", "business_form"}


def _reasons(mlruns: Path, model_uri: str, d: Path) -> dict:
    """Directional reason checks on the latest snapshot (issue 13, item 5)."""
    import pandas as pd

    latest = pd.read_parquet(d / "features" / "latest.parquet")
    out = _scores(mlruns, model_uri, latest)
    codes = out[[f"reason_{k}_code" for k in range(1, 5)]].to_numpy(dtype=object)
    past_due = latest["current_dpd"].fillna(0).to_numpy() >= 30
    falling = latest["sales_growth_yoy"].to_numpy() <= -0.3
    arrears = [any(c in ARREARS for c in row[:2]) for row in codes[past_due]]
    sales = [any(isinstance(c, str) and c.startswith(SALES_PREFIXES) for c in row) for row in codes[falling]]
    return {
        "past_due": int(past_due.sum()),
        "arrears_top2": float(pd.Series(arrears, dtype=float).mean()),
        "falling": int(falling.sum()),
        "sales_top4": float(pd.Series(sales, dtype=float).mean()),
        "identity_reasons": int(sum(c in IDENTITY for c in codes.ravel())),
    }


def _shares_ok(section: dict) -> tuple[bool, list[str]]:
    share = section["class_share"]
    misses = [
        f"{c}: model {share['model'][c]:.1%} < half of truth {share['truth'][c]:.1%}"
        for c in "ABCD"
        if share["truth"][c] >= 0.05 and share["model"][c] < share["truth"][c] / 2
    ]
    return not misses, misses


def _report(results: list[dict]) -> None:
    goals: dict[str, bool] = {}
    summary = []
    for r in results:
        a, u = r["check"]["all"], r["check"]["unseen"]
        shares_ok, misses = _shares_ok(a)
        name = r["market"]
        goals[f"{name}.gate_passes_unforced"] = r["gate"]["passed"]
        goals[f"{name}.spearman_ratio>=0.85"] = (a["spearman_ratio"] or 0) >= 0.85
        goals[f"{name}.kappa_ratio>=0.85"] = (a["kappa_ratio"] or 0) >= 0.85
        goals[f"{name}.class_shares"] = shares_ok
        goals[f"{name}.unseen_auc_gap>=-0.03"] = r["unseen"]["gap"] >= -0.03
        lines = [
            (
                "market",
                f"{name}: {r['split']['train_rows'] + r['split']['valid_rows'] + r['split']['test_rows']:,} "
                f"labelled rows used; prepare {r['seconds']['prepare']:.0f} s, train {r['seconds']['train']:.0f} s",
            ),
            ("gate (unforced)", "passed" if r["gate"]["passed"] else "REFUSED: " + "; ".join(r["gate"]["failed"])),
            (
                "test rows (held-out merchants)",
                f"AUC {r['unseen']['auc']:.4f} vs true PD {r['unseen']['truth_auc']:.4f} "
                f"(gap {r['unseen']['gap']:+.4f}; {r['unseen']['rows']:,} rows, "
                f"{r['unseen']['merchants']:,} merchants, {r['unseen']['defaults']} defaults)",
            ),
            ("truth check rows", f"{a['rows']:,} at {', '.join(r['check']['rows']['as_of'])} ({u['rows']:,} unseen)"),
            (
                "Spearman pd / ceiling",
                f"{a['spearman']:.3f} / {a['ceiling']['spearman']:.3f} = {a['spearman_ratio']:.3f}"
                f"  (unseen {u['spearman_ratio']:.3f})",
            ),
            (
                "kappa class / ceiling",
                f"{a['kappa']:.3f} / {a['ceiling']['kappa']:.3f} = {a['kappa_ratio']:.3f}"
                f"  (unseen {u['kappa_ratio']:.3f})",
            ),
            (
                "class shares model | truth",
                "  ".join(
                    f"{c} {a['class_share']['model'][c]:.1%} | {a['class_share']['truth'][c]:.1%}" for c in "ABCD"
                )
                + ("" if shares_ok else "  MISSED " + "; ".join(misses)),
            ),
            (
                "mean PD / mean true PD",
                f"{a['mean_pd']:.2%} / {a['mean_true_pd']:.2%}; calibration slope "
                f"{a['calibration']['slope']:.2f}, offset {a['calibration']['offset']:+.2f}",
            ),
            (
                "reasons (latest snapshot)",
                f"30+ dpd with an arrears reason in top 2: {r['reasons']['arrears_top2']:.1%} "
                f"of {r['reasons']['past_due']}; sales down 30%+ yoy with a sales reason in "
                f"top 4: {r['reasons']['sales_top4']:.1%} of {r['reasons']['falling']}; "
                f"identity reasons: {r['reasons']['identity_reasons']}",
            ),
        ]
        goals[f"{name}.reasons_arrears>=95%"] = r["reasons"]["arrears_top2"] >= 0.95
        goals[f"{name}.reasons_sales>=80%"] = r["reasons"]["sales_top4"] >= 0.80
        if "from_first" in r:
            t = r["from_first"]
            rejected = [j["group"] for j in t["jeffreys"] if j["rejected"]]
            goals[f"{name}.transfer_auc_gap>=-0.03"] = t["gap"] >= -0.03
            goals[f"{name}.transfer_jeffreys"] = not rejected
            lines.append(
                (
                    f"model of {results[0]['market']} here",
                    (
                        f"AUC {t['auc']:.4f} vs true PD {t['truth_auc']:.4f} (gap {t['gap']:+.4f}) on {t['rows']:,} rows "
                        f"{t['from']}..{t['to']}; mean PD {t['mean_pd']:.2%} vs observed {t['default_rate']:.2%} "
                        f"(true PD {t['mean_true_pd']:.2%}; the truth itself rejected in "
                        f"{', '.join(t['truth_jeffreys_rejected']) or 'no class'}); Jeffreys "
                        + ", ".join(
                            f"{j['group']} p={'-' if j['jeffreys_p'] is None else format(j['jeffreys_p'], '.3f')}"
                            f"{' REJECTED' if j['rejected'] else ''}"
                            for j in t["jeffreys"]
                        )
                    ),
                )
            )
        width = max(len(k) for k, _ in lines)
        print()
        for k, v in lines:
            print(f"{k:<{width}}  {v}")
        summary.append(
            {k: v for k, v in r.items() if k not in ("dir", "check")}
            | {
                "truth_all": {
                    k: a[k]
                    for k in (
                        "spearman",
                        "kappa",
                        "spearman_ratio",
                        "kappa_ratio",
                        "class_share",
                        "mean_pd",
                        "mean_true_pd",
                        "calibration",
                    )
                }
                | {"ceiling": a["ceiling"]},
                "truth_unseen": {k: u[k] for k in ("spearman", "kappa", "spearman_ratio", "kappa_ratio")},
            }
        )
    print("\ngoals: " + ", ".join(f"{k} {'met' if v else 'MISSED'}" for k, v in goals.items()))
    print(json.dumps({"markets": summary, "goals": goals}, default=str))


if __name__ == "__main__":
    main()
