"""Live one-row scoring: training.fast_row's path against today's, on the same rows and model, one core.

    .venv/bin/python benchmarks/bench_live_row.py [--build] [--bundle DIR --snapshot FILE] [--rows 1000] [--repeat 3]

The model is the champion of the current settings with their feature snapshot, or ``--bundle`` and
``--snapshot`` (a ``latest.parquet``), or with ``--build`` the 3,000-merchant market that
``benchmarks/bench_serving.py --build`` builds (under ``--work``; built once). Each snapshot row
becomes a request's feature dict (the model's features, JSON values) and is timed, interleaved,
one call at a time in this process (pinned to one core):

* model time, the issue's ``<= 0.5 ms``: booster margin and TreeSHAP contributions of the encoded
  row, ``booster.predict(raw_score)`` + ``booster.predict(pred_contrib)`` against
  :class:`training.fast_row.OneRowBooster`'s two calls;
* the whole answer: type check, encoding, scoring and the rendered response dict, the batch path on
  one row as ``Scorer.score_row`` ran it before (``serving.scorer.row_frame`` + ``bundle.encode`` +
  ``bundle.score_encoded`` + ``answers.render.render``) against ``row_problems`` +
  ``RowScorer.encode`` + ``RowScorer.score`` + ``answers.render.render``.

Every row's answers are compared too (margin exactly, contributions to 1e-9, the rendered dict
equal). Prints medians, p99 and the ratios, the model's trees and leaves, and the load average
(the machine is shared: the ratios, measured side by side, are steadier than the absolutes).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BIN = Path(sys.executable).parent


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def champion(args) -> tuple[Path, Path, str]:
    """(bundle directory, snapshot file, label) of the model to measure."""
    if args.bundle:
        if not args.snapshot:
            sys.exit("--bundle needs --snapshot (a latest.parquet written by `lifecredit features`)")
        return args.bundle, args.snapshot, str(args.bundle)
    if args.build:
        from bench_serving import build_market

        work = args.work.resolve()
        env = {
            **os.environ,
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "LIFECREDIT_DATA_DIR": str(work / "data"),
            "LIFECREDIT_MLRUNS_DIR": str(work / "mlruns"),
            "LIFECREDIT_VAR_DIR": str(work / "var"),
            "BENTOML_DO_NOT_TRACK": "true",
            "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
        }
        if not (work / "data" / "features" / "latest.parquet").exists():
            build_market(work, env)
        os.environ.update({k: v for k, v in env.items() if k.startswith("LIFECREDIT_")})
    from core.settings import get_settings
    from training.model_source import from_mlflow

    settings = get_settings()
    handle = from_mlflow(settings)
    return handle.bundle_dir, settings.serving_snapshot_dir / "latest.parquet", f"{handle.name} v{handle.version}"


def stats(ns: list[int]) -> dict:
    ms = sorted(x / 1e6 for x in ns)
    return {"median_ms": statistics.median(ms), "p99_ms": ms[min(len(ms) - 1, int(0.99 * len(ms)))]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", action="store_true", help="build the 3,000-merchant benchmark market under --work")
    ap.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "out" / "live_row")
    ap.add_argument("--bundle", type=Path, help="a serving bundle directory (with --snapshot)")
    ap.add_argument("--snapshot", type=Path, help="the feature snapshot (latest.parquet) to take rows from")
    ap.add_argument("--rows", type=int, default=1000, help="snapshot rows to score")
    ap.add_argument("--repeat", type=int, default=3, help="passes over the rows")
    args = ap.parse_args()
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})

    import numpy as np
    import polars as pl

    from answers.render import render
    from serving.scorer import row_frame
    from training.bundle import ScoringBundle
    from training.fast_row import RowScorer, row_problems

    bundle_dir, snapshot, label = champion(args)
    bundle = ScoringBundle.load(bundle_dir, num_threads=1)
    frame = pl.read_parquet(snapshot).head(args.rows)
    names = bundle.feature_names
    rows = [
        {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in r.items()}
        for r in frame.select(names).iter_rows(named=True)
    ]
    started = time.perf_counter()
    scorer = RowScorer(bundle)
    build_ms = (time.perf_counter() - started) * 1e3
    booster = bundle.booster
    if scorer._fast is None:
        sys.exit(f"model kind {bundle.kind} has no booster: the one-row path is the bundle's own code")
    fast = scorer._fast.booster
    trees = booster.num_trees()
    leaves = sum(t["num_leaves"] for t in booster.dump_model()["tree_info"])
    print(
        f"model {label} ({bundle.kind}): {len(names)} features, {trees} trees, {leaves} leaves; "
        f"{len(rows)} snapshot rows x {args.repeat}; RowScorer built in {build_ms:.1f} ms; load average {loadavg()}",
        flush=True,
    )

    def today(row: dict) -> dict:
        return render(bundle.score_encoded(bundle.encode(row_frame(bundle, row))), [None], [None], "m", "1")[0]

    def new(row: dict) -> dict:
        detail = row_problems(bundle.features, row)
        if detail:
            raise ValueError(detail)
        return render(scorer.score(scorer.encode(row)), [None], [None], "m", "1")[0]

    # agreement first, on every row
    worst_contrib, margin_equal, answers_equal = 0.0, 0, 0
    for row in rows:
        x1 = scorer.encode(row)
        margin_equal += fast.predict(x1, raw_score=True)[0] == booster.predict(x1, raw_score=True, num_threads=1)[0]
        diff = fast.predict(x1, pred_contrib=True) - booster.predict(x1, pred_contrib=True, num_threads=1)
        worst_contrib = max(worst_contrib, float(np.abs(diff).max()))
        answers_equal += new(row) == today(row)
    print(
        f"agreement: margin equal {margin_equal}/{len(rows)}, contributions max |diff| {worst_contrib:.1e}, "
        f"answers equal {answers_equal}/{len(rows)}",
        flush=True,
    )

    timings: dict[str, list[int]] = {k: [] for k in ("model_predict", "model_fast", "whole_today", "whole_fast")}
    clock = time.perf_counter_ns
    for _ in range(args.repeat):
        for row in rows:
            x1 = scorer.encode(row)
            t0 = clock()
            booster.predict(x1, raw_score=True, num_threads=1)
            booster.predict(x1, pred_contrib=True, num_threads=1)
            t1 = clock()
            fast.predict(x1, raw_score=True)
            fast.predict(x1, pred_contrib=True)
            t2 = clock()
            today(row)
            t3 = clock()
            new(row)
            t4 = clock()
            timings["model_predict"].append(t1 - t0)
            timings["model_fast"].append(t2 - t1)
            timings["whole_today"].append(t3 - t2)
            timings["whole_fast"].append(t4 - t3)
    out = {k: stats(v) for k, v in timings.items()}
    for k, v in out.items():
        print(f"  {k:14s} median {v['median_ms']:.3f} ms   p99 {v['p99_ms']:.3f} ms")
    model_ratio = out["model_predict"]["median_ms"] / out["model_fast"]["median_ms"]
    whole_ratio = out["whole_today"]["median_ms"] / out["whole_fast"]["median_ms"]
    print(
        f"model time: fast {out['model_fast']['median_ms']:.3f} ms (goal <= 0.5), {model_ratio:.2f}x faster than "
        f"Booster.predict; whole answer {whole_ratio:.2f}x faster than the batch path's; load average {loadavg()}"
    )
    print(
        json.dumps(
            {
                "trees": trees,
                "leaves": leaves,
                "features": len(names),
                **out,
                "model_ratio": model_ratio,
                "whole_ratio": whole_ratio,
            }
        )
    )


if __name__ == "__main__":
    main()
