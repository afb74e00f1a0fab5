"""Dask features benchmark: one feature build with the local engine and on a local Dask cluster of 2 workers.

The market (``--merchants`` x ``--months`` at ``--volume-scale``) is simulated once into
``--workdir`` and reused. The simulator's tables are contract-clean, so they are read as the
validated tables (as in bench_features.py). Each engine runs in a child process of its own, so
memory one run leaves behind never counts for the other. While it runs, a thread samples the
resident memory (psutil RSS) of the child - the main process, which for Dask is the client that
ranks peers and writes the outputs - and of each Dask worker process every 50 ms.

Prints per engine: build seconds (Dask: without and with starting the cluster), transaction
rows/s, peak RSS of the main process and of each worker; then the ratios Dask / local, and
whether both outputs are equal row for row.

The default volume scale 0.1 (35 M transactions for 50k merchants x 24 months, 0.7 GB of
Parquet) keeps a run within minutes on a 2-core machine; ``--volume-scale 1`` is the full market
(~375 M transactions, ~8 GB; check free disk first).

    .venv/bin/python benchmarks/bench_dask_features.py --merchants 50000 --months 24
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from datetime import date
from pathlib import Path

import polars as pl
import psutil

HERE = Path(__file__).resolve().parent


class PeakRSS:
    """Peak resident memory of a set of processes, sampled every 50 ms by a thread."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.procs = {name: psutil.Process(pid) for name, pid in pids.items()}
        self.peak = dict.fromkeys(pids, 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        for name, proc in self.procs.items():
            try:
                self.peak[name] = max(self.peak[name], proc.memory_info().rss)
            except psutil.NoSuchProcess:
                pass

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            time.sleep(0.05)

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def gb(self) -> dict[str, float]:
        return {name: round(v / 2**30, 3) for name, v in self.peak.items()}


def run_engine(engine: str, raw: Path, out: Path) -> dict:
    """One build in this process (the child); returns seconds and peak RSS per process."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if engine == "local":
        from features import build_features

        with PeakRSS({"main": os.getpid()}) as meter:
            t0 = time.perf_counter()
            meta = build_features(raw, out)
            seconds = time.perf_counter() - t0
        return {"seconds": seconds, "with_startup_s": seconds, "peak_rss_gb": meter.gb(), "rows": meta["rows"]}

    from distributed import Client, LocalCluster

    from features.dask_engine import build_features_dask

    t_start = time.perf_counter()
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0") as cluster, Client(cluster) as client:
        pids = {f"worker{i}": pid for i, pid in enumerate(sorted(client.run(os.getpid).values()))}
        with PeakRSS({"main": os.getpid(), **pids}) as meter:
            t0 = time.perf_counter()
            meta = build_features_dask(raw, out, scheduler=cluster.scheduler_address)
            seconds = time.perf_counter() - t0
    return {
        "seconds": seconds,
        "with_startup_s": time.perf_counter() - t_start,
        "peak_rss_gb": meter.gb(),
        "rows": meta["rows"],
    }


def same_outputs(a: Path, b: Path) -> bool:
    for name in ("panel.parquet", "latest.parquet"):
        x = pl.read_parquet(a / name).sort("merchant_id", "as_of")
        y = pl.read_parquet(b / name).sort("merchant_id", "as_of")
        if not x.equals(y, null_equal=True):
            return False
    return True


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--merchants", type=int, default=50_000)
    ap.add_argument("--months", type=int, default=24)
    ap.add_argument("--volume-scale", type=float, default=0.1, help="transaction volume (1.0: the full market)")
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--workdir", type=Path, default=HERE / "out" / "dask_features")
    ap.add_argument("--child", choices=["local", "dask"], help=argparse.SUPPRESS)
    ap.add_argument("--raw", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(run_engine(args.child, args.raw, args.out)))
        return

    raw = args.workdir / f"raw_{args.merchants}x{args.months}_v{args.volume_scale}_s{args.seed}"
    if not (raw / "transactions.parquet").exists():
        from simulation import simulate_market

        print(f"simulating {raw.name} (reused by later runs) ...", file=sys.stderr)
        t0 = time.perf_counter()
        simulate_market(
            raw,
            merchants=args.merchants,
            months=args.months,
            seed=args.seed,
            volume_scale=args.volume_scale,
            start=date(2023, 1, 1),
        )
        print(f"simulated in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    n_rows = pl.scan_parquet(raw / "transactions.parquet").select(pl.len()).collect().item()
    size_gb = (raw / "transactions.parquet").stat().st_size / 2**30
    print(
        f"market: {args.merchants:,} merchants x {args.months} months (volume scale {args.volume_scale}), "
        f"{n_rows:,} transactions ({size_gb:.2f} GB parquet); {os.cpu_count()} CPUs, "
        f"load average at start {os.getloadavg()[0]:.1f}"
    )

    res: dict[str, dict] = {}
    for engine in ("local", "dask"):
        print(f"building with the {engine} engine ...", file=sys.stderr)
        out = args.workdir / f"features_{engine}"
        child = subprocess.run(
            [sys.executable, __file__, "--child", engine, "--raw", str(raw), "--out", str(out)],
            check=True,
            stdout=subprocess.PIPE,
            text=True,
        )
        r = res[engine] = json.loads([ln for ln in child.stdout.splitlines() if ln.startswith("{")][-1])
        r["rows_per_s"] = n_rows / r["seconds"]
        workers = {k: v for k, v in r["peak_rss_gb"].items() if k != "main"}
        print(
            f"{engine:5s}  {r['seconds']:7.1f} s ({r['with_startup_s']:.1f} s with cluster start)  "
            f"{r['rows_per_s'] / 1e6:6.2f} M transactions/s  peak RSS main {r['peak_rss_gb']['main']:.2f} GB"
            + "".join(f", {k} {v:.2f} GB" for k, v in workers.items())
            + f"  ({r['rows']['feature_rows']:,} feature rows)"
        )
    local, dask = res["local"], res["dask"]
    dask_peak = max(v for k, v in dask["peak_rss_gb"].items())
    ratios = {
        "time_dask_over_local": dask["seconds"] / local["seconds"],
        "rows_per_s_dask_over_local": dask["rows_per_s"] / local["rows_per_s"],
        "largest_process_peak_dask_over_local": dask_peak / local["peak_rss_gb"]["main"],
        "total_peak_dask_over_local": sum(dask["peak_rss_gb"].values()) / local["peak_rss_gb"]["main"],
    }
    equal = same_outputs(args.workdir / "features_local", args.workdir / "features_dask")
    print(
        f"dask / local: time {ratios['time_dask_over_local']:.2f}x, rows/s {ratios['rows_per_s_dask_over_local']:.2f}x, "
        f"largest process peak {ratios['largest_process_peak_dask_over_local']:.2f}x, "
        f"all processes {ratios['total_peak_dask_over_local']:.2f}x; outputs equal row for row: {equal}; "
        f"load average at end {os.getloadavg()[0]:.1f}"
    )
    summary = {
        "market": {
            "merchants": args.merchants,
            "months": args.months,
            "volume_scale": args.volume_scale,
            "transactions": n_rows,
            "parquet_gb": size_gb,
        },
        **res,
        "ratios": ratios,
        "equal": equal,
    }
    (args.workdir / "bench_dask_features.json").write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
