"""Split raw tables into valid rows and quarantined rows under their contracts.

Per table, lazy passes keep memory bounded on hundreds of millions of rows:
  1. the primary key alone (one typed column, ~8 bytes a row) finds later occurrences of a key;
  2. one streaming pass evaluates every rule and writes valid rows (cast to the contract types)
     and quarantined rows (raw values plus ``rejection_reasons``) side by side.
A Parquet input that already has exactly the contract's schema is first only checked; when no
row breaks a rule, the valid output is a byte copy of the input (no re-encoding).
Outputs go to temporary names and are moved into place only when every table has passed, so a
TableError or an interruption never leaves a table that looks validated.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import polars as pl

from core.files import atomic_path, write_text_atomic
from core.progress import ProgressFn
from data_contracts.cast import Typed, plan_casts
from data_contracts.contract import Contract, load_contracts
from data_contracts.corrections import NAME as CORRECTIONS
from data_contracts.corrections import Corrections, read_corrections
from data_contracts.errors import TableError
from data_contracts.read import RawTable, find_table, read_guard, read_schema
from data_contracts.rules import (
    REASONS,
    ROW,
    TYPED,
    Rule,
    any_broken,
    column_rules,
    count_by_rule,
    reasons_column,
    table_rules,
    typed_stages,
)

SUMMARY_FILE = "validation_summary.json"
REJECTED = "__rejected__"
QUARANTINE_DIR = "quarantine"
PARQUET_OPTIONS = dict(compression="zstd", compression_level=1)
"""zstd level 1: close to level 3 in size, markedly faster to write."""


@dataclass(frozen=True)
class TablePlan:
    """A raw table's schema matched to its contract: how each column is cast and which are extra."""

    contract: Contract
    schema: pl.Schema
    casts: dict[str, Typed]

    @classmethod
    def build(cls, contract: Contract, schema: pl.Schema, file: Path | str) -> TablePlan:
        """Raise TableError for a missing column or a column no cell of which could be cast."""
        return cls(contract, schema, plan_casts(contract.fields, schema, file))

    @property
    def ignored_columns(self) -> list[str]:
        """Input columns the contract does not know: kept in quarantine, left out of valid output."""
        return [c for c in self.schema.names() if c not in self.casts]

    def rules(self, references: Mapping[str, pl.Series], duplicate_rows: pl.Series | None) -> list[Rule]:
        rules = [r for t in self.casts.values() for r in column_rules(t, self.contract, references)]
        return rules + table_rules(self.contract, duplicate_rows)

    def flagged(self, raw: pl.LazyFrame, rules: list[Rule]) -> pl.LazyFrame:
        """Raw columns plus row number, the typed value of every contract column and a rejected flag."""
        return _with_typed(raw.with_row_index(ROW), self.casts).with_columns(any_broken(rules).alias(REJECTED))

    def valid_columns(self) -> list[pl.Expr]:
        """Contract columns in contract order and dtype; the cast cannot fail for rows that broke no rule."""
        return [pl.col(TYPED + c.name).cast(c.dtype).alias(c.name) for c in self.contract.fields]

    def duplicate_rows(self, raw: pl.LazyFrame) -> pl.Series | None:
        """Row numbers of every non-first occurrence of a (non-null) primary key; None without a key.

        Reads the typed key columns only. An integer key is held as one array (8 bytes a row):
        only rows not above the running maximum of the rows before them can repeat a key, and
        generated ids are nearly always increasing, so the hash check runs on those few rows
        and the rows sharing their values.
        """
        key = self.contract.primary_key
        if not key:
            return None
        keys = _with_typed(raw.select(key), {k: self.casts[k] for k in key})
        keys = keys.select(pl.col(TYPED + k).alias(k) for k in key).collect()
        if len(key) == 1 and keys.schema[key[0]].is_integer():
            values = keys.to_series()
            del keys
            if values.null_count() == 0:  # NumPy on the column's own buffer: 9-17 bytes a row at the peak
                a = values.to_numpy()
                if bool(np.all(a[1:] > a[:-1])):
                    return pl.Series(ROW, [], dtype=pl.get_index_type())  # strictly increasing
                candidate = pl.Series(np.concatenate([[False], a[1:] <= np.maximum.accumulate(a)[:-1]]))
            else:
                candidate = values <= values.cum_max().forward_fill().shift(1)
            rows = values.is_in(values.filter(candidate).unique().implode()).arg_true().alias(ROW)
            values = values.gather(rows)
            return rows.filter(values.is_not_null() & ~values.is_first_distinct())
        first = pl.col(key[0]).is_first_distinct() if len(key) == 1 else pl.struct(key).is_first_distinct()
        keys = keys.with_row_index(ROW)
        return keys.filter(pl.all_horizontal(pl.col(k).is_not_null() for k in key) & ~first).get_column(ROW)


def _with_typed(frame: pl.LazyFrame, casts: Mapping[str, Typed]) -> pl.LazyFrame:
    for stage in typed_stages(casts):
        frame = frame.with_columns(stage)
    return frame


def _references(contract: Contract, valid_merchant_ids: Iterable[str] | pl.Series | None) -> dict[str, pl.Series]:
    refs = {}
    for column, rel in contract.foreign_keys.items():
        if valid_merchant_ids is None:
            raise ValueError(
                f"{contract.name}.{column} references {rel.to}: pass its valid values (valid_merchant_ids)"
            )
        refs[rel.to] = pl.Series(rel.column, valid_merchant_ids, dtype=pl.String)
    return refs


def validate_table(
    data: pl.DataFrame | pl.LazyFrame,
    contract: Contract,
    valid_merchant_ids: Iterable[str] | pl.Series | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame, dict]:
    """Split one in-memory table into (valid, rejected, counts).

    valid: contract columns cast to contract types. rejected: every input column with its raw
    value, plus ``rejection_reasons`` (every rule the row broke). counts: rows_in, valid,
    rejected, rejected_by_rule. `valid_merchant_ids` is needed when the contract has a foreign
    key. Raises TableError for a missing or uncastable column.
    """
    raw = data.lazy()
    plan = TablePlan.build(contract, raw.collect_schema(), f"<{contract.name} frame>")
    rules = plan.rules(_references(contract, valid_merchant_ids), plan.duplicate_rows(raw))
    typed = plan.flagged(raw, rules).collect()
    valid = typed.filter(~pl.col(REJECTED)).select(plan.valid_columns())
    rejected = typed.filter(pl.col(REJECTED)).select(*plan.schema.names(), reasons_column(rules))
    counts = {
        "rows_in": typed.height,
        "valid": valid.height,
        "rejected": rejected.height,
        "rejected_by_rule": count_by_rule(rejected.lazy(), rules),
    }
    return valid, rejected, counts


def _validate_file(
    table: RawTable,
    plan: TablePlan,
    references: Mapping[str, pl.Series],
    valid_tmp: Path,
    quarantine_tmp: Path,
    corrections: Corrections | None = None,
) -> dict:
    """Validate one raw file (with the steward's corrections applied) into two temporary Parquet files.

    Returns its summary entry.
    """
    started = time.perf_counter()
    rows_in = table.count_rows()
    raw = table.scan()
    corrected = corrections is not None and corrections.for_table(plan.contract.name)
    extra: list[Rule] = []
    if corrected:
        counts = read_guard(table, lambda: corrections.counts(raw, plan.contract))
        raw, extra = corrections.apply(raw, plan.contract)
    rules = plan.rules(references, read_guard(table, lambda: plan.duplicate_rows(raw))) + extra
    conforming = (
        table.format == "parquet"
        and table.path.is_file()
        and plan.schema == plan.contract.polars_schema()
        and not corrected
    )
    if conforming and read_guard(table, lambda: _count_rejected(plan.flagged(raw, rules))) == 0:
        shutil.copyfile(table.path, valid_tmp)  # already exactly valid output: no need to re-encode it
        pl.DataFrame(schema={**plan.schema, REASONS: pl.List(pl.String)}).write_parquet(quarantine_tmp)
        output = "copied"
    else:
        flagged = plan.flagged(raw, rules).cache()  # one evaluation feeds both outputs
        valid = flagged.filter(~pl.col(REJECTED)).select(plan.valid_columns())
        quarantine = flagged.filter(pl.col(REJECTED)).select(*plan.schema.names(), reasons_column(rules))
        sinks = [
            valid.sink_parquet(valid_tmp, lazy=True, **PARQUET_OPTIONS),
            quarantine.sink_parquet(quarantine_tmp, lazy=True, **PARQUET_OPTIONS),
        ]
        read_guard(table, lambda: pl.collect_all(sinks, engine="streaming"))
        output = "rewritten"
    valid_rows = pl.scan_parquet(valid_tmp).select(pl.len()).collect().item()
    rejected_rows = pl.scan_parquet(quarantine_tmp).select(pl.len()).collect().item()
    if valid_rows + rejected_rows != rows_in:  # the promise: nothing dropped silently
        raise RuntimeError(f"{table.path}: {rows_in} rows in but {valid_rows} valid + {rejected_rows} rejected")
    return {
        "rows_in": rows_in,
        "valid": valid_rows,
        "rejected": rejected_rows,
        "rejected_by_rule": count_by_rule(pl.scan_parquet(quarantine_tmp), rules),
        "file": str(table.path),
        "input": table.fingerprint(),
        "contract_version": plan.contract.version,
        "ignored_columns": plan.ignored_columns,
        "valid_output": output,
        "corrections": counts if corrected else None,
        "seconds": round(time.perf_counter() - started, 3),
    }


def _count_rejected(flagged: pl.LazyFrame) -> int:
    return flagged.filter(pl.col(REJECTED)).select(pl.len()).collect(engine="streaming").item()


def validate_dir(raw: Path, out: Path, progress: ProgressFn | None = None, corrections: Path | None = None) -> dict:
    """Validate every raw table in `raw`; write valid rows, quarantine and the summary under `out`.

    ``corrections``: a folder of the data steward's corrections (``data_contracts.corrections``),
    applied to the tables as they are validated; the valid ones are written to ``out/corrections.parquet``,
    the rejected ones to the quarantine.

    All files are located and all schemas checked before anything is written, so a TableError
    (missing file or column, uncastable type, wrong encoding) leaves `out` untouched. Returns
    the summary, also written to ``out/validation_summary.json`` last, as the completion mark.
    """
    raw, out = Path(raw), Path(out)
    started = datetime.now().astimezone()
    if out.resolve() == raw.resolve():
        raise TableError(
            out,
            None,
            "an output folder other than the raw folder",
            "the raw folder itself",
            "pass another --out (raw tables are never rewritten)",
        )
    contracts = load_contracts()
    steward = read_corrections(corrections, contracts)
    tables = {name: find_table(raw, name) for name in contracts}
    plans = {name: TablePlan.build(contracts[name], read_schema(t), t.path) for name, t in tables.items()}
    known = {t.path.name for t in tables.values()}
    ignored_files = sorted(p.name for p in raw.iterdir() if p.name not in known and not p.name.startswith("."))

    progress = progress or (lambda done, total: None)
    progress(0, len(tables))
    created = [d for d in (out, out / QUARANTINE_DIR) if not d.exists()]
    (out / QUARANTINE_DIR).mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex[:8]
    moves: list[tuple[Path, Path]] = []
    references: dict[str, pl.Series] = {}
    needed = {rel.to for c in contracts.values() for rel in c.foreign_keys.values()}
    entries = {}
    try:
        for done, (name, table) in enumerate(tables.items(), start=1):
            valid_path, quarantine_path = out / f"{name}.parquet", out / QUARANTINE_DIR / f"{name}.parquet"
            valid_tmp, quarantine_tmp = (p.with_name(f".{p.name}.{token}.tmp") for p in (valid_path, quarantine_path))
            moves += [(valid_tmp, valid_path), (quarantine_tmp, quarantine_path)]
            entries[name] = _validate_file(table, plans[name], references, valid_tmp, quarantine_tmp, steward)
            for ref in needed:
                ref_table, ref_column = ref.split(".")
                if ref_table == name:
                    references[ref] = pl.read_parquet(valid_tmp, columns=[ref_column]).to_series()
            progress(done, len(tables))
    except BaseException:
        for tmp, _ in moves:
            tmp.unlink(missing_ok=True)
        for d in reversed(created):
            if d.exists() and not any(d.iterdir()):
                d.rmdir()
        raise

    summary_path = out / SUMMARY_FILE
    summary_path.unlink(missing_ok=True)  # no summary while tables are being swapped in
    for tmp, final in moves:
        os.replace(tmp, final)
    if steward.valid is not None:  # what was applied, beside the tables it corrected
        with atomic_path(out / f"{CORRECTIONS}.parquet") as tmp:
            steward.valid.write_parquet(tmp)
        with atomic_path(out / QUARANTINE_DIR / f"{CORRECTIONS}.parquet") as tmp:
            steward.rejected.write_parquet(tmp)
    summary = {
        "raw_dir": str(raw),
        "out_dir": str(out),
        "started_at": started.isoformat(timespec="seconds"),
        "finished_at": datetime.now().astimezone().isoformat(timespec="seconds"),
        "tables": entries,
        "ignored_files": ignored_files,
        "corrections": None
        if steward.valid is None
        else {"folder": str(corrections), "applied": steward.valid.height, "rejected": steward.rejected.height},
    }
    write_text_atomic(summary_path, json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    return summary
