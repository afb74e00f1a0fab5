"""Class history: one partition per month, replaced atomically, never duplicated; which dates score-all plans."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest

from regulator.history import (
    SCHEMA,
    HistoryError,
    months_available,
    months_back,
    plan_dates,
    scan_history,
    write_month,
)


def month_frame(month: str, n: int, cls: str = "B") -> pl.DataFrame:
    return pl.DataFrame(
        {
            "merchant_id": [f"M{i:04d}" for i in range(n)],
            "month": month,
            "as_of": date.fromisoformat(month + "-01"),
            "pd": 0.02,
            "score": 600,
            "grade": "4",
            "class": cls,
            "sector": "catering",
            "province": "33",
            "city": "3301",
            "urban_rural": "urban",
            "business_form": "enterprise",
            "model_name": "m",
            "model_version": "1",
            "model_run_id": "r",
            "scored_at": None,
        }
    )


def test_rewriting_a_month_replaces_it(tmp_path):
    write_month(tmp_path, "2025-06", month_frame("2025-06", 5))
    write_month(tmp_path, "2025-07", month_frame("2025-07", 5))
    write_month(tmp_path, "2025-07", month_frame("2025-07", 3, cls="C"))
    h = scan_history(tmp_path).collect()
    assert months_available(tmp_path) == ["2025-06", "2025-07"]
    assert h.group_by("month").len().sort("month")["len"].to_list() == [5, 3]
    assert h.filter(pl.col("month") == "2025-07")["class"].unique().to_list() == ["C"]
    assert h.schema == pl.Schema(SCHEMA)
    assert [p.name for p in (tmp_path / "month=2025-07").iterdir()] == ["part-0.parquet"]  # no temp file left


def test_a_failed_write_leaves_the_old_month(tmp_path):
    write_month(tmp_path, "2025-07", month_frame("2025-07", 4))
    with pytest.raises(pl.exceptions.ColumnNotFoundError):
        write_month(tmp_path, "2025-07", month_frame("2025-07", 2).drop("pd"))
    assert scan_history(tmp_path).collect().height == 4
    assert [p.name for p in (tmp_path / "month=2025-07").iterdir()] == ["part-0.parquet"]


def test_no_history_says_which_command_builds_it(tmp_path):
    with pytest.raises(HistoryError, match="lifecredit score-all"):
        scan_history(tmp_path / "nothing")


def test_planned_dates():
    snap = date(2025, 7, 1)
    assert plan_dates(snap, None, None) == [snap]
    assert plan_dates(snap, None, 3) == [date(2025, 5, 1), date(2025, 6, 1), date(2025, 7, 1)]
    assert months_back(date(2025, 3, 31), 2) == [date(2025, 2, 28), date(2025, 3, 31)]
    assert months_back(date(2025, 1, 1), 2) == [date(2024, 12, 1), date(2025, 1, 1)]
    assert plan_dates(snap, [date(2025, 6, 1), date(2025, 2, 1)], None) == [date(2025, 2, 1), date(2025, 6, 1)]
    with pytest.raises(ValueError, match="same month"):
        plan_dates(snap, [date(2025, 6, 1), date(2025, 6, 15)], None)
    with pytest.raises(ValueError, match="after the latest snapshot"):
        plan_dates(snap, [date(2025, 8, 1)], None)
    with pytest.raises(ValueError, match="not both"):
        plan_dates(snap, [date(2025, 6, 1)], 2)
    with pytest.raises(HistoryError, match="lifecredit features"):
        plan_dates(None, None, 3)
