"""One merchant re-scored after a correction: its features recomputed from its own rows only.

A data steward's correction (``data_contracts.corrections``) concerns one merchant's records, so
that merchant's features are recomputed from its own validated rows, with the corrections applied
by data_contracts' own code, instead of rebuilding the whole snapshot. Every per-merchant feature
comes from ``features.pipeline`` (one definition); the peer percentiles rank the new values
against the other merchants' values as the snapshot holds them, and the market conditions of a
sector or province are read from the snapshot (they are refreshed by the next full build).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import polars as pl

from data_contracts import TABLES, Contract, load_contracts, validate_table
from data_contracts.corrections import DELETED_RULE, Corrections, read_corrections, record_key
from data_contracts.rules import REASONS, key_rule_name
from data_contracts.validate import QUARANTINE_DIR
from features.catalog import Catalog, load_catalog
from features.pipeline import (
    KEYS,
    PEER_COLUMNS,
    PEER_CONDITIONS,
    PEER_GROUP,
    catalog_columns,
    own_event_features,
    peer_pct,
)
from features.tables import RawTables

__all__ = ["RescoreError", "merchant_tables", "rescore_features"]

MERCHANT = "merchant_id"


class RescoreError(ValueError):
    """The merchant cannot be re-scored against this snapshot (absent from it, or no valid record left)."""


def _moved_to(steward: Corrections, table: str, merchant_id: str) -> list[str]:
    """Records of ``table`` that an update assigns to ``merchant_id`` (they may sit under another merchant)."""
    return sorted(
        {record for _, record, fields in steward.updates.get(table, []) if fields.get(MERCHANT) == merchant_id}
    )


def _mine(contract: Contract, merchant_id: str, moved_in: list[str]) -> pl.Expr:
    """The merchant's rows: by merchant id (pruned by row-group statistics), plus records moved to it."""
    mine = pl.col(MERCHANT).cast(pl.String) == merchant_id
    return mine | record_key(contract).is_in(moved_in) if moved_in else mine


def _quarantined(validated: Path, contract: Contract, mine: pl.Expr) -> pl.LazyFrame | None:
    """The merchant's quarantined rows (raw values) that a correction may make valid again: not those
    deleted by a correction nor later copies of a key (which stay duplicates whatever is corrected)."""
    path = validated / QUARANTINE_DIR / f"{contract.name}.parquet"
    if not path.is_file():
        return None
    final = [DELETED_RULE, key_rule_name(contract)] if contract.primary_key else [DELETED_RULE]
    return (
        pl.scan_parquet(path)
        .filter(mine & ~pl.col(REASONS).list.eval(pl.element().is_in(final)).list.any())
        .drop(REASONS)
    )


def _corrected(rows: pl.LazyFrame, contract: Contract, steward: Corrections, ids: pl.Series | None) -> pl.DataFrame:
    """``rows`` with the steward's corrections applied and checked by the table's contract, as
    ``validate --corrections`` does: deleted records dropped, the rest valid under the contract."""
    raw, deleted = steward.apply(rows, contract)
    for rule in deleted:
        raw = raw.filter(~rule.broken)
    valid, _, _ = validate_table(raw, contract, ids if contract.foreign_keys else None)
    return valid


def merchant_tables(validated: Path, merchant_id: str, corrections: Path | None) -> RawTables:
    """That merchant's rows of the six validated tables (predicate pushdown on merchant_id, so the
    big transactions file is pruned by row-group statistics), with every correction in ``corrections``
    that concerns those tables applied (deletes removed, updates applied and checked by the table's
    contract with data_contracts' code). Re-applying a correction validate already applied is a no-op.

    Quarantined rows of the merchant are checked again where an update may have repaired them.
    """
    validated = Path(validated)
    contracts = load_contracts()
    steward = read_corrections(corrections, contracts)
    frames: dict[str, pl.DataFrame] = {}
    ids: pl.Series | None = None  # the valid merchant ids the foreign keys may name: this merchant's, if valid
    for name in TABLES:  # merchants first: the other tables' foreign key reads its valid rows
        contract = contracts[name]
        moved_in = _moved_to(steward, name, merchant_id)
        mine = _mine(contract, merchant_id, moved_in)
        rows = pl.scan_parquet(validated / f"{name}.parquet").filter(mine)
        revive = bool(steward.updates.get(name) or steward.updates.get(TABLES[0]))
        if steward.for_table(name) or revive:
            parts = [_corrected(rows, contract, steward, ids)]
            quarantined = _quarantined(validated, contract, mine) if revive else None
            if quarantined is not None:
                parts.append(_corrected(quarantined, contract, steward, ids))
            frame = pl.concat(parts)
        else:
            frame = rows.collect()
            if ids is not None and contract.foreign_keys:
                frame = frame.filter(pl.col(MERCHANT).is_in(ids.implode()))
        frames[name] = frame
        if name == TABLES[0]:
            ids = frame[MERCHANT]
    return RawTables.from_frames(**frames)


def _peer_percentiles(own: pl.DataFrame, peers: pl.DataFrame) -> pl.DataFrame:
    """The peer percentile columns of ``own`` (one row): ranked with ``features.pipeline``'s expression
    among the other merchants of its sector x province in ``peers``, its new value included."""
    sources = sorted(set(PEER_COLUMNS.values()))
    keys = {c: own[c][0] for c in PEER_GROUP}
    group = peers.filter(*(pl.col(c).eq_missing(pl.lit(v, dtype=peers.schema[c])) for c, v in keys.items()))
    frame = pl.concat(
        [
            group.select(*PEER_GROUP, *sources),
            own.select(pl.col(c).cast(peers.schema[c]) for c in [*PEER_GROUP, *sources]),
        ]
    )
    return frame.select(*(peer_pct(src).alias(name) for name, src in PEER_COLUMNS.items())).tail(1)


def _conditions(own: pl.DataFrame, snapshot: pl.DataFrame) -> pl.DataFrame:
    """The market conditions of ``own``'s sector and province as the snapshot holds them (one value per
    group there); a group the snapshot does not hold is this merchant alone, measured from its row."""
    out = {}
    for name, (by, expr) in PEER_CONDITIONS.items():
        group = snapshot.filter(pl.col(by).eq_missing(pl.lit(own[by][0], dtype=snapshot.schema[by])))
        out[name] = group[name][0] if group.height else own.select(expr).item()
    return pl.DataFrame({n: [v] for n, v in out.items()}, schema={n: snapshot.schema[n] for n in out})


def rescore_features(
    validated: Path,
    corrections: Path | None,
    snapshot: pl.DataFrame,
    merchant_id: str,
    catalog: Catalog | None = None,
) -> pl.DataFrame:
    """One row (the snapshot's columns but ``bad``, in its dtypes) recomputed at the snapshot's as_of
    from the merchant's own rows (``merchant_tables``); peer percentiles ranked against the other
    merchants' values in ``snapshot``, market conditions taken from it. ``snapshot`` is not modified.

    Raises RescoreError if the merchant is not in the snapshot or has no valid record left.
    """
    catalog = catalog or load_catalog()
    old = snapshot.filter(pl.col(MERCHANT) == merchant_id)
    if old.is_empty():
        raise RescoreError(f"merchant {merchant_id} is not in the snapshot: nothing to re-score")
    as_of: date = old["as_of"].max()
    columns = [c for c in snapshot.columns if c != "bad"]
    unknown = [c for c in columns if c not in KEYS and c not in catalog.names]
    if unknown:
        raise RescoreError(f"snapshot column(s) {unknown} are not in feature catalogue {catalog.version}: rebuild it")
    own = own_event_features(merchant_tables(validated, merchant_id, corrections), [as_of])
    if own.is_empty():
        raise RescoreError(f"merchant {merchant_id} has no valid record before {as_of} after the corrections")
    market = snapshot.filter(pl.col("as_of") == as_of)
    peers = market.filter(pl.col(MERCHANT) != merchant_id)
    row = pl.concat([own, _peer_percentiles(own, peers), _conditions(own, market)], how="horizontal")
    row = catalog_columns(row.lazy(), catalog).collect()
    return row.select(pl.col(c).cast(snapshot.schema[c]) for c in columns)
