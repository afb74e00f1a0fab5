"""Assemble the feature set for a spine of (merchant_id, as_of), and write panel + latest snapshot.

The same ``compute_features`` builds the training panel and the serving snapshot, so there is
one definition of every feature offline and online.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl

from core.files import atomic_path, write_text_atomic
from core.progress import ProgressFn
from features.catalog import CATALOG_PATH, Catalog, load_catalog
from features.customers import (
    customer_features,
    customer_rollup,
    segment_bounds,
    single_visit_share,
)
from features.events import (
    complaint_features,
    credit_features,
    profile_features,
    public_record_features,
)
from features.sales import IDENTIFIED_SALES_90D, daily_rollup, sales_features
from features.spine import (
    data_date_range,
    labels,
    monthly_as_of,
    observed_until,
    population,
    training_spine,
)
from features.tables import RawTables, transaction_facts

KEYS = ["merchant_id", "as_of"]
PEER_GROUP = ["as_of", "sector", "province"]


def peer_pct(col: str) -> pl.Expr:
    """Share of merchants in the same sector x province at the same as_of at or below this value."""
    return pl.col(col).rank("max").over(PEER_GROUP) / pl.col(col).count().over(PEER_GROUP)


BATCH_ROWS = 8_000_000
"""Transactions per merchant batch: bounds memory whatever the market size, at little CPU cost
(figures in ``benchmarks/RESULTS.md``)."""


def own_event_features(tables: RawTables, as_of: list[date], keep: pl.DataFrame | None = None) -> pl.DataFrame:
    """Every feature that depends on one merchant's own events, for its rows of the population.

    With ``keep`` (merchant_id, as_of), the costly customer concentration is computed for those rows only.
    """
    bounds = segment_bounds(as_of)
    facts = transaction_facts(tables.transactions)  # one scan feeds both rollups
    daily, cust = pl.collect_all([daily_rollup(facts), customer_rollup(facts, bounds)], engine="streaming")
    pop = population(tables, as_of).collect().lazy()
    conc_rows = None if keep is None else pop.join(keep.lazy(), on=KEYS, how="semi").select("mkey", "as_of")
    parts = [
        sales_features(daily.lazy(), pop),
        customer_features(cust, pop, bounds, as_of, conc_rows),
        complaint_features(tables.complaints, pop),
        credit_features(tables.loans, tables.loan_performance, pop),
        public_record_features(tables.public_records, pop),
        profile_features(tables.merchants, pop),
    ]
    frame = pop.drop("mkey")
    for part in parts:
        frame = frame.join(part.drop("mkey", strict=False), on=KEYS, how="left")
    rate = pl.when(pl.col("sale_count_365d") > 0).then(pl.col("complaints_365d") * 1000.0 / pl.col("sale_count_365d"))
    return (
        frame.with_columns(rate.alias("complaints_per_1k_txn_365d"), single_visit_share())
        .drop(IDENTIFIED_SALES_90D)
        .collect()
    )


def merchant_batches(tables: RawTables, batch_rows: int = BATCH_ROWS) -> list[tuple[str, str | None]]:
    """Contiguous ``[first, next_first)`` merchant-id ranges holding about ``batch_rows`` transactions each.

    Ranges (not hashes) so that a transactions file written in merchant order, as the simulator
    and most warehouse exports write it, is pruned by row-group statistics and read once overall.
    """
    ids = tables.merchants.select(pl.col("merchant_id").unique().sort()).collect()["merchant_id"].to_list()
    rows = tables.transaction_rows()
    k = max(1, min(len(ids), -(-rows // batch_rows) if rows else 1))
    cuts = [ids[i * len(ids) // k] for i in range(k)]
    return [(lo, cuts[i + 1] if i + 1 < k else None) for i, lo in enumerate(cuts)]


def merchant_features(
    tables: RawTables, as_of: list[date], *, progress: ProgressFn | None = None, batch_rows: int = BATCH_ROWS
) -> pl.DataFrame:
    """Every per-merchant feature (all but the peer percentiles) of every merchant in ``tables``.

    A merchant's rows depend only on its own events, so any split of the merchants (batches
    here, hash partitions on Dask) gives the same rows. Merchants are processed in batches of
    about ``batch_rows`` transactions.
    """
    return _batched_features(tables, as_of, progress=progress, batch_rows=batch_rows)[0]


def _batched_features(
    tables: RawTables,
    as_of: list[date],
    *,
    progress: ProgressFn | None = None,
    batch_rows: int = BATCH_ROWS,
    keep: pl.DataFrame | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Per-merchant features batch by batch: (every feature of the ``keep`` rows, or of all rows
    when None; the peer-ranked inputs of all rows).

    Only the rows an output needs are held in full, so memory follows the spine, not the whole
    merchant x as_of population (100k merchants x 24 months of full rows would not fit in 4 GB).
    """
    as_of = sorted(set(as_of))
    tick = progress or (lambda done, total: None)
    batches = merchant_batches(tables, batch_rows)
    tick(0, len(batches))
    full, ranked = [], []
    for i, (lo, hi) in enumerate(batches):
        part = own_event_features(tables if len(batches) == 1 else tables.merchant_range(lo, hi), as_of, keep)
        ranked.append(part.select(*KEYS, *PEER_GROUP[1:], *PEER_INPUTS))
        full.append(part if keep is None else part.join(keep, on=KEYS, how="semi"))
        del part
        tick(i + 1, len(batches))
    return pl.concat(full), pl.concat(ranked)


PEER_COLUMNS = {
    "net_sales_90d_peer_pct": "sales_net_yuan_90d",
    "complaint_rate_365d_peer_pct": "complaints_per_1k_txn_365d",
    "refund_rate_365d_peer_pct": "refund_rate_count_365d",
    "repeat_customer_share_365d_peer_pct": "repeat_customer_share_365d",
    "single_visit_sale_share_90d_peer_pct": "single_visit_sale_share_90d",
    "sale_count_ewm_level_peer_pct": "sale_count_ewm_level_vs_365d",
    "complaint_resolve_days_365d_peer_pct": "complaint_median_days_to_resolve_365d",
}
"""Peer-relative feature -> the per-merchant feature it ranks within sector x province at each as_of."""


_DEFAULTED_365D = pl.when(pl.col("has_credit_history")).then(
    (pl.col("worst_dpd_365d").fill_null(0) >= 90).cast(pl.Float64)
)
PEER_CONDITIONS = {
    "sector_sales_momentum": ("sector", pl.col("sale_count_ewm_level_vs_365d").median()),
    "province_sales_momentum": ("province", pl.col("sale_count_ewm_level_vs_365d").median()),
    "sector_default_rate_365d": ("sector", _DEFAULTED_365D.mean()),
    "province_default_rate_365d": ("province", _DEFAULTED_365D.mean()),
    "sector_complaints_90d": ("sector", pl.col("complaints_90d").fill_null(0).mean()),
}
"""Market conditions of a merchant's sector (all provinces) and province (all sectors) at its as_of,
measured over every merchant registered before it: sales momentum (median level of recent sale
counts against the merchant's own year), the share of borrowers 90+ days past due within the last
365 days, complaints per merchant. Sector and regional shocks enter as these measurements rather
than through the sector or province identity, which a new economy does not share."""
PEER_INPUTS = sorted(
    {*PEER_COLUMNS.values(), "sale_count_ewm_level_vs_365d", "has_credit_history", "worst_dpd_365d", "complaints_90d"}
)
PEER_OUTPUTS = [*PEER_COLUMNS, *PEER_CONDITIONS]


def peer_features(frame: pl.LazyFrame) -> pl.LazyFrame:
    """``frame`` (per-merchant features of *every* merchant) plus the peer percentile and condition columns."""
    return frame.with_columns(
        *(peer_pct(src).alias(name) for name, src in PEER_COLUMNS.items()),
        *(expr.over("as_of", by).alias(name) for name, (by, expr) in PEER_CONDITIONS.items()),
    )


def catalog_columns(frame: pl.LazyFrame, catalog: Catalog) -> pl.LazyFrame:
    """merchant_id, as_of, then the catalogue's features in catalogue order and dtype, sorted by keys."""
    return frame.select(*KEYS, *(pl.col(n).cast(t) for n, t in catalog.schema().items())).sort(KEYS)


def compute_features(
    tables: RawTables,
    as_of: list[date],
    *,
    catalog: Catalog | None = None,
    progress: ProgressFn | None = None,
    batch_rows: int = BATCH_ROWS,
    keep: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Features of every merchant registered before each ``as_of`` (the peer population).

    Every feature sees only events strictly before its row's ``as_of``. Per-merchant features
    first (``merchant_features``); peer percentiles are then taken over all merchants
    (``peer_features``). ``keep`` (merchant_id, as_of) limits the rows returned (the ranks still
    cover every merchant, so a row's values do not depend on it). Columns: merchant_id, as_of,
    then the catalogue's features in catalogue order and dtype.
    """
    catalog = catalog or load_catalog()
    as_of = sorted(set(as_of))
    if not as_of:
        raise ValueError("no as_of dates given")
    if keep is not None:
        keep = (
            keep.lazy().select(pl.col("merchant_id").cast(pl.String), pl.col("as_of").cast(pl.Date)).unique().collect()
        )
    full, ranked = _batched_features(tables, as_of, progress=progress, batch_rows=batch_rows, keep=keep)
    peers = peer_features(ranked.lazy()).select(*KEYS, *PEER_OUTPUTS)
    return catalog_columns(full.lazy().join(peers, on=KEYS, how="left"), catalog).collect()


def features_for_spine(
    tables: RawTables, spine: pl.DataFrame | pl.LazyFrame, *, catalog: Catalog | None = None
) -> pl.DataFrame:
    """Features for the given (merchant_id, as_of) rows, in spine order (the online/offline entry point).

    Peer percentiles are taken over all merchants at each of the spine's dates, so a row's
    features never depend on which other rows were asked for.
    """
    spine = spine.lazy().select(pl.col("merchant_id").cast(pl.String), pl.col("as_of").cast(pl.Date)).collect()
    feats = compute_features(tables, spine["as_of"].unique().to_list(), catalog=catalog)
    return spine.join(feats, on=KEYS, how="left", maintain_order="left")


def resolve_as_of(tables: RawTables, as_of: list[date] | None) -> list[date]:
    """Sorted distinct ``as_of`` dates; None means monthly ones (``monthly_as_of``: from the first month start
    with a year of transactions behind it)."""
    if as_of is None:
        rng = data_date_range(tables)
        if rng is None:
            where = tables.paths["transactions"].parent if tables.paths else "the given tables"
            raise ValueError(f"no transactions in {where}: cannot derive monthly as_of dates; pass as_of")
        as_of = monthly_as_of(*rng)
    return sorted(set(as_of))


def build_features(
    raw: Path,
    out: Path,
    *,
    as_of: list[date] | None = None,
    progress: ProgressFn | None = None,
) -> dict:
    """Build ``panel.parquet`` (training spine, with ``bad``), ``latest.parquet`` (every merchant at
    the latest ``as_of``) and ``metadata.json`` from the validated tables in ``raw``.

    ``as_of`` None means monthly ones (see ``monthly_as_of``).
    Returns the metadata written.
    """
    catalog = load_catalog()
    tables = RawTables.scan(Path(raw))
    tick = progress or (lambda done, total: None)
    total = 5
    tick(0, total)
    as_of = resolve_as_of(tables, as_of)
    tick(1, total)

    spine = training_spine(tables, as_of)
    keep = pl.concat([spine.rows.select(KEYS), population(tables, as_of[-1:]).select(KEYS).collect()])
    feats = compute_features(
        tables, as_of, catalog=catalog, keep=keep, progress=lambda d, t: tick(1 + 2 * d // max(t, 1), total)
    )
    tick(3, total)

    observed = observed_until(tables)
    labelled = labels(tables, spine.rows, observed).collect()
    meta = write_outputs(
        out,
        tables=tables,
        catalog=catalog,
        as_of=as_of,
        feats=feats,
        labelled=labelled,
        excluded_in_default=spine.excluded_in_default,
        observed=observed,
        feature_rows=population(tables, as_of).select(pl.len()).collect().item(),
    )
    tick(total, total)
    return meta


def write_outputs(
    out: Path,
    *,
    tables: RawTables,
    catalog: Catalog,
    as_of: list[date],
    feats: pl.DataFrame | pl.LazyFrame,
    labelled: pl.DataFrame | pl.LazyFrame,
    excluded_in_default: int,
    observed: date | None,
    feature_rows: int | None = None,
) -> dict:
    """Write panel.parquet (labelled spine rows with their features), latest.parquet, the catalogue
    and metadata.json from the features of every merchant and the labelled spine; return the metadata.

    ``feature_rows``: the merchant x as_of population when ``feats`` holds only the rows written."""
    out = Path(out)
    latest_as_of = as_of[-1]
    feats = feats.lazy()
    panel, latest, labelled_rows, n_feats = pl.collect_all(
        [
            labelled.lazy().join(feats, on=KEYS, how="inner").sort(KEYS),
            feats.filter(pl.col("as_of") == latest_as_of)
            .with_columns(pl.lit(None, dtype=pl.Int8).alias("bad"))
            .select(*KEYS, "bad", *catalog.names),
            labelled.lazy().select(pl.len()),
            feats.select(pl.len()),
        ]
    )
    dropped = labelled_rows.item() - panel.height  # spine rows of merchants unknown (or not yet registered)

    out.mkdir(parents=True, exist_ok=True)
    (out / "metadata.json").unlink(missing_ok=True)  # no metadata while the files are being swapped in
    with atomic_path(out / "panel.parquet") as tmp:
        panel.write_parquet(tmp)
    # the panel travels with the catalogue that defines it
    with atomic_path(out / "catalog.yaml") as tmp:
        shutil.copyfile(CATALOG_PATH, tmp)
    with atomic_path(out / "latest.parquet") as tmp:
        latest.write_parquet(tmp)
    bad = panel["bad"]
    n_lab = int(bad.is_not_null().sum())
    n_bad = int(bad.sum() or 0)
    meta = {
        "feature_set": {"name": catalog.name, "version": catalog.version, "features": len(catalog.features)},
        "catalog_sha256": hashlib.sha256(CATALOG_PATH.read_bytes()).hexdigest(),
        "as_of": {"first": as_of[0].isoformat(), "last": latest_as_of.isoformat(), "count": len(as_of)},
        "label": {
            "definition": "bad=1: any loan of the merchant 90+ dpd, default or written off with as_of <= reported_on < as_of + 12 months",
            "observed_until": observed.isoformat() if observed else None,
        },
        "rows": {
            "panel": panel.height,
            "latest": latest.height,
            "feature_rows": feature_rows if feature_rows is not None else n_feats.item(),
        },
        "labels": {
            "labelled": n_lab,
            "bad": n_bad,
            "good": n_lab - n_bad,
            "unlabelled": panel.height - n_lab,
            "bad_rate": (n_bad / n_lab) if n_lab else None,
        },
        "excluded_in_default": excluded_in_default,
        "dropped_unknown_merchant": dropped,
        "thin_file_latest": int(latest["thin_file"].sum()),
        "input_hashes": tables.file_hashes(),
        "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    text = json.dumps(meta, indent=2, ensure_ascii=False) + "\n"
    write_text_atomic(out / "metadata.json", text)
    return meta
