"""Typed models of the raw-table contracts (ODCS v3 YAML) and the loaders that read them.

Only the parts of ODCS that lifecredit uses are modelled, and unknown keys are refused, so a
typo in a contract (``requird: true``) fails at load instead of silently dropping a rule.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import Any, Literal

import polars as pl
import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

CONTRACTS_DIR = Path(__file__).parent / "contracts"

TABLES = ("merchants", "transactions", "complaints", "loans", "loan_performance", "public_records")
"""The raw tables, in validation order: a table comes after every table its foreign keys name."""

CUSTOM_COLUMN_RULES = frozenset({"credit_code_check"})
"""Column-level custom quality rules (engine ``lifecredit``) the validator knows how to run."""

_SIMPLE_TYPES: dict[str, pl.DataType] = {
    "String": pl.String(),
    "Int64": pl.Int64(),
    "Int32": pl.Int32(),
    "Int16": pl.Int16(),
    "Int8": pl.Int8(),
    "Float64": pl.Float64(),
    "Date": pl.Date(),
}
_DATETIME = re.compile(r"^Datetime\((ms|us|ns),\s*([A-Za-z_]+(?:/[A-Za-z_]+)*)\)$")
_COMPARISON = re.compile(r"^\s*(\w+)\s*(>=|<=|>|<|==|!=)\s*(\w+)\s*$")


def parse_physical_type(text: str) -> pl.DataType:
    """Polars dtype for a contract ``physicalType`` such as ``Int64`` or ``Datetime(us, Asia/Shanghai)``."""
    if text in _SIMPLE_TYPES:
        return _SIMPLE_TYPES[text]
    if m := _DATETIME.match(text):
        return pl.Datetime(time_unit=m.group(1), time_zone=m.group(2))  # type: ignore[arg-type]
    raise ValueError(f"unknown physicalType {text!r}; known: {', '.join(_SIMPLE_TYPES)}, Datetime(unit, Zone)")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True, frozen=True)


class CustomProperty(_Model):
    property: str
    value: Any


class Relationship(_Model):
    type: Literal["foreignKey"]
    to: str = Field(pattern=r"^\w+\.\w+$", description="<table>.<column> the values must exist in.")

    @property
    def table(self) -> str:
        return self.to.split(".")[0]

    @property
    def column(self) -> str:
        return self.to.split(".")[1]


class Quality(_Model):
    """Either a library rule (``rule: validValues``) or a lifecredit custom check (``type: custom``)."""

    rule: Literal["validValues"] | None = None
    valid_values: list[Any] | None = None
    type: Literal["custom"] | None = None
    engine: Literal["lifecredit"] | None = None
    name: str | None = None
    implementation: str | None = None
    description: str | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Quality:
        if self.rule == "validValues":
            if not self.valid_values or self.type is not None:
                raise ValueError("rule validValues needs a non-empty validValues list and no type")
        elif self.type == "custom":
            if not self.name or self.engine != "lifecredit":
                raise ValueError("a custom quality rule needs engine lifecredit and a name")
        else:
            raise ValueError("a quality entry is either `rule: validValues` or `type: custom`")
        return self


class TypeOptions(_Model):
    """ODCS logicalTypeOptions used here; bounds are inclusive and typed like the column."""

    pattern: str | None = None
    minimum: int | float | str | None = None
    maximum: int | float | str | None = None
    min_length: int | None = Field(None, ge=0)
    max_length: int | None = Field(None, ge=0)
    timezone: Literal["required"] | None = None


def _props(items: list[CustomProperty]) -> dict[str, Any]:
    return {p.property: p.value for p in items}


class Column(_Model):
    """One column of a raw table."""

    name: str
    logical_type: Literal["string", "integer", "number", "date", "timestamp", "boolean"]
    physical_type: str
    required: bool = False
    unique: bool = False
    primary_key: bool = False
    primary_key_position: int | None = None
    classification: Literal["none", "pseudonymised"]
    description: str = Field(min_length=1)
    logical_type_options: TypeOptions = TypeOptions()
    quality: list[Quality] = []
    relationships: list[Relationship] = []
    custom_properties: list[CustomProperty] = []

    @model_validator(mode="after")
    def _consistent(self) -> Column:
        dtype = parse_physical_type(self.physical_type)  # raises on an unknown type
        opts = self.logical_type_options
        if opts.timezone == "required" and not (isinstance(dtype, pl.Datetime) and dtype.time_zone):
            raise ValueError(f"{self.name}: timezone required but physicalType {self.physical_type} has no zone")
        if opts.pattern is not None:
            re.compile(opts.pattern)
        for bound in (opts.minimum, opts.maximum):
            if bound is not None:
                _typed_bound(bound, dtype, self.name)
        for q in self.quality:
            if q.type == "custom" and q.name not in CUSTOM_COLUMN_RULES:
                raise ValueError(f"{self.name}: unknown custom rule {q.name!r}; known: {sorted(CUSTOM_COLUMN_RULES)}")
        return self

    @property
    def dtype(self) -> pl.DataType:
        """The Polars dtype valid output is cast to."""
        return parse_physical_type(self.physical_type)

    @property
    def properties(self) -> dict[str, Any]:
        """customProperties as a plain mapping (descriptionZh, unit, ...)."""
        return _props(self.custom_properties)

    @property
    def description_zh(self) -> str | None:
        return self.properties.get("descriptionZh")

    @property
    def unit(self) -> str | None:
        return self.properties.get("unit")

    @property
    def valid_values(self) -> list[Any] | None:
        for q in self.quality:
            if q.rule == "validValues":
                return q.valid_values
        return None

    @property
    def custom_rules(self) -> list[str]:
        return [q.name for q in self.quality if q.type == "custom" and q.name]

    @property
    def bounds(self) -> tuple[Any, Any]:
        """(minimum, maximum) converted to the column's type (dates, aware datetimes), None if open."""
        opts = self.logical_type_options
        return tuple(
            None if b is None else _typed_bound(b, self.dtype, self.name) for b in (opts.minimum, opts.maximum)
        )  # type: ignore[return-value]


def _typed_bound(bound: Any, dtype: pl.DataType, column: str) -> Any:
    if isinstance(dtype, pl.Datetime):
        value = datetime.fromisoformat(str(bound))
        if value.tzinfo is None:
            raise ValueError(f"{column}: timestamp bound {bound!r} needs a UTC offset")
        return value
    if isinstance(dtype, pl.Date):
        return date.fromisoformat(str(bound))
    if dtype.is_integer():
        if not isinstance(bound, int) or isinstance(bound, bool):
            raise ValueError(f"{column}: bound {bound!r} of an integer column must be an integer")
        return bound
    if dtype.is_float():
        return float(bound)
    raise ValueError(f"{column}: minimum/maximum do not apply to {dtype}")


@dataclass(frozen=True)
class Comparison:
    """A table-level rule ``left op right`` between two columns; rows with a null side pass."""

    name: str
    left: str
    op: str
    right: str


class Table(_Model):
    """The one schema object of a raw-table contract."""

    name: str
    physical_name: str
    physical_type: Literal["table"]
    description: str
    custom_properties: list[CustomProperty] = []
    quality: list[Quality] = []
    properties: list[Column] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> Table:
        names = [f.name for f in self.properties]
        if len(set(names)) != len(names):
            raise ValueError(f"{self.name}: duplicate column names")
        flagged = sorted((f for f in self.properties if f.primary_key), key=lambda f: f.primary_key_position or 0)
        declared = _props(self.custom_properties).get("primaryKey")
        if declared is not None and declared != [f.name for f in flagged]:
            raise ValueError(
                f"{self.name}: customProperties primaryKey {declared} != columns flagged primaryKey {[f.name for f in flagged]}"
            )
        event_time = _props(self.custom_properties).get("eventTime")
        if event_time is not None and event_time not in names:
            raise ValueError(f"{self.name}: eventTime {event_time!r} is not a column")
        for f in self.properties:
            if f.unique and not (f.primary_key and len(flagged) == 1):
                raise ValueError(f"{self.name}.{f.name}: `unique` is only checked as a one-column primary key")
        for q in self.quality:
            if q.type != "custom" or not q.implementation or not (m := _COMPARISON.match(q.implementation)):
                raise ValueError(f"{self.name}: table-level rules must be custom `<column> <op> <column>` comparisons")
            missing = {m.group(1), m.group(3)} - set(names)
            if missing:
                raise ValueError(f"{self.name}: rule {q.name} names unknown column(s) {sorted(missing)}")
        return self


class Description(_Model):
    purpose: str
    usage: str | None = None
    limitations: str | None = None


class Contract(_Model):
    """A raw-table data contract: one table, its columns, keys and rules."""

    api_version: str
    kind: Literal["DataContract"]
    id: str
    name: str
    version: str = Field(pattern=r"^\d+\.\d+\.\d+$")
    status: str
    domain: str | None = None
    description: Description
    schema_: list[Table] = Field(alias="schema", min_length=1, max_length=1)

    @property
    def table(self) -> Table:
        return self.schema_[0]

    @property
    def fields(self) -> list[Column]:
        return self.table.properties

    @property
    def columns(self) -> list[str]:
        return [f.name for f in self.fields]

    def field(self, name: str) -> Column:
        return next(f for f in self.fields if f.name == name)

    @property
    def primary_key(self) -> list[str]:
        """Key columns in key order (empty when the table has no key)."""
        flagged = [f for f in self.fields if f.primary_key]
        return [f.name for f in sorted(flagged, key=lambda f: f.primary_key_position or 0)]

    @property
    def event_time(self) -> str | None:
        return _props(self.table.custom_properties).get("eventTime")

    @property
    def foreign_keys(self) -> dict[str, Relationship]:
        """column -> the relationship it must satisfy."""
        return {f.name: r for f in self.fields for r in f.relationships if r.type == "foreignKey"}

    @property
    def comparisons(self) -> list[Comparison]:
        """Table-level column comparisons such as ``resolved_at >= received_at``."""
        out = []
        for q in self.table.quality:
            m = _COMPARISON.match(q.implementation or "")
            assert m and q.name  # checked by Table._consistent
            out.append(Comparison(name=q.name, left=m.group(1), op=m.group(2), right=m.group(3)))
        return out

    def polars_schema(self) -> pl.Schema:
        """Column names and dtypes of valid output, in contract order."""
        return pl.Schema({f.name: f.dtype for f in self.fields})


@cache
def load_contract(name: str) -> Contract:
    """Load and check the contract of one raw table (``merchants``, ``transactions``, ...)."""
    path = CONTRACTS_DIR / f"{name}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"no contract {name!r} in {CONTRACTS_DIR}; known: {', '.join(TABLES)}")
    contract = Contract.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    if contract.name != name:
        raise ValueError(f"{path}: contract name {contract.name!r} differs from its file name")
    return contract


def load_contracts() -> dict[str, Contract]:
    """All raw-table contracts in validation order: merchants first, since foreign keys need its valid ids."""
    contracts = {name: load_contract(name) for name in TABLES}
    seen: set[str] = set()
    for name, contract in contracts.items():
        for column, rel in contract.foreign_keys.items():
            if rel.table not in seen or rel.column not in contracts[rel.table].columns:
                raise ValueError(f"{name}.{column} references {rel.to}, which is not validated before it")
        seen.add(name)
    return contracts
