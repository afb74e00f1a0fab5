"""The map's aggregates (regulator.map) on crafted stores: values, small-cell protection, the cache, bad queries."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from core.settings import Settings
from regulator import map as lifemap
from regulator.aggregates import distribution
from regulator.common import UnknownValue, ViewError
from regulator.history import HistoryError, scan_history, write_month

K = 10
PD = {"A": 0.01, "B": 0.03, "C": 0.08, "D": 0.25}
CITIES = {"3301": 30, "3302": 25, "3303": 4, "4401": 40, "4403": 20, "1101": 12}
"""Merchants per prefecture: 3303 is small, so province 33 must hide a second prefecture."""


def _merchants(cities: dict[str, int], month: str, shift: int = 0) -> pl.DataFrame:
    rows = []
    for city, count in cities.items():
        for n in range(count):
            cls = "ABCD"[(n + shift) % 4 if n % 3 else 0]
            rows.append((f"M{city}{n:03d}", month, cls, PD[cls], city[:2], city, "catering" if n % 2 else "retail"))
    frame = pl.DataFrame(
        rows, schema=["merchant_id", "month", "class", "pd", "province", "city", "sector"], orient="row"
    )
    return frame.with_columns(
        as_of=pl.lit(date.fromisoformat(month + "-01")),
        score=pl.lit(600),
        grade=pl.lit("3"),
        urban_rural=pl.lit("urban"),
        business_form=pl.lit("individual_business"),
        model_name=pl.lit("m"),
        model_version=pl.lit("1"),
        model_run_id=pl.lit("r"),
        scored_at=pl.lit(datetime(2025, 7, 1, tzinfo=UTC)),
    )


@pytest.fixture
def settings(tmp_path) -> Settings:
    s = Settings(data_dir=tmp_path / "data", history_dir=tmp_path / "history", var_dir=tmp_path / "var")
    write_month(s.class_history_dir, "2025-05", _merchants(CITIES, "2025-05"))
    write_month(s.class_history_dir, "2025-06", _merchants(CITIES, "2025-06", shift=1))
    return s


def _by_code(view: dict) -> dict[str, dict]:
    return {r["code"]: r for r in view["regions"]}


def test_class_history_measures_are_the_distribution_tables(settings):
    history = scan_history(settings.class_history_dir)
    for level, by in (("province", "province"), ("prefecture", "city")):
        table = {r["key"]: r for r in distribution(history, by, "2025-06", k=K)["rows"]}
        merchants = _by_code(lifemap.map_view(settings, "merchants", "2025-06", level=level))
        shares = _by_code(lifemap.map_view(settings, "class_B", "2025-06", level=level))
        assert set(merchants) == set(table)
        for code, row in table.items():
            r = merchants[code]
            if row["total"]["suppressed"]:  # the map never shows what the distribution hides
                assert r == {**r, "value": None, "merchants": None, "status": "suppressed"}
            if r["status"] == "shown":
                assert r["value"] == row["total"]["count"] == r["merchants"] and isinstance(r["value"], int)
                assert shares[code]["value"] == pytest.approx(row["cells"]["B"]["share"], abs=1e-6)
    provinces = _by_code(lifemap.map_view(settings, "mean_pd", "2025-06"))
    frame = history.filter(pl.col("month") == "2025-06").collect()
    for code, r in provinces.items():
        if r["status"] == "shown":
            assert r["value"] == pytest.approx(frame.filter(pl.col("province") == code)["pd"].mean(), abs=1e-6)
    assert {r["status"] for r in provinces.values()} >= {"shown"}


def _interval(cities: dict[str, dict], provinces: dict[str, dict], total: int, target: str) -> tuple[float, float]:
    """Least and most merchants the published totals of both levels allow in ``target`` (a province or prefecture
    code): a linear programme over merchants per prefecture (a prefecture lies in the province of its first two
    digits, which is public; the month's total is published), every hidden region holding at least one."""
    from scipy.optimize import linprog

    codes = sorted(cities)
    rows, rhs, floor = [[1.0] * len(codes)], [total], []
    for group, members in [(c, [c]) for c in codes] + [(p, [c for c in codes if c[:2] == p]) for p in provinces]:
        region = cities.get(group) or provinces[group]
        row = [1.0 if c in members else 0.0 for c in codes]
        if region["status"] == "shown":
            rows.append(row), rhs.append(region["value"])
        else:
            floor.append([-v for v in row])
    objective = np.array([1.0 if c == target or c[:2] == target and target not in cities else 0.0 for c in codes])
    ub = dict(A_ub=floor, b_ub=[-1.0] * len(floor)) if floor else {}
    ends = [sign * linprog(sign * objective, A_eq=rows, b_eq=rhs, **ub).fun for sign in (1, -1)]
    return ends[0], ends[1]


def _no_small_region_pinned(settings, counts: dict[str, int], month: str) -> None:
    cities = _by_code(lifemap.map_view(settings, "merchants", month, level="prefecture"))
    provinces = _by_code(lifemap.map_view(settings, "merchants", month))
    true = {**counts, **{p: sum(n for c, n in counts.items() if c[:2] == p) for p in provinces}}
    for code, n in true.items():
        if n < K:
            assert (cities.get(code) or provinces[code])["status"] == "suppressed", code
            low, high = _interval(cities, provinces, sum(counts.values()), code)
            assert low <= n <= high and high - low >= 1, (code, n, low, high)


def test_no_small_region_follows_from_both_levels_together(settings):
    """3303 (4 merchants) is hidden; province 33 is published, so a second prefecture of 33 is hidden with it,
    and no hidden region of fewer than 10 merchants is pinned down by the province and prefecture totals."""
    for measure in ("merchants", "mean_pd", "class_A"):
        cities = _by_code(lifemap.map_view(settings, measure, "2025-06", level="prefecture"))
        assert cities["3303"]["status"] == "suppressed" and cities["3303"]["value"] is None
        assert cities["3302"]["status"] == "suppressed"  # the smaller neighbour
    _no_small_region_pinned(settings, CITIES, "2025-06")


@pytest.mark.parametrize("seed", range(8))
def test_random_markets_leave_no_small_region_pinned_down(tmp_path, seed):
    rng = np.random.default_rng(seed)
    counts = {
        f"{p}{c + 1:02d}": int(rng.integers(1, 10) if rng.random() < 0.4 else rng.integers(10, 50))
        for p in ("11", "33", "44", "51")
        for c in range(rng.integers(1, 5))
    }
    settings = Settings(data_dir=tmp_path / "data", history_dir=tmp_path / "history", var_dir=tmp_path / "var")
    write_month(settings.class_history_dir, "2025-06", _merchants(counts, "2025-06"))
    _no_small_region_pinned(settings, counts, "2025-06")


def _aggregates(folder: Path) -> None:
    """A consumption-index output: province and prefecture rows, all sectors and per sector, one cell suppressed."""
    base = dict(consumption_count_yoy=None, refund_fen=0, refund_count=0, digital_fen=0, digital_count=0)
    rows = []
    for month, grow in (("2025-05", 1.0), ("2025-06", 1.1)):
        for level, province, city, sector, merchants, fen in (
            ("province", "33", "all", "all", 59, 1_000_000),
            ("province", "44", "all", "all", 60, 2_000_000),
            ("sector_province", "33", "all", "catering", 30, 600_000),
            ("sector_province", "44", "all", "catering", 31, 900_000),
            ("city", "33", "3301", "all", 30, 500_000),
            ("city", "33", "3303", "all", None, None),
        ):
            hidden = merchants is None
            rows.append(
                {
                    **base,
                    "level": level,
                    "sector": sector,
                    "province": province,
                    "city": city,
                    "month": month,
                    "merchants": merchants,
                    "merchants_yoy": None,
                    "consumption_fen": None if hidden else int(fen * grow),
                    "consumption_count": None if hidden else 100,
                    "consumption_yoy": None if hidden or month == "2025-05" else 0.1,
                    "digital_share": None if hidden else 0.8,
                    "digital_count_share": None if hidden else 0.7,
                    "suppressed": hidden,
                }
            )
    folder.mkdir(parents=True)
    pl.DataFrame(rows).write_parquet(folder / lifemap.AGGREGATES_FILE)


def test_consumption_measures_read_the_index_aggregates_as_written(settings):
    with pytest.raises(lifemap.SourceMissing, match="lifecredit consumption-index"):
        lifemap.map_view(settings, "consumption_amount", "2025-06")
    listing = lifemap.map_view(settings)
    assert {m["key"]: m["available"] for m in listing["measures"]}["digital_share"] is False
    _aggregates(settings.consumption_folder)
    listing = lifemap.map_view(settings)
    assert all(m["available"] for m in listing["measures"]) and [s["key"] for s in listing["sectors"]] == ["catering"]
    amount = _by_code(lifemap.map_view(settings, "consumption_amount", "2025-06"))
    assert amount["33"]["value"] == pytest.approx(11_000.0) and amount["44"]["merchants"] == 60  # yuan, not fen
    assert _by_code(lifemap.map_view(settings, "consumption_yoy", "2025-05"))["33"]["status"] == "no_data"
    catering = lifemap.map_view(settings, "active_merchants", "2025-06", sector="catering")
    assert _by_code(catering)["44"]["value"] == 31 and catering["sector"]["key"] == "catering"
    cities = _by_code(lifemap.map_view(settings, "digital_share", "2025-06", level="prefecture"))
    assert cities["3303"] == {**cities["3303"], "value": None, "merchants": None, "status": "suppressed"}
    assert cities["3301"]["value"] == 0.8
    with pytest.raises(UnknownValue, match="catering"):
        lifemap.map_view(settings, "active_merchants", "2025-06", sector="laundry_dyeing")


def test_finding_rate_per_province_hides_small_provinces(settings):
    from regulator.inspections import RESULT_SCHEMA, finding_rates, results_dir

    assert lifemap.map_view(settings, "finding_rate", "2025-06")["regions"] == []  # nothing recorded yet
    ids = [f"M3301{n:03d}" for n in range(20)] + [f"M4401{n:03d}" for n in range(20)] + ["M1101000", "M1101001"]
    findings = ["none", "minor", "serious", "none"]
    results = pl.DataFrame(
        {
            "merchant_id": ids,
            "inspected_on": [date(2025, 6, 10)] * len(ids),
            "finding": [findings[n % 4] for n in range(len(ids))],
            "plan_id": None,
            "inspector": None,
            "source_sha256": "x",
            "recorded_at": datetime(2025, 6, 30, tzinfo=UTC),
        },
        schema=RESULT_SCHEMA,
    )
    results_dir(settings).mkdir(parents=True)
    results.write_parquet(results_dir(settings) / "r.parquet")
    rates = _by_code(lifemap.map_view(settings, "finding_rate", "2025-06"))
    assert rates["11"]["status"] == "suppressed" and rates["11"]["value"] is None  # two inspections
    shown = [r for r in rates.values() if r["status"] == "shown"]
    assert sum(r["status"] == "suppressed" for r in rates.values()) >= 2  # the lone small one takes a complement
    for r in shown:
        assert r["value"] == pytest.approx(0.5) and r["merchants"] == 20
    total = finding_rates(scan_history(settings.class_history_dir), results, k=K, from_month="2025-06")["total"]
    assert total["inspections"]["count"] == len(ids)  # the province table keeps the findings view's totals


def test_bad_queries_are_refused_with_their_reason(settings, tmp_path):
    with pytest.raises(ViewError, match="measure must be one of"):
        lifemap.map_view(settings, "colour")
    with pytest.raises(ViewError, match="level must be one of"):
        lifemap.map_view(settings, "merchants", level="county")
    with pytest.raises(ViewError, match="by province only"):
        lifemap.map_view(settings, "finding_rate", level="prefecture")
    with pytest.raises(ViewError, match="not split by sector"):
        lifemap.map_view(settings, "mean_pd", sector="catering")
    with pytest.raises(UnknownValue, match="2025-05 .. 2025-06"):
        lifemap.map_view(settings, "merchants", "2024-01")
    empty = Settings(data_dir=tmp_path / "d2", history_dir=tmp_path / "none", var_dir=tmp_path / "v2")
    with pytest.raises(HistoryError, match="score-all"):
        lifemap.map_view(empty, "merchants")


def test_answers_come_from_the_cache_until_a_month_is_rescored(settings):
    first = lifemap.map_view(settings, "class_D", "2025-06")
    start = time.perf_counter()
    for _ in range(20):
        again = lifemap.map_view(settings, "class_D", "2025-06", level="prefecture")
    assert (time.perf_counter() - start) / 20 < 0.05 and again["level"] == "prefecture"
    assert lifemap.map_view(settings, "class_D", "2025-06") == first
    write_month(settings.class_history_dir, "2025-06", _merchants({**CITIES, "4401": 80}, "2025-06", shift=2))
    assert _by_code(lifemap.map_view(settings, "merchants", "2025-06"))["44"]["value"] == 100
