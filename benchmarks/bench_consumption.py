"""Consumption benchmark: the index and the map aggregates against one streaming scan of the transactions.

Prints, from one process on the same data:
* the reference: one Polars streaming scan that decodes every transaction column the build reads
  (merchant, time, type, amount, channel), each reduced to one value;
* the build (``regulator.consumption.build_consumption``: the pass, the six levels of aggregates,
  the two-level small-cell protection, the index, the files), without and then with the input
  hashes the command writes into ``metadata.json``: seconds, CPU seconds, peak memory, ratio to the
  reference;
* how the index follows the simulator's demand factors (``demand.parquet``): correlation of the
  monthly changes per sector nationally and per sector x province.

Both run ``--repeat`` times, alternated, and each one's fastest run counts (the machine is shared).
A clean market's ``lifecredit validate`` writes a byte copy of each raw table, so the build reads
the raw folder directly and spares a second copy of the transactions on disk.

Goal (issue 15): index + aggregates for 100k merchants x 24 months at full volume <= 2x one
streaming scan. The simulated market is deleted at the end unless ``--keep``.

    .venv/bin/python benchmarks/bench_consumption.py --merchants 100000 --months 24
"""

from __future__ import annotations

import argparse
import shutil
import time
from datetime import date
from pathlib import Path

import polars as pl

from benchmarks.bench_features import PeakRSS
from core.files import file_sha256
from regulator.consumption import INDEX_FILE, build_consumption

HERE = Path(__file__).resolve().parent


def reference_scan(path: Path) -> pl.DataFrame:
    """One streaming scan decoding the five columns the build reads, each reduced to one value."""
    return (
        pl.scan_parquet(path)
        .select(
            pl.col("merchant_id").max(),
            pl.col("ts").max(),
            (pl.col("txn_type") == "sale").sum(),
            pl.col("amount_fen").sum(),
            (pl.col("channel") == "other").sum(),
        )
        .collect(engine="streaming")
    )


def tracking(raw: Path, out: Path) -> pl.DataFrame:
    """Correlation of the index's monthly changes with the demand factors' (national sector, sector x province)."""
    demand = pl.read_parquet(raw / "demand.parquet")
    index = pl.read_parquet(out / INDEX_FILE)
    national = demand.group_by("sector", "month").agg((pl.col("weight") * pl.col("demand")).sum().alias("demand"))
    change = lambda keys: (pl.col("demand") / pl.col("demand").shift(1).over(keys) - 1).alias("demand_change")  # noqa: E731
    national = national.sort("sector", "month").with_columns(change(["sector"]))
    regional = demand.sort("sector", "province", "month").with_columns(change(["sector", "province"]))
    sector = (
        index.filter(level="sector")
        .join(national, on=["sector", "month"])
        .drop_nulls(["index_mom", "demand_change"])
        .group_by("sector")
        .agg(pl.corr("index_mom", "demand_change").alias("r_national"))
    )
    cells = (
        index.filter(level="sector_province")
        .join(regional, on=["sector", "province", "month"])
        .drop_nulls(["index_mom", "demand_change"])
        .group_by("sector", "province")
        .agg(pl.corr("index_mom", "demand_change").alias("r"))
        .group_by("sector")
        .agg(pl.col("r").min().alias("r_province_min"), pl.col("r").median().alias("r_province_median"))
    )
    return sector.join(cells, on="sector", how="left").sort("sector")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--merchants", type=int, default=100_000)
    ap.add_argument("--months", type=int, default=24)
    ap.add_argument("--volume-scale", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--dir", type=Path, default=HERE / "out" / "consumption_market")
    ap.add_argument("--repeat", type=int, default=3, help="alternated runs of each; the fastest counts")
    ap.add_argument("--keep", action="store_true", help="keep the simulated market (default: delete it at the end)")
    args = ap.parse_args()

    raw = args.dir / f"raw_{args.merchants}x{args.months}_v{args.volume_scale}_s{args.seed}"
    if not (raw / "demand.parquet").exists():
        from simulation import simulate_market

        t0 = time.perf_counter()
        simulate_market(
            raw,
            merchants=args.merchants,
            months=args.months,
            seed=args.seed,
            volume_scale=args.volume_scale,
            start=date(2023, 1, 1),
        )
        print(f"simulated {raw.name} in {time.perf_counter() - t0:.0f} s")
    path = raw / "transactions.parquet"
    rows = pl.scan_parquet(path).select(pl.len()).collect().item()
    print(
        f"market: {args.merchants:,} merchants x {args.months} panel months (+12 of history), {rows:,} transactions "
        f"({path.stat().st_size / 2**30:.2f} GB parquet)"
    )
    meter = PeakRSS()
    out = args.dir / "consumption_out"
    res: dict[str, dict] = {"reference": {}, "build": {}}
    meta: dict = {}
    for _ in range(args.repeat):
        run: dict[str, dict] = {"reference": {}, "build": {}}
        with meter.phase(run["reference"]):
            reference_scan(path)
        with meter.phase(run["build"]):
            meta = build_consumption(raw, out, k=10, hash_inputs=False)
        for k, r in run.items():
            res[k].setdefault("runs_s", []).append(round(r["seconds"], 1))
            if "seconds" not in res[k] or r["seconds"] < res[k]["seconds"]:
                res[k].update({x: v for x, v in r.items() if x != "peak_rss_gb"})
            res[k]["peak_rss_gb"] = max(res[k].get("peak_rss_gb", 0.0), r["peak_rss_gb"])
    hashing: dict = {}
    with meter.phase(hashing):
        file_sha256(path)
        file_sha256(raw / "merchants.parquet")
    ref, build = res["reference"], res["build"]
    ratio = build["seconds"] / ref["seconds"]
    print(
        f"reference scan   {ref['seconds']:7.1f} s  CPU {ref['cpu_s']:7.1f} s  {rows / ref['seconds'] / 1e6:6.1f} M rows/s  "
        f"peak {ref['peak_rss_gb']:.2f} GB  runs {ref['runs_s']}"
    )
    print(
        f"index+aggregates {build['seconds']:7.1f} s  CPU {build['cpu_s']:7.1f} s  {rows / build['seconds'] / 1e6:6.1f} M rows/s  "
        f"peak {build['peak_rss_gb']:.2f} GB  runs {build['runs_s']}  ({meta['rows']['merchant_months']:,} merchant-months, "
        f"{meta['rows']['aggregates']:,} aggregate cells, {meta['suppressed_cells']:,} suppressed)"
    )
    print(
        f"input hashes     {hashing['seconds']:7.1f} s  (SHA-256 of transactions and merchants, in the command's metadata)"
    )
    with_hash = (build["seconds"] + hashing["seconds"]) / ref["seconds"]
    print(
        f"ratio to the reference: {ratio:.2f}x wall, {build['cpu_s'] / ref['cpu_s']:.2f}x CPU; with the input hashes "
        f"{with_hash:.2f}x; goal <= 2x: {'met' if ratio <= 2 else 'NOT met'}"
    )
    with pl.Config(tbl_rows=20, float_precision=4):
        print("index vs the simulator's demand factors (correlation of monthly changes):")
        print(tracking(raw, out))
    if not args.keep:
        shutil.rmtree(args.dir)
        print(f"removed {args.dir}")


if __name__ == "__main__":
    main()
