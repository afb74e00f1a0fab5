"""Spine and label rules: who is on the training spine, which rows are excluded, what ``bad`` means."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features import RawTables, labels, monthly_as_of, training_spine
from features.spine import observed_until
from market_frames import CONTRACT_DTYPES, month_ends, tiny_market


def _market(loans: list[tuple], perf: list[tuple]) -> RawTables:
    m = tiny_market(0, merchants=3, txns=10)
    m["loans"] = pl.DataFrame(
        [(lid, mid, "term_loan", d, 1_000_000, 12, 0.1, "B001") for lid, mid, d in loans],
        schema=list(CONTRACT_DTYPES["loans"]),
        orient="row",
    ).cast(CONTRACT_DTYPES["loans"])
    m["loan_performance"] = pl.DataFrame(
        [(lid, rep, mid, dpd, 1000, status) for lid, mid, rep, dpd, status in perf],
        schema=list(CONTRACT_DTYPES["loan_performance"]),
        orient="row",
    ).cast(CONTRACT_DTYPES["loan_performance"])
    return RawTables.from_frames(**m)


def _months(first: date, n: int) -> list[date]:
    return [date(first.year + (first.month - 1 + k) // 12, (first.month - 1 + k) % 12 + 1, 1) for k in range(n)]


def test_monthly_as_of_covers_the_data():
    """Short spans (under a year and a month): from the first month start after the first day."""
    assert monthly_as_of(date(2023, 1, 1), date(2023, 4, 30)) == [
        date(2023, 2, 1),
        date(2023, 3, 1),
        date(2023, 4, 1),
        date(2023, 5, 1),
    ]
    assert monthly_as_of(date(2023, 12, 15), date(2024, 1, 2)) == [date(2024, 1, 1), date(2024, 2, 1)]
    assert monthly_as_of(date(2023, 1, 1), date(2023, 11, 30)) == _months(date(2023, 2, 1), 11)


def test_monthly_as_of_starts_with_a_full_year_of_data():
    """The first as_of has 12 calendar months of data behind it (its 365-day windows lie inside the
    data); the last one is the month start after the last day (the latest snapshot)."""
    # a simulated market: 12 months of history from 2022-01-01, panel 2023-01 .. 2025-06
    assert monthly_as_of(date(2022, 1, 1), date(2025, 6, 30)) == _months(date(2023, 1, 1), 31)
    # data starting mid-month: the year is counted from the next month start
    assert monthly_as_of(date(2022, 1, 15), date(2024, 3, 10)) == _months(date(2023, 2, 1), 15)
    # exactly a year: one as_of, the latest snapshot
    assert monthly_as_of(date(2023, 1, 1), date(2023, 12, 31)) == [date(2024, 1, 1)]
    assert monthly_as_of(date(2023, 1, 2), date(2024, 1, 20)) == [date(2024, 2, 1)]
    for first in (date(2022, 1, 1), date(2022, 3, 17), date(2023, 2, 28), date(2023, 3, 1)):
        got = monthly_as_of(first, first + timedelta(days=800))
        assert (got[0] - first).days >= 365 and (got[0] - timedelta(days=1) - first).days < 365 + 31
        assert all(b == (a + timedelta(days=32)).replace(day=1) for a, b in zip(got, got[1:], strict=False))


def test_training_spine_holders_applicants_and_default_exclusion():
    t = _market(
        loans=[("L0000000001", "M00000001", date(2024, 1, 10)), ("L0000000002", "M00000002", date(2024, 2, 20))],
        perf=[
            ("L0000000001", "M00000001", date(2024, 1, 31), 0, "current"),
            ("L0000000001", "M00000001", date(2024, 2, 29), 95, "default"),
            ("L0000000001", "M00000001", date(2024, 3, 31), 120, "default"),
            ("L0000000002", "M00000002", date(2024, 2, 29), 0, "current"),
            ("L0000000002", "M00000002", date(2024, 3, 31), 0, "closed"),
        ],
    )
    spine = training_spine(t, [date(2024, 1, 1), date(2024, 2, 1), date(2024, 3, 1), date(2024, 4, 1)])
    assert spine.rows.rows() == [
        (M1 := "M00000001", date(2024, 1, 1)),  # applicant: disbursed in January
        (M1, date(2024, 2, 1)),  # holder, last report current
        ("M00000002", date(2024, 2, 1)),  # applicant
        ("M00000002", date(2024, 3, 1)),  # holder, last report current (closed only at 3-31)
    ]
    # M1 is in default at 3-01 and 4-01 (report of 2-29); M2 is closed at 4-01 and so off the spine
    assert spine.excluded_in_default == 2


def test_label_window_and_observation():
    t = _market(
        loans=[("L0000000001", "M00000001", date(2023, 1, 10))],
        perf=[("L0000000001", "M00000001", d, 0, "current") for d in month_ends(date(2023, 1, 1), date(2024, 11, 30))]
        + [("L0000000001", "M00000001", date(2024, 12, 31), 91, "default")],
    )
    spine = pl.DataFrame(
        {
            "merchant_id": ["M00000001"] * 4,
            "as_of": [date(2023, 1, 1), date(2024, 1, 1), date(2024, 2, 1), date(2025, 1, 1)],
        }
    )
    got = labels(t, spine, observed_until(t)).collect()["bad"].to_list()
    # 2023-01-01: window ends 2023-12-31, clean -> 0; 2024-01-01: the 12-31 default is the window's last report -> 1;
    # 2024-02-01: window not fully observed, even though it already holds a default -> null; 2025-01-01: null
    assert got == [0, 1, None, None]
    assert labels(t, spine, None).collect()["bad"].null_count() == 4


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10**6), as_of_day=st.integers(0, 700))
def test_label_sees_only_its_outcome_window(seed, as_of_day):
    """Changing loan reports outside [as_of, as_of + 12 months) never changes the label;
    a default inside it makes the row bad."""
    market = tiny_market(seed, merchants=3, txns=10)
    a = date(2023, 1, 1) + timedelta(days=as_of_day)
    end = pl.lit(a).dt.offset_by("12mo")
    t = RawTables.from_frames(**market)
    observed = date(2030, 1, 1)
    spine = pl.DataFrame({"merchant_id": market["merchants"]["merchant_id"], "as_of": [a] * 3})
    base = labels(t, spine, observed).collect()
    perf = market["loan_performance"]
    outside = (pl.col("reported_on") < a) | (pl.col("reported_on") >= end)
    rng = np.random.default_rng(seed)
    flipped = perf.with_columns(
        days_past_due=pl.when(outside)
        .then(pl.lit(int(rng.integers(0, 400)), dtype=pl.Int32))
        .otherwise(pl.col("days_past_due")),
        status=pl.when(outside).then(pl.lit("written_off")).otherwise(pl.col("status")),
    )
    for variant in (flipped, perf.filter(~outside)):
        t2 = RawTables.from_frames(**{**market, "loan_performance": variant})
        assert labels(t2, spine, observed).collect().equals(base)
    hit = pl.DataFrame(
        {
            "loan_id": ["L9999999999"],
            "reported_on": [a],
            "merchant_id": ["M00000002"],
            "days_past_due": [90],
            "outstanding_fen": [1],
            "status": ["default"],
        }
    ).cast(CONTRACT_DTYPES["loan_performance"])
    t3 = RawTables.from_frames(**{**market, "loan_performance": pl.concat([perf, hit])})
    assert labels(t3, spine, observed).collect().filter(pl.col("merchant_id") == "M00000002")["bad"].item() == 1
