"""Training benchmark: model quality against the simulator's truth, and the cost of the pipeline.

    .venv/bin/python benchmarks/bench_training.py [--merchants 5000 --months 30 --volume-scale 1.0] [--reuse]

1. Simulates a market (default 5,000 merchants x 30 months at the simulator's full transaction
   volume, ~45 M transactions), validates it and builds the feature panel (timed, for
   information; ~10 min on two busy cores, so ``--reuse`` keeps the market of an earlier run).
   Thinning the transactions (``--volume-scale 0.05``) leaves the panel's size - what training
   sees and what the time ratio depends on - unchanged, but makes every sales feature noisy:
   the AUC gap to the truth then measures the thinning more than the model (see the note).
2. Runs the whole ``lifecredit train --features DIR`` as a subprocess against an MLflow store
   that already exists (creating a fresh SQLite store runs ~100 migrations once, ~10 s; it is
   timed separately) - interpreter start, imports, LightGBM, calibration, the scorecard
   challenger, evaluation, plots and MLflow logging and registration all included.
3. In this process, times the reference for the pipeline's LightGBM step: a bare ``lightgbm.cv``
   on the same matrix (the pipeline's own encoding), with the same folds as
   ``training.lgbm.crossfit`` builds them (fold ``k`` trains on the booster rows of the other
   folds' merchants and is scored on fold ``k``'s calibration rows), the same parameters and the
   same early stopping on the pooled out-of-fold log loss, the out-of-fold margins, then the final
   ``lightgbm.train`` on all booster rows with that many trees; ``--repeat`` times before and as
   many after the pipeline, and takes the median. Wall and CPU time are both reported; CPU time
   (user + system, all threads) is the steadier figure on a shared machine whose load drifts.
4. Reads ``truth.parquet`` (the benchmark may; ``training/`` never does) and computes the AUC
   of ``true_pd_12m`` on exactly the test rows the model was evaluated on: the rows, from the
   split date on, of the merchants held out whole (no booster or calibration row came from them).

Prints test AUC, truth AUC, challenger AUC, the Jeffreys verdict per class, the time ratio and
the pipeline's own per-stage timings, then one JSON line with all of it.

Goals (issue 4, section 9): test AUC (held-out merchants) >= truth AUC on the same rows - 0.02; no
class rejected by Jeffreys at 1%; challenger within 0.03 AUC of LightGBM; whole ``lifecredit train``
<= 2x the bare ``lightgbm.cv`` + ``lightgbm.train``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before lightgbm loads (see STACK.md)

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--merchants", type=int, default=5000)
    ap.add_argument("--months", type=int, default=30)
    ap.add_argument("--volume-scale", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--repeat", type=int, default=3, help="bare lightgbm.cv + lightgbm.train repetitions (median)")
    ap.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "out" / "training")
    ap.add_argument("--reuse", action="store_true", help="reuse the market and features already in --work")
    args = ap.parse_args()

    work = args.work
    raw, validated, feats, mlruns = work / "raw", work / "validated", work / "features", work / "mlruns"
    timings: dict[str, float] = {}
    if not (args.reuse and (feats / "panel.parquet").exists()):
        from data_contracts import validate_dir
        from features import build_features
        from simulation import simulate_market

        shutil.rmtree(work, ignore_errors=True)
        timings["simulate_s"] = _timed(
            lambda: simulate_market(
                raw,
                merchants=args.merchants,
                months=args.months,
                seed=args.seed,
                volume_scale=args.volume_scale,
                start=date(2023, 1, 1),
            )
        )
        timings["validate_s"] = _timed(lambda: validate_dir(raw, validated))
        timings["features_s"] = _timed(lambda: build_features(validated, feats))
    shutil.rmtree(mlruns, ignore_errors=True)
    env = {
        **os.environ,
        "LIFECREDIT_MLRUNS_DIR": str(mlruns),
        "LIFECREDIT_DATA_DIR": str(work),
        "OMP_WAIT_POLICY": "PASSIVE",
    }
    timings["mlflow_store_create_s"] = _timed(lambda: _create_store(mlruns))

    bare = _BareLightGBM(feats)
    bare.run(args.repeat)  # before and after the pipeline: a shared machine's load drifts
    print(f"training on {feats} ...", file=sys.stderr)
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "lifecredit"), "train", "--features", str(feats)],
        env=env,
        capture_output=True,
        text=True,
        cwd=work,
    )
    train_s = time.perf_counter() - started
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    train_cpu_s = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    if proc.returncode != 0:
        sys.exit(f"lifecredit train failed ({proc.returncode}):\n{proc.stderr}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    bare.run(args.repeat)
    bare_s, bare_cpu_s = statistics.median(bare.wall), statistics.median(bare.cpu)
    bare_auc, n_train = bare.test_auc, bare.n_train
    evidence = _evidence(mlruns, result["run_id"], raw / "truth.parquet")

    m, c = result["metrics"], result["challenger_metrics"]
    ratio = train_s / bare_s
    cpu_ratio = train_cpu_s / bare_cpu_s
    goals = {
        "auc_vs_truth": m["auc"] >= evidence["truth_auc"] - 0.02,
        "no_class_rejected": not any(r["rejected"] for r in evidence["by_class"]),
        "challenger_within_0.03": c["auc"] >= m["auc"] - 0.03,
        "time_ratio_le_2": ratio <= 2.0,
    }
    rows = [
        ("market", f"{args.merchants:,} merchants x {args.months} months, volume scale {args.volume_scale}"),
        (
            "panel",
            f"{bare.n_labelled:,} labelled rows: {n_train:,} booster, {evidence['calibration_rows']:,} calibration, "
            f"{m['n']:.0f} test rows ({evidence['test_merchants']} merchants held out whole), "
            f"{m['defaults']:.0f} defaults",
        ),
        ("test AUC (LightGBM, calibrated)", f"{m['auc']:.4f}"),
        (
            "AUC of true_pd_12m, same rows",
            f"{evidence['truth_auc']:.4f}  (gap {m['auc'] - evidence['truth_auc']:+.4f}, goal >= -0.02)",
        ),
        ("challenger (scorecard) AUC", f"{c['auc']:.4f}  (gap {c['auc'] - m['auc']:+.4f}, goal >= -0.03)"),
        (
            "Jeffreys per class (p, 1%)",
            ", ".join(
                f"{r['group']}: {'n/a' if r['jeffreys_p'] is None else format(r['jeffreys_p'], '.3f')}"
                f"{' REJECTED' if r['rejected'] else ''} ({r['n']} rows, {r.get('obligors', '?')} merchants, "
                f"DR {_pct(r['default_rate'])} vs PD "
                f"{_pct(r['mean_pd'])})"
                for r in evidence["by_class"]
            ),
        ),
        (
            "lifecredit train (subprocess)",
            f"{train_s:.1f} s wall, {train_cpu_s:.1f} s CPU  ({evidence['trees']} trees)",
        ),
        (
            "bare lightgbm.cv + train (median)",
            f"{bare_s:.2f} s wall, {bare_cpu_s:.2f} s CPU  ({bare.trees} trees, its "
            f"uncalibrated test AUC {bare_auc:.4f}; {2 * args.repeat} runs, "
            f"wall {min(bare.wall):.2f}-{max(bare.wall):.2f} s)",
        ),
        ("time ratio", f"{ratio:.1f}x wall, {cpu_ratio:.1f}x CPU  (goal <= 2x)"),
        ("machine load (1-min average)", f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"),
        ("pipeline stages (in-process)", ", ".join(f"{k} {v:.1f}s" for k, v in evidence["stage_s"].items())),
        ("data preparation", ", ".join(f"{k} {v:.1f}" for k, v in timings.items())),
        ("goals", ", ".join(f"{k} {'met' if v else 'MISSED'}" for k, v in goals.items())),
    ]
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    print(
        json.dumps(
            {
                "test_auc": m["auc"],
                "truth_auc": evidence["truth_auc"],
                "challenger_auc": c["auc"],
                "jeffreys": {r["group"]: r["jeffreys_p"] for r in evidence["by_class"]},
                "trees": evidence["trees"],
                "bare_trees": bare.trees,
                "train_s": train_s,
                "bare_lightgbm_s": bare_s,
                "ratio": ratio,
                "train_cpu_s": train_cpu_s,
                "bare_lightgbm_cpu_s": bare_cpu_s,
                "cpu_ratio": cpu_ratio,
                "goals": goals,
                "stage_s": evidence["stage_s"],
                **timings,
            }
        )
    )


def _timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def _pct(x) -> str:
    return "-" if x is None else f"{x:.2%}"


def _create_store(mlruns: Path) -> None:
    from mlflow import MlflowClient

    mlruns.mkdir(parents=True, exist_ok=True)
    MlflowClient(f"sqlite:///{mlruns.resolve() / 'mlflow.db'}").search_experiments()


class _BareLightGBM:
    """The pipeline's LightGBM step done bare: ``lightgbm.cv`` on the pipeline's own matrix, folds and
    parameters with the same early stopping, out-of-fold margins, then the final ``lightgbm.train``
    on all booster rows with that many trees (what ``training.lgbm.crossfit`` does, ``--tune 0``)."""

    def __init__(self, feats: Path):
        from training import lgbm
        from training.bundle import encode
        from training.data import load_panel

        table = load_panel(feats, seed=7)  # the pipeline's default seed: the same split and folds
        self.X, self.y, self.split = encode(table.frame, table.features), table.y, table.split
        self.params = lgbm.base_params(table.features, seed=7, n_rows=len(table.split.train))
        self.cats = [j for j, f in enumerate(table.features) if f.is_categorical]
        self.names = lgbm.booster_names([f.name for f in table.features])  # as lgbm.crossfit names them
        self.n_train = len(self.split.train)
        self.n_labelled = len(self.y)
        self.wall: list[float] = []
        self.cpu: list[float] = []
        self.test_auc = float("nan")
        self.trees = 0

    def run(self, repeat: int) -> None:
        import lightgbm as lgb
        import numpy as np
        from sklearn.metrics import roc_auc_score

        from training import lgbm

        X, y, s = self.X, self.y, self.split
        for _ in range(repeat):
            wall, cpu = time.perf_counter(), time.process_time()
            # the folds as crossfit builds them: positions in the booster + calibration rows
            rows = np.union1d(s.train, s.valid)
            fit_pos, cal_pos = np.searchsorted(rows, s.train), np.searchsorted(rows, s.valid)
            folds = [(fit_pos[s.fold[s.train] != k], cal_pos[s.fold[s.valid] == k]) for k in np.unique(s.fold[s.valid])]
            data = lgb.Dataset(
                X[rows], label=y[rows], feature_name=self.names, categorical_feature=self.cats, free_raw_data=False
            )
            res = lgb.cv(
                {**self.params, "metric": "binary_logloss"},
                data,
                num_boost_round=lgbm.MAX_ROUNDS,
                folds=folds,
                stratified=False,
                shuffle=False,
                return_cvbooster=True,
                callbacks=[lgb.early_stopping(lgbm.PATIENCE, verbose=False)],
            )
            trees = len(res["valid binary_logloss-mean"])
            for (_, te), b in zip(folds, res["cvbooster"].boosters, strict=True):  # out-of-fold margins
                b.predict(X[rows[te]], raw_score=True, num_iteration=trees)
            train = lgb.Dataset(X[s.train], label=y[s.train], feature_name=self.names, categorical_feature=self.cats)
            booster = lgb.train(self.params, train, num_boost_round=trees)
            self.wall.append(time.perf_counter() - wall)
            self.cpu.append(time.process_time() - cpu)
        self.trees = trees
        self.test_auc = float(roc_auc_score(y[s.test], booster.predict(X[s.test])))


def _evidence(mlruns: Path, run_id: str, truth_path: Path) -> dict:
    """The run's test rows joined to the truth; the run's per-class Jeffreys table, trees and stage times."""
    import mlflow
    import polars as pl
    from sklearn.metrics import roc_auc_score

    mlflow.set_tracking_uri(f"sqlite:///{mlruns.resolve() / 'mlflow.db'}")
    test = pl.read_parquet(
        mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="evaluation/test_window.parquet")
    )
    evaluation = json.loads(mlflow.artifacts.load_text(f"runs:/{run_id}/evaluation/evaluation.json"))
    truth = pl.read_parquet(truth_path).select("merchant_id", "as_of", "true_pd_12m")
    joined = test.select("merchant_id", pl.col("as_of").cast(pl.Date), "bad").join(
        truth.with_columns(pl.col("as_of").cast(pl.Date)), on=["merchant_id", "as_of"], how="left"
    )
    if joined["true_pd_12m"].null_count():
        raise SystemExit(f"{joined['true_pd_12m'].null_count()} test rows have no truth")
    run = mlflow.MlflowClient().get_run(run_id)
    stage_s = {k.removeprefix("time."): v for k, v in run.data.metrics.items() if k.startswith("time.")}
    split = evaluation["split"]
    return {
        "truth_auc": float(roc_auc_score(joined["bad"].to_numpy(), joined["true_pd_12m"].to_numpy())),
        "by_class": evaluation["lightgbm"]["by_class"],
        "stage_s": stage_s,
        "calibration_rows": split["valid_rows"],
        "test_merchants": split.get("test_groups", "?"),
        "trees": evaluation["lightgbm"]["best_iteration"],
    }


if __name__ == "__main__":
    main()
