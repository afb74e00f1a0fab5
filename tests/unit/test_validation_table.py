"""validate_table on tiny inline frames: casting, time zones, keys, extra columns, table failures."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from data_contracts import REASONS, TableError, load_contract, validate_table
from sample_rows import MERCHANT_ID, sample_frame

SHANGHAI = ZoneInfo("Asia/Shanghai")
IDS = [MERCHANT_ID]


def _reasons(rejected: pl.DataFrame) -> list[list[str]]:
    return rejected[REASONS].to_list()


def test_typed_frame_in_another_zone_is_converted_to_shanghai():
    frame = sample_frame("transactions").with_columns(
        pl.col("txn_id").cast(pl.Int64),
        pl.col("amount_fen").cast(pl.Int64),
        pl.lit(datetime(2024, 3, 5, 4, 34, 56)).dt.replace_time_zone("UTC").alias("ts"),
    )
    valid, rejected, _ = validate_table(frame, load_contract("transactions"), IDS)
    assert rejected.height == 0
    assert valid["ts"].dtype == pl.Datetime("us", "Asia/Shanghai")
    assert valid["ts"][0] == datetime(2024, 3, 5, 12, 34, 56, tzinfo=SHANGHAI)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2024-03-05T12:34:56+08:00", datetime(2024, 3, 5, 12, 34, 56)),
        ("2024-03-05 12:34:56+0800", datetime(2024, 3, 5, 12, 34, 56)),
        ("2024-03-05T04:34:56Z", datetime(2024, 3, 5, 12, 34, 56)),
        ("2024-03-05T12:34:56.250+08:00", datetime(2024, 3, 5, 12, 34, 56, 250000)),
        ("2024-03-04T23:34:56-05:00", datetime(2024, 3, 5, 12, 34, 56)),
    ],
)
def test_timestamp_strings_with_an_offset_are_parsed_to_shanghai(text, expected):
    valid, rejected, _ = validate_table(sample_frame("transactions", {"ts": text}), load_contract("transactions"), IDS)
    assert rejected.height == 0
    assert valid["ts"][0] == expected.replace(tzinfo=SHANGHAI)


@pytest.mark.parametrize(
    "text, rule",
    [
        ("2024-03-05T12:34:56", "ts:timezone"),
        ("2024-03-05 12:34:56", "ts:timezone"),
        ("2024-03-05", "ts:type"),
        ("2024-13-05T12:34:56+08:00", "ts:type"),
        ("yesterday", "ts:type"),
    ],
)
def test_bad_timestamp_strings_are_rejected_keeping_the_original_text(text, rule):
    _, rejected, _ = validate_table(sample_frame("transactions", {"ts": text}), load_contract("transactions"), IDS)
    assert _reasons(rejected) == [[rule]]
    assert rejected["ts"][0] == text


def test_naive_datetime_column_is_a_table_failure():
    frame = sample_frame("transactions").with_columns(pl.lit(datetime(2024, 3, 5, 12)).alias("ts"))
    with pytest.raises(TableError) as info:
        validate_table(frame, load_contract("transactions"), IDS)
    err = info.value
    assert err.column == "ts" and "naive" in err.found and "Asia/Shanghai" in err.expected
    assert all(part in str(err) for part in (str(err.file), "ts", err.expected, err.found, "What to do"))


@pytest.mark.parametrize("dtype_value", [pl.lit(True), pl.lit([1, 2]), pl.lit(datetime(2024, 1, 1)).dt.date()])
def test_column_of_an_uncastable_type_is_a_table_failure(dtype_value):
    frame = sample_frame("transactions").with_columns(dtype_value.alias("amount_fen"))
    with pytest.raises(TableError) as info:
        validate_table(frame, load_contract("transactions"), IDS)
    assert info.value.column == "amount_fen" and "Int64" in info.value.expected


def test_missing_column_is_a_table_failure_naming_it():
    with pytest.raises(TableError) as info:
        validate_table(sample_frame("transactions").drop("channel"), load_contract("transactions"), IDS)
    assert info.value.column == "channel"
    assert "channel" in info.value.expected and "channel" not in info.value.found


def test_integer_casts_reject_fractions_and_overflow():
    frame = sample_frame(
        "complaints", {"complaint_id": "C0000000001"}, {"complaint_id": "C0000000002"}, {"complaint_id": "C0000000003"}
    )
    frame = frame.with_columns(pl.Series("severity", [2.0, 2.5, 300.0]))
    valid, rejected, _ = validate_table(frame, load_contract("complaints"), IDS)
    assert valid["severity"].to_list() == [2] and valid["severity"].dtype == pl.Int8
    assert _reasons(rejected) == [["severity:type"], ["severity:type", "severity:range"]]


def test_not_a_number_rate_is_a_type_break():
    frame = sample_frame("loans", {"annual_rate": "nan"}, {"loan_id": "L0000000002", "annual_rate": "0.4"})
    _, rejected, _ = validate_table(frame, load_contract("loans"), IDS)
    assert _reasons(rejected) == [["annual_rate:type"], ["annual_rate:range"]]


def test_every_broken_rule_of_a_row_is_listed():
    frame = sample_frame(
        "transactions", {"txn_id": "-5", "txn_type": "gift", "amount_fen": "0", "customer_hash": "ABC"}
    )
    _, rejected, counts = validate_table(frame, load_contract("transactions"), IDS)
    expected = ["txn_id:range", "txn_type:allowed_values", "amount_fen:range", "customer_hash:pattern"]
    assert _reasons(rejected) == [expected]
    assert counts["rejected_by_rule"] == dict.fromkeys(expected, 1)


def test_first_occurrence_of_a_key_is_kept_later_ones_rejected():
    frame = sample_frame(
        "transactions", {"txn_id": "7"}, {"txn_id": "3"}, {"txn_id": "7"}, {"txn_id": "3"}, {"txn_id": "7"}
    )
    valid, rejected, _ = validate_table(frame, load_contract("transactions"), IDS)
    assert valid["txn_id"].to_list() == [7, 3]
    assert _reasons(rejected) == [["txn_id:primary_key_unique"]] * 3


def test_null_keys_break_required_not_uniqueness():
    frame = sample_frame("transactions", {"txn_id": None}, {"txn_id": None})
    _, rejected, _ = validate_table(frame, load_contract("transactions"), IDS)
    assert _reasons(rejected) == [["txn_id:required"]] * 2


def test_composite_key_is_named_by_its_columns():
    frame = sample_frame("loan_performance", {}, {"reported_on": "2024-02-29"}, {})
    valid, rejected, _ = validate_table(frame, load_contract("loan_performance"), IDS)
    assert valid.height == 2
    assert _reasons(rejected) == [["loan_id+reported_on:primary_key_unique"]]


def test_unresolved_complaint_passes_the_resolution_rule():
    frame = sample_frame("complaints", {"resolved_at": None})
    valid, rejected, _ = validate_table(frame, load_contract("complaints"), IDS)
    assert valid.height == 1 and rejected.height == 0 and valid["resolved_at"][0] is None


def test_unknown_columns_stay_in_quarantine_but_not_in_valid_output():
    frame = sample_frame("transactions", {}, {"txn_id": "2", "amount_fen": "0"}).with_columns(note=pl.lit("x"))
    valid, rejected, _ = validate_table(frame, load_contract("transactions"), IDS)
    assert "note" not in valid.columns and rejected.columns == [*frame.columns, REASONS]


def test_lazy_input_and_foreign_key_values_are_required_when_the_contract_has_a_key():
    with pytest.raises(ValueError, match="valid_merchant_ids"):
        validate_table(sample_frame("transactions").lazy(), load_contract("transactions"))
    valid, _, _ = validate_table(sample_frame("merchants").lazy(), load_contract("merchants"))
    assert valid.height == 1


CELLS = {
    "txn_id": st.sampled_from(["1", "2", "3", "-1", "x", None, "99999999999999999999"]),
    "merchant_id": st.sampled_from([MERCHANT_ID, "M99999999", "m1", None]),
    "ts": st.sampled_from(["2024-03-05T12:34:56+08:00", "2024-03-05T12:34:56", "1990-01-01T00:00:00Z", "?", None]),
    "txn_type": st.sampled_from(["sale", "refund", "gift", None]),
    "amount_fen": st.sampled_from(["1", "0", "1.5", "10000000001", None]),
    "channel": st.sampled_from(["alipay", "digital_rmb", "cash", None]),
    "customer_hash": st.sampled_from(["0123456789abcdef", "0123456789ABCDEF", None]),
}


@settings(max_examples=60, deadline=None)
@given(st.lists(st.fixed_dictionaries(CELLS), max_size=25))
def test_valid_plus_rejected_is_always_the_input(rows):
    frame = pl.DataFrame(rows, schema={c: pl.String for c in CELLS})
    contract = load_contract("transactions")
    valid, rejected, counts = validate_table(frame, contract, IDS)
    assert valid.height + rejected.height == frame.height == counts["rows_in"]
    assert all(reasons for reasons in rejected[REASONS].to_list())
    # every rejected row is an input row as it came (a multiset: exact duplicates count)
    frames = {"rejected": rejected.drop(REASONS), "input": frame}
    counts_by_row = [t.group_by(frame.columns).len(name=name) for name, t in frames.items()]
    matched = counts_by_row[0].join(counts_by_row[1], on=frame.columns, how="left", nulls_equal=True)
    assert (matched["input"].fill_null(0) >= matched["rejected"]).all()
    assert valid["txn_id"].is_unique().all() and valid.schema == contract.polars_schema()


def test_pattern_of_a_foreign_key_is_still_checked_when_allowed_values_break_it():
    # the pattern is only deferred to the foreign key when every allowed value matches it
    frame = sample_frame("transactions", {"merchant_id": "legacy-7"})
    _, rejected, _ = validate_table(frame, load_contract("transactions"), [MERCHANT_ID, "legacy-7"])
    assert _reasons(rejected) == [["merchant_id:pattern"]]
    _, rejected, _ = validate_table(frame, load_contract("transactions"), [MERCHANT_ID])
    assert _reasons(rejected) == [["merchant_id:pattern", "merchant_id:foreign_key"]]


@settings(max_examples=80, deadline=None)
@given(st.lists(st.one_of(st.none(), st.integers(0, 12)), max_size=40))
def test_duplicate_keys_match_a_plain_first_occurrence_check(keys):
    frame = pl.DataFrame({"txn_id": pl.Series(keys, dtype=pl.Int64)}).join(
        sample_frame("transactions").drop("txn_id"), how="cross"
    )
    _, rejected, _ = validate_table(frame, load_contract("transactions"), IDS)
    repeats = [k for i, k in enumerate(keys) if k is not None and k in keys[:i]]
    flagged = rejected.filter(pl.col(REASONS).list.contains("txn_id:primary_key_unique"))
    assert flagged["txn_id"].to_list() == repeats
