"""Contracts benchmark: simulation rows/s, and transactions validation against a plain Polars scan.

    .venv/bin/python benchmarks/bench_contracts.py [--merchants N --months M --defect-rate R]

Simulates a market (timed), validates it with ``validate_dir`` and reads the transactions
share of the time from the summary (count, key check, rule pass, output written), and times the
reference on the same file in the same run: ``pl.read_parquet`` of every column plus one sum,
i.e. reading what validation has to read. Validation and reference are interleaved and repeated,
and medians are reported, because a shared machine's load drifts (the load average is printed).
Then, once, the same for a market with defects (every table rewritten, timestamps as ISO
text), which exercises the slow path.

Goals: simulation >= 2 M rows/s; validation <= 3x the plain scan.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data_contracts import validate_dir  # noqa: E402
from simulation import simulate_market  # noqa: E402

SIM_GOAL = 2_000_000
RATIO_GOAL = 3.0


def plain_scan(path: Path) -> float:
    """Seconds to read every column of `path` and sum one."""
    started = time.perf_counter()
    pl.read_parquet(path).get_column("amount_fen").sum()
    return time.perf_counter() - started


def simulate(out: Path, args, defect_rate: float) -> tuple[dict, float]:
    started = time.perf_counter()
    summary = simulate_market(
        out, merchants=args.merchants, months=args.months, seed=args.seed, defect_rate=defect_rate
    )
    return summary, time.perf_counter() - started


def bench_validation(raw: Path, work: Path, repeat: int) -> dict:
    """Median transactions validation time and median plain-scan time, interleaved."""
    scans, validations, totals = [], [], []
    path = raw / "transactions.parquet"
    for i in range(repeat):
        scans.append(plain_scan(path))
        started = time.perf_counter()
        summary = validate_dir(raw, work / f"validated_{i}")
        totals.append(time.perf_counter() - started)
        validations.append(summary["tables"]["transactions"]["seconds"])
    scans.append(plain_scan(path))
    tx = summary["tables"]["transactions"]
    return {
        "rows": tx["rows_in"],
        "rejected": tx["rejected"],
        "output": tx["valid_output"],
        "validate_s": statistics.median(validations),
        "scan_s": statistics.median(scans),
        "all_tables_s": statistics.median(totals),
    }


def report(label: str, v: dict) -> bool:
    ratio = v["validate_s"] / v["scan_s"]
    print(
        f"{label}: {v['rows']:,} transaction rows ({v['rejected']:,} rejected, valid output {v['output']})\n"
        f"  validation  {v['validate_s']:7.2f} s  {v['rows'] / v['validate_s']:>12,.0f} rows/s"
        f"   (all six tables {v['all_tables_s']:.2f} s)\n"
        f"  plain scan  {v['scan_s']:7.2f} s  {v['rows'] / v['scan_s']:>12,.0f} rows/s   (read all columns + one sum)\n"
        f"  ratio       {ratio:7.2f} x the plain scan   goal <= {RATIO_GOAL:.0f}x: {'met' if ratio <= RATIO_GOAL else 'NOT met'}"
    )
    return ratio <= RATIO_GOAL


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--merchants", type=int, default=1000)
    parser.add_argument("--months", type=int, default=24)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--defect-rate", type=float, default=0.02, help="for the second market; 0 skips it")
    parser.add_argument("--repeat", type=int, default=3, help="validation runs on the clean market (median reported)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench_contracts_") as tmp:
        work = Path(tmp)
        sim, sim_s = simulate(work / "raw", args, 0.0)
        rows = sum(n for name, n in sim["rows"].items() if name != "truth")
        sim_rate = rows / sim_s
        print(f"market: {args.merchants:,} merchants x {args.months} months, polars {pl.__version__}")
        print(
            f"simulation: {rows:,} rows in six tables ({sim['rows']['transactions']:,} transactions) in {sim_s:.2f} s"
            f" = {sim_rate:,.0f} rows/s   goal >= {SIM_GOAL:,}: {'met' if sim_rate >= SIM_GOAL else 'NOT met'}"
        )
        ok = report("validation, clean market", bench_validation(work / "raw", work, args.repeat))
        if args.defect_rate > 0:
            _, defect_sim_s = simulate(work / "raw_defects", args, args.defect_rate)
            print(f"simulation with defect rate {args.defect_rate}: {defect_sim_s:.2f} s")
            report(f"validation, defect rate {args.defect_rate}", bench_validation(work / "raw_defects", work, 1))
        print(
            f"load average (1, 5, 15 min) at the end: {', '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} cores"
        )
    return 0 if ok and sim_rate >= SIM_GOAL else 1


if __name__ == "__main__":
    raise SystemExit(main())
