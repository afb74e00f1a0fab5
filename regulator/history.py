"""The class history: every merchant's PD, score, grade and class, month by month.

``lifecredit score-all`` scores every merchant in the population at an ``as_of`` date
(borrowers or not: every merchant registered before it) with the champion and writes one
partition per month::

    <history_dir>/month=2025-07/part-0.parquet

A *month* is the month of ``as_of``: the classification as it stood on that date, from events
strictly before it (``as_of`` 2025-07-01 sees data up to 30 June). Re-scoring a month replaces
its file atomically (:func:`core.files.atomic_path`: written beside it, then renamed over it), so a reader
sees the old month or the new one, never a mixture and never both.

Features come from the same code as training and serving: the serving snapshot
(``latest.parquet``, settings' ``snapshot_dir`` or the features folder) for its own ``as_of``, and :func:`features.compute_features` over the
validated tables for earlier dates. The snapshot's month is read from its answer store
(:mod:`answers`), which ``score-all`` writes first for the server: one computation of each
answer, read by the server, replay and this history alike. City (the first four digits of the merchant's
``region_code``) comes from the validated merchants table; the other segments (sector,
province, urban/rural, business form) are the profile features themselves.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl

from core.files import atomic_path
from core.settings import Settings
from core.vocabulary import CLASSES

PART_FILE = "part-0.parquet"
SEGMENTS = ("sector", "province", "city", "urban_rural", "business_form")
SCHEMA: dict[str, pl.DataType] = {
    "merchant_id": pl.String(),
    "month": pl.String(),
    "as_of": pl.Date(),
    "pd": pl.Float64(),
    "score": pl.Int32(),
    "grade": pl.String(),
    "class": pl.String(),
    "sector": pl.String(),
    "province": pl.String(),
    "city": pl.String(),
    "urban_rural": pl.String(),
    "business_form": pl.String(),
    "model_name": pl.String(),
    "model_version": pl.String(),
    "model_run_id": pl.String(),
    "scored_at": pl.Datetime("us", "UTC"),
}


class HistoryError(RuntimeError):
    """The class history cannot be built or read; the message says what is missing and which command makes it."""


def month_of(d: date) -> str:
    return f"{d.year:04d}-{d.month:02d}"


def months_back(anchor: date, n: int) -> list[date]:
    """``anchor`` and the n - 1 dates one, two, ... months before it (same day of month), oldest first."""
    out = []
    for i in range(n):
        y, m = divmod(anchor.year * 12 + anchor.month - 1 - i, 12)
        out.append(date(y, m + 1, min(anchor.day, calendar.monthrange(y, m + 1)[1])))
    return sorted(out)


def partition_path(root: Path, month: str) -> Path:
    return Path(root) / f"month={month}" / PART_FILE


def write_month(root: Path, month: str, frame: pl.DataFrame) -> Path:
    """Write (or replace) one month's partition atomically; returns its path."""
    target = partition_path(root, month)
    with atomic_path(target) as tmp:
        frame.select(*(pl.col(c).cast(t) for c, t in SCHEMA.items())).write_parquet(tmp)
    return target


def months_available(root: Path) -> list[str]:
    """Months with a partition, oldest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(p.parent.name.removeprefix("month=") for p in root.glob(f"month=*/{PART_FILE}"))


def scan_history(root: Path) -> pl.LazyFrame:
    """The whole class history as one lazy frame (raises :class:`HistoryError` when there is none)."""
    if not months_available(root):
        raise HistoryError(
            f"no class history in {root}: build it with `lifecredit score-all` "
            "(e.g. `lifecredit score-all --months 12`)"
        )
    return pl.scan_parquet(str(Path(root) / "month=*" / PART_FILE), hive_partitioning=False, schema=SCHEMA)


def _snapshot_as_of(path: Path) -> date | None:
    if not path.exists():
        return None
    return pl.scan_parquet(path).select(pl.col("as_of").max()).collect().item()


def plan_dates(snapshot_as_of: date | None, as_of: list[date] | None, months: int | None) -> list[date]:
    """The ``as_of`` dates to score: explicit dates, the last ``months`` months up to the snapshot, or the snapshot's date."""
    if as_of and months:
        raise ValueError("give either --as-of dates or --months, not both")
    if as_of:
        dates = sorted(set(as_of))
    elif snapshot_as_of is None:
        raise HistoryError(
            "no feature snapshot (latest.parquet) to anchor the months on: build it with "
            "`lifecredit features`, or pass --as-of dates"
        )
    else:
        dates = months_back(snapshot_as_of, months or 1)
    seen: dict[str, date] = {}
    for d in dates:
        if month_of(d) in seen:
            raise ValueError(f"{seen[month_of(d)]} and {d} fall in the same month; the history keeps one as_of a month")
        seen[month_of(d)] = d
    if snapshot_as_of is not None and dates[-1] > snapshot_as_of:
        raise ValueError(f"as_of {dates[-1]} is after the latest snapshot ({snapshot_as_of}): no data to score it on")
    return dates


def _cities(validated: Path) -> pl.DataFrame:
    path = Path(validated) / "merchants.parquet"
    if not path.exists():
        raise HistoryError(
            f"no validated merchants table at {path} (city comes from region_code): run `lifecredit validate`"
        )
    return (
        pl.scan_parquet(path)
        .select("merchant_id", pl.col("region_code").str.slice(0, 4).alias("city"))
        .unique("merchant_id", keep="first")
        .collect()
    )


def score_all(
    settings: Settings,
    *,
    policy: tuple[str, str] | None = None,
    as_of: list[date] | None = None,
    months: int | None = None,
    features_dir: Path | None = None,
    validated_dir: Path | None = None,
    history_dir: Path | None = None,
    model_name: str | None = None,
    answers_dir: Path | None = None,
    engine: str = "local",
    scheduler: str | None = None,
    workers: int = 2,
    rebuild: bool = False,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Score every merchant at each ``as_of`` with the champion and write the months to the class history;
    given ``policy`` (the decision policy's version and SHA-256), first write the answer store the server opens
    for the snapshot's own ``as_of`` and read that month from it (``engine`` "local" or "dask").

    Returns ``{"model": {...}, "history_dir": str, "months": [{"month", "as_of", "merchants", "classes", "path"}],
    "store": {...} or None}``.
    """
    from answers.build import build_store
    from answers.store import StoreFor, open_store
    from core.files import file_sha256
    from features import RawTables, compute_features
    from training.bundle import ScoringBundle, default_threads
    from training.model_source import from_mlflow

    say = progress or (lambda msg: None)
    features_dir = Path(features_dir or settings.serving_snapshot_dir)
    validated_dir = Path(validated_dir or settings.validated_dir)
    root = Path(history_dir or settings.class_history_dir)
    snapshot = features_dir / "latest.parquet"
    snap_as_of = _snapshot_as_of(snapshot)
    dates = plan_dates(snap_as_of, as_of, months)
    handle = from_mlflow(settings, model_name)
    bundle = ScoringBundle.load(handle.bundle_dir, num_threads=default_threads())
    say(f"champion {handle.name} version {handle.version}; {len(dates)} month(s): {dates[0]} .. {dates[-1]}")
    cities = _cities(validated_dir)

    frames: dict[date, pl.DataFrame] = {}
    answered: pl.DataFrame | None = None
    store = None
    if snap_as_of in dates and policy is not None:
        wanted = StoreFor(handle.name, str(handle.version), handle.run_id, file_sha256(snapshot), *policy)
        store = build_store(
            Path(answers_dir or settings.answers_root),
            wanted,
            Path(handle.bundle_dir),
            snapshot,
            engine=engine,
            scheduler=scheduler,
            workers=workers,
            rebuild=rebuild,
            progress=lambda fraction, message: say(f"answer store: {message}"),
        )
        answered = open_store(store["path"], wanted=wanted).frame(["merchant_id", "pd", "score", "grade", "class"])
        frames[snap_as_of] = pl.read_parquet(snapshot, columns=["merchant_id", *(c for c in SEGMENTS if c != "city")])
    elif snap_as_of in dates:
        frames[snap_as_of] = pl.read_parquet(snapshot)
    earlier = [d for d in dates if d not in frames]
    if earlier:
        say(f"computing features as of {len(earlier)} earlier date(s) from {validated_dir}")
        feats = compute_features(RawTables.scan(validated_dir), earlier)
        for d, part in feats.partition_by("as_of", as_dict=True, maintain_order=True).items():
            frames[d[0]] = part
    stamp = datetime.now(UTC)
    written = []
    for d in dates:
        frame = frames.get(d)
        if frame is None or frame.height == 0:
            raise HistoryError(f"no merchant is registered before {d}: nothing to score")
        segments = frame.select("merchant_id", *(pl.col(c).cast(pl.String) for c in SEGMENTS if c != "city"))
        if d == snap_as_of and answered is not None:  # the answers the server serves, not a second computation
            segments = segments.join(answered, on="merchant_id", how="left", maintain_order="left")
        else:
            scored = bundle.score(frame, reasons=False)
            segments = segments.with_columns(
                pd=pl.Series(scored.pd),
                score=pl.Series(scored.score),
                grade=pl.Series(scored.grade),
                **{"class": pl.Series(scored.klass)},
            )
        out = segments.with_columns(
            month=pl.lit(month_of(d)),
            as_of=pl.lit(d, dtype=pl.Date),
            model_name=pl.lit(handle.name),
            model_version=pl.lit(str(handle.version)),
            model_run_id=pl.lit(handle.run_id),
            scored_at=pl.lit(stamp, dtype=pl.Datetime("us", "UTC")),
        ).join(cities, on="merchant_id", how="left", maintain_order="left")
        path = write_month(root, month_of(d), out)
        counts = out.group_by("class").len()
        classes = {c: 0 for c in CLASSES} | dict(counts.iter_rows())
        written.append(
            {
                "month": month_of(d),
                "as_of": d.isoformat(),
                "merchants": out.height,
                "classes": classes,
                "path": str(path),
            }
        )
        say(f"{month_of(d)}: {out.height:,} merchants scored -> {path}")
    return {
        "model": {"name": handle.name, "version": str(handle.version), "run_id": handle.run_id},
        "history_dir": str(root),
        "months": written,
        "store": store,
    }
