"""Compute a feature snapshot's answers with one model and write them as an answer store.

The snapshot's merchants are sorted by id and cut into parts of :data:`PART_ROWS`; each part is
scored on its own (encode, PD, score, grade, class, TreeSHAP reasons, rendered by
:func:`answers.render.render`) and written as one Arrow file. Locally the parts run one after the
other with every core; on Dask (``engine="dask"``) each part is a task, so workers on several
machines share the work. A part depends only on its own rows, so both engines write the same
bytes. The parts go into a temporary folder beside the store, the manifest last, and the folder
is renamed into place: a store is there whole or not at all.

``python -m answers.build --job FILE`` runs one build from a JSON job description and prints
its progress as JSON lines: the server's reload builds a missing store so, in a child process,
leaving the serving process's interpreter to the requests.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa

from answers.render import render
from answers.store import ANSWER_COLUMNS, FORMAT_VERSION, MANIFEST, StoreError, StoreFor, store_path
from core.audit import canonical_json
from core.files import file_sha256, write_text_atomic
from training.bundle import ScoringBundle, default_threads

PART_ROWS = 250_000
Progress = Callable[[float, str], None]


def plan_parts(snapshot: Path, part_rows: int = PART_ROWS) -> tuple[list[tuple[str, str, int]], int]:
    """The parts as (first merchant, last merchant, rows) in merchant order, and the key width in bytes."""
    ids = pl.read_parquet(snapshot, columns=["merchant_id"])["merchant_id"].cast(pl.String)
    if ids.null_count():
        raise StoreError(f"feature snapshot {snapshot} has {ids.null_count()} rows without a merchant_id")
    if ids.len() == 0:
        raise StoreError(f"feature snapshot {snapshot} has no rows: nothing to answer")
    ids = ids.sort()
    if ids.n_unique() != ids.len():
        raise StoreError(f"feature snapshot {snapshot} repeats merchant ids ({ids.len() - ids.n_unique()} duplicates)")
    width = int(ids.str.len_bytes().max())
    parts = []
    for start in range(0, ids.len(), part_rows):
        chunk = ids.slice(start, part_rows)
        parts.append((chunk[0], chunk[-1], chunk.len()))
    return parts, width


def _arrow_frame(frame: pl.DataFrame) -> pa.Table:
    """A Polars frame as Arrow with plain (non-view) string types, which every Arrow reader maps."""
    table = frame.to_arrow()
    fields = [pa.field(f.name, pa.large_string()) if pa.types.is_string_view(f.type) else f for f in table.schema]
    return table.cast(pa.schema(fields))


def _texts(values: list[bytes]) -> pa.Array:
    """UTF-8 texts as one binary column (64-bit offsets only when a part holds over 2 GiB of them)."""
    large = sum(map(len, values)) >= 2**31 - 1
    return pa.array(values, type=pa.large_binary() if large else pa.binary())


def compute_part(
    bundle_dir: str,
    snapshot: str,
    first: str,
    last: str,
    rows: int,
    width: int,
    out: str,
    model_name: str,
    model_version: str,
    threads: int = 1,
) -> dict:
    """Score the snapshot's merchants ``first``..``last`` (inclusive) and write them to ``out``; returns the
    part's manifest entry."""
    frame = (
        pl.scan_parquet(snapshot)
        .filter(pl.col("merchant_id").cast(pl.String).is_between(pl.lit(first), pl.lit(last), closed="both"))
        .collect()
        .sort(pl.col("merchant_id").cast(pl.String))
    )
    if frame.height != rows:
        raise StoreError(f"{snapshot}: {frame.height} merchants between {first} and {last}, planned {rows}")
    clash = [c for c in ANSWER_COLUMNS if c in frame.columns]
    if clash:
        raise StoreError(f"feature snapshot {snapshot} has column(s) {', '.join(clash)}, names an answer store keeps")
    bundle = ScoringBundle.load(bundle_dir, num_threads=threads)
    scores = bundle.score_encoded(bundle.encode(frame), threads=threads)
    ids = frame["merchant_id"].cast(pl.String).to_list()
    as_of = frame["as_of"].cast(pl.String).to_list()
    answers = render(scores, ids, as_of, model_name, model_version)
    plain = (
        {k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in r.items()} for r in frame.iter_rows(named=True)
    )
    table = pa.table(
        {
            "key": pa.array([m.encode().ljust(width, b"\0") for m in ids], type=pa.binary(width)),
            "answer": _texts([canonical_json(a).encode() for a in answers]),
            "features": _texts([canonical_json(r).encode() for r in plain]),
            "pd": pa.array(np.asarray(scores.pd, dtype=np.float64)),
            "score": pa.array(np.asarray(scores.score, dtype=np.int32)),
            "grade": pa.array(scores.grade.tolist(), type=pa.string()),
            "class": pa.array(scores.klass.tolist(), type=pa.string()),
        }
    )
    for name, column in zip(frame.columns, _arrow_frame(frame).columns, strict=True):
        table = table.append_column(name, column)
    batch = table.combine_chunks().to_batches(max_chunksize=max(1, table.num_rows))
    path = Path(out)
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        for b in batch:
            writer.write_batch(b)
    return {
        "file": path.name,
        "rows": rows,
        "bytes": path.stat().st_size,
        "sha256": file_sha256(path),
        "first": first,
        "last": last,
    }


def build_store(
    root: Path,
    wanted: StoreFor,
    bundle_dir: Path,
    snapshot: Path,
    *,
    engine: str = "local",
    scheduler: str | None = None,
    workers: int = 2,
    threads: int | None = None,
    part_rows: int = PART_ROWS,
    rebuild: bool = False,
    progress: Progress | None = None,
) -> dict:
    """Write the store of ``wanted`` under ``root`` (unless it is there and not ``rebuild``); returns a summary:
    ``{"path", "id", "rows", "parts", "seconds", "engine", "reused"}``."""
    say = progress or (lambda fraction, message: None)
    target = store_path(root, wanted)
    started = time.perf_counter()
    if (target / MANIFEST).exists() and not rebuild:
        manifest = json.loads((target / MANIFEST).read_text(encoding="utf-8"))
        if manifest.get("format_version") == FORMAT_VERSION:
            say(1.0, f"answer store {target.name} is there already")
            return _summary(target, manifest, 0.0, engine, reused=True)
        say(0.0, f"answer store {target.name} has format {manifest.get('format_version')}: writing it again")
        rebuild = True
    plan, width = plan_parts(snapshot, part_rows)
    rows = sum(n for _, _, n in plan)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.mkdir(parents=True)
    try:
        args = [
            (
                str(bundle_dir),
                str(snapshot),
                first,
                last,
                n,
                width,
                str(tmp / f"part-{k:05d}.arrow"),
                wanted.model_name,
                wanted.model_version,
            )
            for k, (first, last, n) in enumerate(plan)
        ]
        say(0.0, f"scoring {rows:,} merchants in {len(plan)} part(s) ({engine})")
        if engine == "dask":
            metas = _run_dask(args, scheduler, workers, say, rows)
        else:
            metas, done = [], 0
            for a in args:
                metas.append(compute_part(*a, threads=threads or default_threads()))
                done += a[4]
                say(done / rows, f"{done:,} of {rows:,} merchants scored")
        manifest = {
            "format_version": FORMAT_VERSION,
            "computed_for": asdict(wanted),
            "rows": rows,
            "key_width": width,
            "snapshot": {
                "path": str(snapshot),
                "as_of": _latest_as_of(snapshot),
                "columns": pl.read_parquet_schema(snapshot).names(),
            },
            "parts": metas,
            "engine": engine,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        write_text_atomic(tmp / MANIFEST, json.dumps(manifest, ensure_ascii=False, indent=1))
        _move_into_place(tmp, target, rebuild)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    manifest = json.loads((target / MANIFEST).read_text(encoding="utf-8"))
    seconds = round(time.perf_counter() - started, 3)
    say(1.0, f"answer store {target.name}: {rows:,} merchants in {seconds:.1f} s")
    return _summary(target, manifest, seconds, engine, reused=False)


def _latest_as_of(snapshot: Path) -> str | None:
    value = pl.scan_parquet(snapshot).select(pl.col("as_of").max()).collect().item()
    return value.isoformat() if value is not None else None


def _move_into_place(tmp: Path, target: Path, rebuild: bool) -> None:
    """Rename the finished folder onto ``target``; a store another builder put there first is kept (same inputs,
    same answers), unless rebuilding, when the old one is moved aside and removed (mapped files stay readable)."""
    if target.exists():
        if not rebuild:
            return
        aside = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.old")
        os.rename(target, aside)
        os.rename(tmp, target)
        shutil.rmtree(aside, ignore_errors=True)
        return
    try:
        os.rename(tmp, target)
    except OSError:
        if not (target / MANIFEST).exists():
            raise


def _run_dask(args: list[tuple], scheduler: str | None, workers: int, say: Progress, rows: int) -> list[dict]:
    from distributed import as_completed

    from features.dask_engine import dask_client

    with dask_client(scheduler, workers=workers) as client:
        futures = {client.submit(compute_part, *a, threads=1, pure=False): k for k, a in enumerate(args)}
        metas: list[dict | None] = [None] * len(args)
        done = 0
        for future in as_completed(futures):
            k = futures[future]
            metas[k] = future.result()
            done += args[k][4]
            say(done / rows, f"{done:,} of {rows:,} merchants scored")
    return metas


def _summary(target: Path, manifest: dict, seconds: float, engine: str, *, reused: bool) -> dict:
    return {
        "path": str(target),
        "id": target.name,
        "rows": manifest["rows"],
        "parts": len(manifest["parts"]),
        "seconds": seconds,
        "engine": manifest.get("engine", engine) if reused else engine,
        "reused": reused,
    }


def main(argv: list[str] | None = None) -> int:
    """``python -m answers.build --job FILE``: one build, progress as JSON lines, the summary last."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--job", required=True, type=Path, help="JSON: root, computed_for, bundle_dir, snapshot")
    job = json.loads(parser.parse_args(argv).job.read_text(encoding="utf-8"))

    def say(fraction: float, message: str) -> None:
        print(json.dumps({"progress": round(fraction, 4), "message": message}), flush=True)

    try:
        summary = build_store(
            Path(job["root"]),
            StoreFor(**job["computed_for"]),
            Path(job["bundle_dir"]),
            Path(job["snapshot"]),
            threads=job.get("threads"),
            progress=say,
        )
    except (StoreError, OSError, ValueError) as err:
        print(json.dumps({"error": str(err)}), flush=True)
        return 1
    print(json.dumps({"summary": summary}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
