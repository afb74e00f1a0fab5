"""Row rules generated from a contract as vectorised Polars expressions.

A rule is named ``<column>:<kind>`` (table-level rules by their own name, e.g.
``resolved_after_received``; a composite primary key by its columns joined with ``+``).
Each rule is a boolean expression that is true where a row breaks it. Rules look at the raw
column (``pl.col(name)``: nullness) and at its typed value (``pl.col(TYPED + name)``). A cell
that cannot be read as its type at all breaks ``type`` only, since its value rules cannot be
judged; a number too large for a narrow dtype (300 for Int8) breaks ``type`` and ``range``.

Rows are split with one OR across the rules; the list of broken rule names is built only
for the rejected rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import polars as pl

from data_contracts import uscc
from data_contracts.cast import Typed
from data_contracts.contract import Column, Contract

TYPED = "__typed__"
NAIVE = "__naive"
ROW = "__row__"
REASONS = "rejection_reasons"

KINDS = (
    "type",
    "timezone",
    "required",
    "range",
    "length",
    "pattern",
    "allowed_values",
    "credit_code_check",
    "foreign_key",
    "primary_key_unique",
)
"""Column rule kinds, in the order they are listed for a row."""

_CUSTOM = {"credit_code_check": uscc.valid_expr}

_OPS = {
    ">=": pl.Expr.__ge__,
    "<=": pl.Expr.__le__,
    ">": pl.Expr.__gt__,
    "<": pl.Expr.__lt__,
    "==": pl.Expr.__eq__,
    "!=": pl.Expr.__ne__,
}


@dataclass(frozen=True)
class Rule:
    """One named rule; `broken` is true (never null) where a row breaks it.

    A deferred rule can only break where another rule of the row already breaks, so it is
    left out of the valid/rejected split and evaluated on rejected rows only.
    """

    name: str
    broken: pl.Expr
    deferred: bool = False


def key_rule_name(contract: Contract) -> str:
    """``txn_id:primary_key_unique``, or ``loan_id+reported_on:primary_key_unique`` for a composite key."""
    return "+".join(contract.primary_key) + ":primary_key_unique"


def rule_names(contract: Contract) -> list[str]:
    """Every rule the contract defines, as named in quarantine (type/timezone as for a CSV input)."""
    names = []
    for col in contract.fields:
        kinds = _column_kinds(col, contract)
        names += [f"{col.name}:{k}" for k in KINDS if k in kinds and k != "primary_key_unique"]
    if contract.primary_key:
        names.append(key_rule_name(contract))
    names += [c.name for c in contract.comparisons]
    return names


def _column_kinds(col: Column, contract: Contract) -> set[str]:
    opts = col.logical_type_options
    kinds = set(col.custom_rules)
    kinds |= {"type"} if col.dtype != pl.String else set()
    kinds |= {"timezone"} if opts.timezone == "required" else set()
    kinds |= {"required"} if col.required else set()
    kinds |= {"range"} if opts.minimum is not None or opts.maximum is not None else set()
    kinds |= {"length"} if opts.min_length is not None or opts.max_length is not None else set()
    kinds |= {"pattern"} if opts.pattern else set()
    kinds |= {"allowed_values"} if col.valid_values else set()
    kinds |= {"foreign_key"} if col.name in contract.foreign_keys else set()
    return kinds


def _type_broken(t: Typed) -> pl.Expr | None:
    raw, value = pl.col(t.column.name), pl.col(TYPED + t.column.name)
    if t.naive is not None:  # a timestamp string: no offset is a timezone break, not a type break
        return raw.is_not_null() & value.is_null() & ~pl.col(TYPED + t.column.name + NAIVE)
    broken = []
    if t.can_fail:
        broken.append(raw.is_not_null() & value.is_null())
    if t.narrows:
        broken.append(value.is_not_null() & value.cast(t.column.dtype, strict=False).is_null())
    return pl.any_horizontal(broken) if broken else None


def column_rules(t: Typed, contract: Contract, references: Mapping[str, pl.Series]) -> list[Rule]:
    """The row rules of one column given how its raw dtype is cast (a Datetime column cannot break `timezone`)."""
    col = t.column
    raw, value = pl.col(col.name), pl.col(TYPED + col.name)
    opts = col.logical_type_options
    rules: dict[str, pl.Expr] = {}
    if (broken := _type_broken(t)) is not None:
        rules["type"] = broken
    if t.naive is not None:
        rules["timezone"] = pl.col(TYPED + col.name + NAIVE)
    if col.required:
        rules["required"] = raw.is_null()
    low, high = col.bounds
    if low is not None or high is not None:
        rules["range"] = _outside(value, low, high, col)
    if opts.min_length is not None or opts.max_length is not None:
        rules["length"] = _outside(value.str.len_chars(), opts.min_length, opts.max_length, col)
    if opts.pattern:
        rules["pattern"] = ~value.str.contains(opts.pattern)
    if col.valid_values:
        rules["allowed_values"] = ~_is_in(value, col.valid_values, col.dtype)
    for name in col.custom_rules:
        rules[name] = ~_CUSTOM[name](TYPED + col.name)
    deferred = set()
    if (rel := contract.foreign_keys.get(col.name)) is not None:
        targets = references[rel.to].cast(col.dtype)
        rules["foreign_key"] = ~value.is_in(targets.implode())
        if opts.pattern and targets.str.contains(opts.pattern).all():
            deferred.add("pattern")  # every allowed value matches, so a mismatch already breaks foreign_key
    return [
        Rule(f"{col.name}:{kind}", rules[kind].fill_null(False), deferred=kind in deferred)
        for kind in KINDS
        if kind in rules
    ]


def _is_in(value: pl.Expr, allowed: list, dtype: pl.DataType) -> pl.Expr:
    """Membership in a short list as equalities (cheaper than hashing every string), else is_in."""
    if len(allowed) <= 8:
        return pl.any_horizontal([value == pl.lit(v, dtype=dtype) for v in allowed])
    return value.is_in(pl.Series(allowed, dtype=dtype).implode())


def _outside(value: pl.Expr, low, high, col: Column) -> pl.Expr:
    if isinstance(col.dtype, pl.Datetime):  # compare instants, whatever offset the bound was written with
        value = value.dt.epoch("us")
        low = None if low is None else int(low.timestamp() * 1_000_000)
        high = None if high is None else int(high.timestamp() * 1_000_000)
    broken = pl.lit(False)
    if low is not None:
        broken = broken | (value < low)
    if high is not None:
        broken = broken | (value > high)
    return broken


def table_rules(contract: Contract, duplicate_rows: pl.Series | None) -> list[Rule]:
    """Rules across columns: later occurrences of a primary key, and column comparisons."""
    rules = []
    if contract.primary_key:
        rows = duplicate_rows if duplicate_rows is not None else pl.Series([], dtype=pl.get_index_type())
        rules.append(Rule(key_rule_name(contract), pl.col(ROW).is_in(rows.implode())))
    for c in contract.comparisons:
        left, right = pl.col(TYPED + c.left), pl.col(TYPED + c.right)
        rules.append(Rule(c.name, (~_OPS[c.op](left, right)).fill_null(False)))
    return rules


def typed_stages(casts: Mapping[str, Typed]) -> list[list[pl.Expr]]:
    """with_columns stages adding the typed value (and naive-timestamp flag) of every contract column."""
    depth = max((len(t.stages) for t in casts.values()), default=0)
    stages: list[list[pl.Expr]] = [[] for _ in range(depth)]
    final = []
    for name, t in casts.items():
        for i, stage in enumerate(t.stages):
            stages[i] += stage
        final.append(t.wide.alias(TYPED + name))
        if t.naive is not None:
            final.append(t.naive.alias(TYPED + name + NAIVE))
    return [*stages, final]


def any_broken(rules: list[Rule]) -> pl.Expr:
    """True where the row breaks at least one rule: one OR per row, so valid rows cost no more than that."""
    split = [r.broken for r in rules if not r.deferred]
    return pl.any_horizontal(split) if split else pl.lit(False)


def reasons_column(rules: list[Rule]) -> pl.Expr:
    """``rejection_reasons``: the names of every rule the row breaks (meant for rejected rows only)."""
    if not rules:
        return pl.lit([], dtype=pl.List(pl.String)).alias(REASONS)
    return pl.concat_list([pl.when(r.broken).then(pl.lit(r.name)) for r in rules]).list.drop_nulls().alias(REASONS)


def count_by_rule(quarantine: pl.LazyFrame, rules: list[Rule]) -> dict[str, int]:
    """Rejected rows per rule, in rule order (a row breaking two rules counts under both; unbroken rules left out)."""
    counts = dict(
        quarantine.select(pl.col(REASONS).explode().drop_nulls()).group_by(REASONS).len().collect().iter_rows()
    )
    return {r.name: counts[r.name] for r in rules if r.name in counts}
