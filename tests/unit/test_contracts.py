"""Raw-table contracts: all six load, are fully documented, and a malformed contract fails at load."""

from __future__ import annotations

import copy

import polars as pl
import pytest
import yaml
from pydantic import ValidationError

from data_contracts import TABLES, load_contract, load_contracts
from data_contracts.contract import CONTRACTS_DIR, Contract, parse_physical_type


def test_all_six_load_in_validation_order():
    contracts = load_contracts()
    assert list(contracts) == list(TABLES)
    assert next(iter(contracts)) == "merchants"
    for name, contract in contracts.items():
        assert contract.name == name and contract.version.count(".") == 2


@pytest.mark.parametrize("name", TABLES)
def test_every_field_is_documented_typed_and_classified(name):
    contract = load_contract(name)
    for field in contract.fields:
        assert field.description.strip(), field.name
        assert field.description_zh and any("\u4e00" <= ch <= "\u9fff" for ch in field.description_zh), field.name
        assert field.classification in ("none", "pseudonymised"), field.name
        assert isinstance(field.dtype, pl.DataType) and field.logical_type, field.name


@pytest.mark.parametrize("name", TABLES)
def test_money_is_integer_fen(name):
    money = [f for f in load_contract(name).fields if f.name.endswith("_fen")]
    for field in money:
        assert field.unit == "fen", field.name
        assert field.logical_type == "integer" and field.dtype == pl.Int64, field.name
    if name in ("transactions", "loans"):
        assert money


@pytest.mark.parametrize("name", TABLES)
def test_timestamps_carry_a_zone_and_keys_and_event_time_are_declared(name):
    contract = load_contract(name)
    assert contract.primary_key and contract.event_time in contract.columns
    for field in contract.fields:
        if field.logical_type == "timestamp":
            assert field.dtype == pl.Datetime("us", "Asia/Shanghai")
            assert field.logical_type_options.timezone == "required"
    assert all(rel.to == "merchants.merchant_id" for rel in contract.foreign_keys.values())
    assert bool(contract.foreign_keys) == (name != "merchants")


def test_people_appear_only_as_pseudonymised_hashes():
    pseudonymised = {
        (n, f.name) for n in TABLES for f in load_contract(n).fields if f.classification == "pseudonymised"
    }
    assert pseudonymised == {("merchants", "owner_hash"), ("transactions", "customer_hash")}


def test_polars_schema_follows_the_contract():
    schema = load_contract("complaints").polars_schema()
    assert schema.names()[:3] == ["complaint_id", "merchant_id", "received_at"]
    assert schema["severity"] == pl.Int8 and schema["resolved_at"] == pl.Datetime("us", "Asia/Shanghai")
    assert load_contract("loan_performance").primary_key == ["loan_id", "reported_on"]


def test_physical_types_parse():
    assert parse_physical_type("Int16") == pl.Int16
    assert parse_physical_type("Datetime(ms, UTC)") == pl.Datetime("ms", "UTC")
    with pytest.raises(ValueError, match="unknown physicalType"):
        parse_physical_type("Int128")


def _raw(name: str) -> dict:
    return yaml.safe_load((CONTRACTS_DIR / f"{name}.yaml").read_text(encoding="utf-8"))


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d["schema"][0]["properties"][0].update(requird=True), "requird"),
        (lambda d: d["schema"][0]["properties"][0].update(physicalType="Int128"), "physicalType"),
        (
            lambda d: d["schema"][0]["properties"][2]["logicalTypeOptions"].update(minimum="2000-01-01T00:00:00"),
            "offset",
        ),
        (lambda d: d["schema"][0]["properties"][2].update(physicalType="Datetime(us)"), "physicalType"),
        (
            lambda d: d["schema"][0]["properties"][4].update(
                quality=[{"type": "custom", "engine": "lifecredit", "name": "nope"}]
            ),
            "unknown custom rule",
        ),
        (lambda d: d["schema"][0]["properties"][4]["logicalTypeOptions"].update(minimum=1.5), "integer"),
        (lambda d: d["schema"][0]["customProperties"][0].update(value=["merchant_id"]), "primaryKey"),
        (lambda d: d["schema"][0]["customProperties"][1].update(value="no_such_column"), "eventTime"),
        (lambda d: d["schema"][0]["properties"][1].update(unique=True), "unique"),
    ],
)
def test_malformed_contract_fails_at_load(mutate, message):
    data = _raw("transactions")
    Contract.model_validate(copy.deepcopy(data))  # the original is fine
    mutate(data)
    with pytest.raises(ValidationError, match=message):
        Contract.model_validate(data)


def test_table_level_rule_must_compare_known_columns():
    data = _raw("complaints")
    data["schema"][0]["quality"][0]["implementation"] = "resolved_at >= opened_at"
    with pytest.raises(ValidationError, match="opened_at"):
        Contract.model_validate(data)
