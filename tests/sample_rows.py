"""One valid example row per raw table, as CSV text would give it (every value a string).

Tests break one rule at a time starting from these rows; they also document what a valid
row looks like. The credit code's check character is computed, not typed in. Test-only:
importable as ``sample_rows`` from any test (``tests/`` is on ``sys.path`` through its conftest).
"""

from __future__ import annotations

import polars as pl

from data_contracts import uscc

MERCHANT_ID = "M00000001"
CREDIT_CODE = "92330106MA2B3C4D5" + uscc.check_char("92330106MA2B3C4D5")

SAMPLE_ROWS: dict[str, dict[str, str | None]] = {
    "merchants": {
        "merchant_id": MERCHANT_ID,
        "credit_code": CREDIT_CODE,
        "name": "Lucky Noodle House",
        "owner_hash": "0123456789abcdef",
        "sector": "catering",
        "region_code": "330106",
        "business_form": "individual_business",
        "registered_on": "2019-05-01",
        "registered_capital_fen": "1000000",
    },
    "transactions": {
        "txn_id": "1",
        "merchant_id": MERCHANT_ID,
        "ts": "2024-03-05T12:34:56+08:00",
        "txn_type": "sale",
        "amount_fen": "1500",
        "channel": "wechat_pay",
        "customer_hash": "fedcba9876543210",
    },
    "complaints": {
        "complaint_id": "C0000000001",
        "merchant_id": MERCHANT_ID,
        "received_at": "2024-03-05T12:00:00+08:00",
        "resolved_at": "2024-03-06T09:30:00+08:00",
        "category": "hygiene",
        "severity": "2",
        "source": "platform",
    },
    "loans": {
        "loan_id": "L0000000001",
        "merchant_id": MERCHANT_ID,
        "product": "term_loan",
        "disbursed_on": "2024-01-15",
        "principal_fen": "5000000",
        "term_months": "12",
        "annual_rate": "0.08",
        "lender_code": "B001",
    },
    "loan_performance": {
        "loan_id": "L0000000001",
        "reported_on": "2024-01-31",
        "merchant_id": MERCHANT_ID,
        "days_past_due": "0",
        "outstanding_fen": "4800000",
        "status": "current",
    },
    "public_records": {
        "record_id": "P0000000001",
        "merchant_id": MERCHANT_ID,
        "record_type": "administrative_penalty",
        "published_on": "2024-02-01",
        "penalty_fen": "200000",
        "removed_on": "2027-02-01",
    },
}


def sample_frame(table: str, *rows: dict[str, str | None]) -> pl.DataFrame:
    """All-String frame of the given rows (each a partial override of the sample row)."""
    full = [{**SAMPLE_ROWS[table], **row} for row in rows or ({},)]
    return pl.DataFrame(full, schema={c: pl.String for c in SAMPLE_ROWS[table]})
