"""Hypothesis: any row the contract validator sees ends up valid or quarantined with a named rule, never lost, never both."""

from __future__ import annotations

from collections import Counter

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from data_contracts import REASONS, TABLES, load_contract, rule_names, validate_table
from sample_rows import MERCHANT_ID, SAMPLE_ROWS

ODD = [
    "",
    " ",
    "-1",
    "0",
    "1e309",
    "NaN",
    "inf",
    "2024-02-30",
    "2024-13-01",
    "9999-12-31T00:00:00Z",
    "1970-01-01",
    "M1",
    "x" * 300,
    "１２３",
    "null",
    "0x10",
    "99999999999999999999",
    "\x00",
    "2024-03-05 12:00",
]


def _value(sample: str | None) -> st.SearchStrategy:
    return st.one_of(
        st.just(sample),
        st.just(sample),
        st.none(),
        st.sampled_from(ODD),
        st.text(max_size=24),
        st.integers(-(10**12), 10**12).map(str),
    )


def _rows(table: str) -> st.SearchStrategy[list[dict]]:
    sample = SAMPLE_ROWS[table]
    row = st.fixed_dictionaries({c: _value(v) for c, v in sample.items()})
    return st.lists(row, min_size=1, max_size=12)


@pytest.mark.parametrize("table", TABLES)
@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_row_is_valid_or_quarantined_with_a_rule_never_both(table, data):
    contract = load_contract(table)
    rows = data.draw(_rows(table))
    frame = pl.DataFrame(rows, schema={c: pl.String for c in SAMPLE_ROWS[table]}).with_row_index("_row")
    refs = None if table == "merchants" else [MERCHANT_ID]
    valid, rejected, counts = validate_table(frame.with_columns(pl.col("_row").cast(pl.String)), contract, refs)

    assert counts["rows_in"] == frame.height == valid.height + rejected.height
    rejected_rows = [int(r) for r in rejected["_row"]]
    assert len(set(rejected_rows)) == len(rejected_rows) and set(rejected_rows) <= set(range(frame.height))
    names = set(rule_names(contract))
    for reasons in rejected[REASONS].to_list():
        assert reasons and set(reasons) <= names, reasons
    # the valid rows are exactly the others: their key values, cast as the validator casts them
    key = contract.primary_key[0]
    kept = frame.filter(~pl.col("_row").is_in(rejected_rows))[key]
    assert Counter(kept.cast(valid[key].dtype, strict=False).to_list()) == Counter(valid[key].to_list())
