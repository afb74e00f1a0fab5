"""Every contract rule: a row that breaks it lands in quarantine under that rule's name.

The rule list comes from the contracts themselves (``rule_names``), so a rule added to a
contract without a way to break it here fails this test.
"""

from __future__ import annotations

from datetime import date, datetime

import pytest

from data_contracts import REASONS, TABLES, load_contract, rule_names, validate_table
from data_contracts.contract import Column
from sample_rows import MERCHANT_ID, SAMPLE_ROWS, sample_frame

VALID_IDS = [MERCHANT_ID, "M00000002"]


def _out_of_range(col: Column) -> str:
    low, high = col.bounds
    if isinstance(low, datetime):
        return "1999-12-31T23:59:59+08:00"
    if isinstance(low, date):
        return "1979-12-31" if low.year == 1980 else "1999-12-31"
    if isinstance(low, float) or isinstance(high, float):
        return str(high + 0.01)
    return str(low - 1) if low is not None else str(high + 1)


def _breaking_rows(table: str, rule: str) -> list[dict]:
    """Rows (overrides of the sample row) whose last row breaks `rule`."""
    if rule.endswith(":primary_key_unique"):
        return [{}, {}]
    if rule == "resolved_after_received":
        return [{"received_at": "2024-03-05T12:00:00+08:00", "resolved_at": "2024-03-05T11:59:59+08:00"}]
    if rule == "removed_after_published":
        return [{"published_on": "2024-03-05", "removed_on": "2024-03-04"}]
    column, kind = rule.split(":")
    col = load_contract(table).field(column)
    opts = col.logical_type_options
    value = {
        "type": "not-a-value",
        "timezone": "2024-03-05T12:34:56",
        "required": None,
        "pattern": "bad value!",
        "allowed_values": "not_in_the_list",
        "foreign_key": "M99999999",
        "credit_code_check": SAMPLE_ROWS["merchants"]["credit_code"][:17] + "0",
    }.get(kind)
    if kind == "range":
        value = _out_of_range(col)
    if kind == "length":
        value = "x" * ((opts.max_length or 0) + 1)
    if kind == "credit_code_check" and value == SAMPLE_ROWS["merchants"]["credit_code"]:
        value = value[:17] + "1"
    return [{column: value}]


CASES = [(table, rule) for table in TABLES for rule in rule_names(load_contract(table))]


@pytest.mark.parametrize("table", TABLES)
def test_sample_row_is_valid(table):
    valid, rejected, counts = validate_table(sample_frame(table), load_contract(table), VALID_IDS)
    assert rejected.height == 0, rejected.to_dicts()
    assert valid.height == 1 and valid.schema == load_contract(table).polars_schema()
    assert counts == {"rows_in": 1, "valid": 1, "rejected": 0, "rejected_by_rule": {}}


@pytest.mark.parametrize("table, rule", CASES, ids=[f"{t}-{r}" for t, r in CASES])
def test_breaking_row_is_quarantined_under_the_rule(table, rule):
    rows = _breaking_rows(table, rule)
    frame = sample_frame(table, *rows)
    valid, rejected, counts = validate_table(frame, load_contract(table), VALID_IDS)
    assert valid.height == len(rows) - 1 and rejected.height == 1
    assert rule in rejected[REASONS][0], rejected.to_dicts()
    assert counts["rejected_by_rule"][rule] == 1
    # the quarantined row keeps its raw values, unchanged
    assert rejected.drop(REASONS).row(0) == frame.row(len(rows) - 1)


def test_every_rule_kind_is_exercised():
    kinds = {r.split(":")[1] if ":" in r else r for _, r in CASES}
    assert kinds == {
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
        "resolved_after_received",
        "removed_after_published",
    }
