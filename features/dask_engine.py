"""Feature builds on a Dask cluster: the local engine's Polars pipeline, once per hash partition.

1. **Partition** (one task per slice of rows of each table): rows go to partition
   ``hash(merchant_id) % n``, written as ``<out>/_partitions/part-<k>/<table>/<slice>.parquet``,
   so every table of one merchant lands in the same partition.
2. **Per partition** (one task each): ``merchant_features``, ``training_spine`` and ``labels``,
   the very functions the local engine runs over all merchants. A merchant's rows depend only on
   its own events, so the partition outputs are exactly the local engine's rows for its merchants.
3. **Peer step** (client, small): the peer percentiles rank a merchant within sector x province at
   each ``as_of`` and need every merchant. The client reads only the keys, sector, province and
   the four ranked columns of every partition and ranks them with ``peer_features``; the result
   is joined back on (merchant_id, as_of).
4. **Outputs**: ``write_outputs``, as the local engine: panel.parquet, latest.parquet, metadata.json.

Workers read ``raw`` and write under ``out``: on a cluster of several machines both must be on
storage every worker and the client sees at the same path. The partition folder is removed at the end.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import polars as pl

from features.catalog import load_catalog
from features.pipeline import (
    BATCH_ROWS,
    KEYS,
    PEER_GROUP,
    PEER_INPUTS,
    PEER_OUTPUTS,
    ProgressFn,
    catalog_columns,
    merchant_features,
    peer_features,
    resolve_as_of,
    write_outputs,
)
from features.spine import labels, observed_until, training_spine
from features.tables import REQUIRED_COLUMNS, RawTables

SLICE_ROWS = 5_000_000
"""Rows of a table one partitioning task reads (bounds its memory)."""
LOCAL_WORKERS = 2
CONNECT_TIMEOUT_S = 5


class DaskUnavailable(RuntimeError):
    """No Dask cluster could be reached or started."""


@contextmanager
def dask_client(scheduler: str | None = None, workers: int = LOCAL_WORKERS) -> Iterator[distributed.Client]:  # noqa: F821
    """A client of the scheduler at ``scheduler``, or of a local cluster (``workers`` processes, 1 thread each)."""
    from distributed import Client, LocalCluster

    if scheduler is None:
        with (
            LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                dashboard_address=":0",
                env={"OMP_WAIT_POLICY": "PASSIVE"},
            ) as cluster,
            Client(cluster) as client,
        ):
            client.run(_stdout_to_stderr)  # native libraries print to fd 1: keep the CLI's stdout for its result
            yield client
        return
    try:
        client = Client(scheduler, timeout=f"{CONNECT_TIMEOUT_S}s")
    except (OSError, TimeoutError, ValueError) as err:
        raise DaskUnavailable(
            f"cannot reach the Dask scheduler at {scheduler!r} ({err}); start one with `dask scheduler` and "
            "`dask worker ADDRESS`, or leave out --scheduler to run on a local cluster"
        ) from err
    with client:
        try:
            client.wait_for_workers(1, timeout=CONNECT_TIMEOUT_S)
        except TimeoutError as err:
            raise DaskUnavailable(
                f"the Dask scheduler at {scheduler!r} has no workers: start some with `dask worker {scheduler}`"
            ) from err
        yield client


def _stdout_to_stderr() -> None:
    import os
    import sys

    sys.stdout.flush()
    os.dup2(2, 1)


def partition_key(n: int) -> pl.Expr:
    """Partition of a row: a hash of its merchant_id modulo ``n``."""
    return (pl.col("merchant_id").hash(seed=0) % n).cast(pl.Int32).alias("_part")


def _part_dir(root: Path, k: int) -> Path:
    return root / f"part-{k:05d}"


def split_slice(path: str, table: str, offset: int, length: int, n: int, root: str, slice_no: int) -> int:
    """Write rows [offset, offset + length) of one table into its ``n`` partitions (one file each, maybe empty)."""
    frame = pl.scan_parquet(path).slice(offset, length).with_columns(partition_key(n)).collect()
    pieces = frame.partition_by("_part", as_dict=True, include_key=False)
    empty = frame.clear().drop("_part")
    for k in range(n):
        target = _part_dir(Path(root), k) / table
        target.mkdir(parents=True, exist_ok=True)
        pieces.get((k,), empty).write_parquet(target / f"{slice_no:06d}.parquet")
    return frame.height


def scan_partition(part: Path) -> RawTables:
    """The six tables of one partition as lazy frames."""
    tables = RawTables(**{name: pl.scan_parquet(part / name / "*.parquet") for name in REQUIRED_COLUMNS})
    tables.check()
    return tables


def partition_features(part: str, as_of: list[date], observed: date | None, batch_rows: int) -> dict:
    """Per-merchant features and the labelled spine of one partition, written beside its tables."""
    part = Path(part)
    tables = scan_partition(part)
    spine = training_spine(tables, as_of)  # loans of merchants missing from `merchants` count too, as locally
    labels(tables, spine.rows, observed).collect().write_parquet(part / "labelled.parquet")
    result = {"feature_rows": 0, "excluded_in_default": spine.excluded_in_default}
    if tables.merchants.select(pl.len()).collect().item():
        feats = merchant_features(tables, as_of, batch_rows=batch_rows)
        feats.write_parquet(part / "features.parquet")
        result["feature_rows"] = feats.height
    return result


def _slices(tables: RawTables) -> list[tuple[str, str, int, int]]:
    """(path, table, offset, length) covering every row of every table."""
    out = []
    for name, path in (tables.paths or {}).items():
        rows = pl.scan_parquet(path).select(pl.len()).collect().item()
        out += [(str(path), name, off, SLICE_ROWS) for off in range(0, max(rows, 1), SLICE_ROWS)]
    return out


def _run(client, fn, args: list[tuple], tick, done: int, total: int) -> tuple[list, int]:
    """Run ``fn(*a)`` for every ``a`` on the cluster; results in ``args`` order; ticks as tasks finish."""
    from distributed import as_completed

    futures = [client.submit(fn, *a, pure=False) for a in args]
    for _ in as_completed(futures):
        done += 1
        tick(done, total)
    return client.gather(futures), done


def build_features_dask(
    raw: Path,
    out: Path,
    *,
    as_of: list[date] | None = None,
    scheduler: str | None = None,
    partitions: int | None = None,
    batch_rows: int = BATCH_ROWS,
    progress: ProgressFn | None = None,
) -> dict:
    """``build_features`` on a Dask cluster (``scheduler``, or a local one): the same outputs, row for row.

    ``partitions`` defaults to enough for about ``batch_rows`` transactions each, and at least
    two per worker. Returns the metadata written.
    """
    catalog = load_catalog()
    raw, out = Path(raw), Path(out)
    tables = RawTables.scan(raw)
    tick = progress or (lambda done, total: None)
    as_of = resolve_as_of(tables, as_of)
    observed = observed_until(tables)
    root = out / "_partitions"
    shutil.rmtree(root, ignore_errors=True)
    with dask_client(scheduler) as client:
        workers = max(1, len(client.scheduler_info(n_workers=-1)["workers"]))
        n = partitions or max(2 * workers, math.ceil(tables.transaction_rows() / batch_rows))
        slices = _slices(tables)
        total = len(slices) + n + 1
        tick(0, total)
        _, done = _run(client, split_slice, [(*s, n, str(root), i) for i, s in enumerate(slices)], tick, 0, total)
        parts = [str(_part_dir(root, k)) for k in range(n)]
        results, done = _run(
            client, partition_features, [(p, as_of, observed, batch_rows) for p in parts], tick, done, total
        )
    if not any(r["feature_rows"] for r in results):
        raise ValueError(f"no merchants registered before {as_of[-1]} in {raw}: nothing to build")
    per_merchant = pl.scan_parquet(root / "*" / "features.parquet")
    ranked = per_merchant.select(*KEYS, *PEER_GROUP[1:], *PEER_INPUTS)
    peers = peer_features(ranked).select(*KEYS, *PEER_OUTPUTS).collect()
    feats = catalog_columns(per_merchant.join(peers.lazy(), on=KEYS, how="inner"), catalog)
    labelled = pl.scan_parquet(root / "*" / "labelled.parquet")
    meta = write_outputs(
        out,
        tables=tables,
        catalog=catalog,
        as_of=as_of,
        feats=feats,
        labelled=labelled,
        excluded_in_default=sum(r["excluded_in_default"] for r in results),
        observed=observed,
    )
    shutil.rmtree(root, ignore_errors=True)
    tick(total, total)
    return meta
