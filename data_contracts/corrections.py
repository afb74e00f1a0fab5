"""The data steward's corrections (更正): an append-only table, applied to the raw tables as they are validated.

Raw tables stay as received. Each correction deletes or updates one record (by primary key;
a composite key as its values joined by ``|``); ``validate`` applies them in ``decided_at`` order,
so a rebuild reproduces the corrected state. A deleted record lands in quarantine under
``deleted_by_correction`` (nothing is lost); an updated one is checked by its table's contract
like any other row. Corrections live as one Parquet file each in a folder, never rewritten.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import polars as pl

from core.files import atomic_path
from data_contracts.cast import typed
from data_contracts.contract import Contract, load_contract
from data_contracts.rules import REASONS, Rule

NAME = "corrections"
DELETED_RULE = "deleted_by_correction"
KEY_SEPARATOR = "|"


def record_key(contract: Contract) -> pl.Expr:
    """The record id of each row: its primary key as text, composite keys joined by ``|``."""
    parts = [pl.col(c).cast(pl.String) for c in contract.primary_key]
    return parts[0] if len(parts) == 1 else pl.concat_str(parts, separator=KEY_SEPARATOR)


@dataclass
class Corrections:
    """Valid corrections grouped by table, and the ones rejected with their reasons."""

    deletes: dict[str, set[str]] = field(default_factory=dict)
    updates: dict[str, list[tuple[str, str, dict]]] = field(default_factory=dict)  # (correction id, record, fields)
    valid: pl.DataFrame | None = None
    rejected: pl.DataFrame | None = None

    def for_table(self, table: str) -> bool:
        return bool(self.deletes.get(table) or self.updates.get(table))

    def apply(self, raw: pl.LazyFrame, contract: Contract) -> tuple[pl.LazyFrame, list[Rule]]:
        """``raw`` with this table's updates applied (as raw values) and the rule that quarantines its deletes."""
        key = record_key(contract)
        schema = raw.collect_schema()
        for _, record, fields in self.updates.get(contract.name, []):
            raw = raw.with_columns(
                pl.when(key == record)
                .then(_raw_value(value, contract, column, schema[column]))
                .otherwise(pl.col(column))
                .alias(column)
                for column, value in fields.items()
            )
        deleted = sorted(self.deletes.get(contract.name, ()))
        rules = [Rule(DELETED_RULE, key.is_in(deleted).fill_null(False))]
        return raw, rules if deleted else []

    def counts(self, raw: pl.LazyFrame, contract: Contract) -> dict:
        """Corrections of this table, and how many found their record."""
        key = record_key(contract)
        ids = {r for _, r, _ in self.updates.get(contract.name, [])} | self.deletes.get(contract.name, set())
        found = set(raw.select(key.alias("k")).filter(pl.col("k").is_in(sorted(ids))).collect()["k"].to_list())
        return {
            "deletes": len(self.deletes.get(contract.name, ())),
            "updates": len(self.updates.get(contract.name, [])),
            "records_not_found": sorted(ids - found),
        }


def _raw_value(value, contract: Contract, column: str, raw_dtype: pl.DataType) -> pl.Expr:
    """A corrected value as the raw column holds it (text for CSV input, the typed value for Parquet)."""
    if value is None:
        return pl.lit(None, dtype=raw_dtype)
    text = value if isinstance(value, str) else json.dumps(value)
    if raw_dtype == pl.String:
        return pl.lit(text, dtype=pl.String)
    return pl.lit(_typed_value(text, contract, column), dtype=contract.field(column).dtype).cast(raw_dtype)


def _typed_value(text: str, contract: Contract, column: str):
    """``text`` cast the way validation casts a CSV cell of ``column``; None where it cannot be."""
    plan = typed(contract.field(column), pl.String, f"<{NAME}>")
    frame = pl.DataFrame({column: [text]}, schema={column: pl.String}).lazy()
    for stage in plan.stages:
        frame = frame.with_columns(stage)
    return frame.select(plan.wide.cast(contract.field(column).dtype, strict=False)).collect().item()


def _check(row: dict, contracts: Mapping[str, Contract]) -> tuple[dict | None, str | None]:
    """The parsed fields of an update (None for a delete), or why the correction cannot apply."""
    contract = contracts[row["table"]]
    if row["record_id"].count(KEY_SEPARATOR) != len(contract.primary_key) - 1:
        return None, "record_id:key_shape"
    if row["action"] == "delete":
        return None, None
    try:
        fields = json.loads(row["corrected_fields"] or "")
    except ValueError:
        return None, "corrected_fields:json_object"
    if not isinstance(fields, dict) or not fields:
        return None, "corrected_fields:json_object"
    names = {f.name for f in contract.fields}
    if any(k not in names or k in contract.primary_key for k in fields):
        return None, "corrected_fields:known_non_key_columns"
    for k, v in fields.items():
        if v is not None and _typed_value(v if isinstance(v, str) else json.dumps(v), contract, k) is None:
            return None, f"corrected_fields:{k}:type"
    return fields, None


def correction_problem(table: str, record_id: str, action: str, corrected_fields: dict | None) -> str | None:
    """Why this correction would be rejected when ``validate`` applies it (``field:rule``), or None: a steward's
    tool checks before appending, since an appended correction is never rewritten."""
    if action not in ("delete", "update"):
        return "action:delete_or_update"
    row = {"table": table, "record_id": record_id, "action": action}
    row["corrected_fields"] = None if corrected_fields is None else json.dumps(corrected_fields, ensure_ascii=False)
    return _check(row, {table: load_contract(table)})[1]


def read_corrections(folder: Path | None, contracts: Mapping[str, Contract]) -> Corrections:
    """Every correction in ``folder`` (Parquet files), checked against the corrections contract; empty if none."""
    files = sorted(Path(folder).glob("*.parquet")) if folder is not None and Path(folder).is_dir() else []
    if not files:
        return Corrections()
    from data_contracts.validate import validate_table  # validate imports this module

    frame = pl.concat([pl.read_parquet(f) for f in files], how="diagonal_relaxed")
    valid, rejected, _ = validate_table(frame, load_contract(NAME))
    out = Corrections()
    problems = []
    for row in valid.sort("decided_at", "correction_id").iter_rows(named=True):
        fields, problem = _check(row, contracts)
        if problem:
            problems.append((row["correction_id"], problem))
        elif row["action"] == "delete":
            out.deletes.setdefault(row["table"], set()).add(row["record_id"])
        else:
            out.updates.setdefault(row["table"], []).append((row["correction_id"], row["record_id"], fields))
    bad = dict(problems)
    late = valid.filter(pl.col("correction_id").is_in(list(bad)))
    late = late.with_columns(pl.col(c).cast(pl.String) for c in late.columns).with_columns(
        pl.col("correction_id")
        .replace_strict(bad, return_dtype=pl.String)
        .map_elements(lambda p: [p], return_dtype=pl.List(pl.String))
        .alias(REASONS)
    )
    out.valid = valid.filter(~pl.col("correction_id").is_in(list(bad)))
    out.rejected = pl.concat([rejected.with_columns(pl.exclude(REASONS).cast(pl.String)), late], how="diagonal_relaxed")
    return out


def append_correction(
    folder: Path,
    *,
    table: str,
    record_id: str,
    action: str,
    decided_by: str,
    corrected_fields: dict | None = None,
    objection_id: str | None = None,
    decided_at: datetime | None = None,
) -> dict:
    """Write one correction as its own Parquet file in ``folder`` (atomically) and return it as a dict."""
    decided_at = decided_at or datetime.now().astimezone()
    row = {
        "correction_id": "K" + decided_at.strftime("%Y%m%d%H%M%S") + uuid.uuid4().hex[:8],
        "table": table,
        "record_id": record_id,
        "action": action,
        "corrected_fields": None if corrected_fields is None else json.dumps(corrected_fields, ensure_ascii=False),
        "objection_id": objection_id,
        "decided_at": decided_at,
        "decided_by": decided_by,
    }
    from data_contracts.validate import validate_table  # validate imports this module

    frame = pl.DataFrame([row], schema=load_contract(NAME).polars_schema())
    valid, rejected, _ = validate_table(frame, load_contract(NAME))
    if rejected.height:
        raise ValueError(f"correction breaks its contract: {', '.join(rejected[REASONS][0])}")
    with atomic_path(Path(folder) / f"{row['correction_id']}.parquet") as tmp:
        valid.write_parquet(tmp)
    return row
