"""Simulated months and days, and the yearly rhythm of each sector (Spring Festival, holidays, summer).

Month ``k`` runs from ``month_start(start, k)`` to its last day; loan reports fall on that last
day. Days are indexed from the first simulated day; ``EPOCH`` day numbers are days since
1970-01-01, as Arrow/Polars store dates.
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np

from simulation import sectors

# Gregorian date of the lunar new year (春节).
SPRING_FESTIVAL = {
    2010: date(2010, 2, 14),
    2011: date(2011, 2, 3),
    2012: date(2012, 1, 23),
    2013: date(2013, 2, 10),
    2014: date(2014, 1, 31),
    2015: date(2015, 2, 19),
    2016: date(2016, 2, 8),
    2017: date(2017, 1, 28),
    2018: date(2018, 2, 16),
    2019: date(2019, 2, 5),
    2020: date(2020, 1, 25),
    2021: date(2021, 2, 12),
    2022: date(2022, 2, 1),
    2023: date(2023, 1, 22),
    2024: date(2024, 2, 10),
    2025: date(2025, 1, 29),
    2026: date(2026, 2, 17),
    2027: date(2027, 2, 6),
    2028: date(2028, 1, 26),
    2029: date(2029, 2, 13),
    2030: date(2030, 2, 3),
    2031: date(2031, 1, 23),
    2032: date(2032, 2, 11),
    2033: date(2033, 1, 31),
    2034: date(2034, 2, 19),
    2035: date(2035, 2, 8),
}
EPOCH = date(1970, 1, 1)

# Multipliers around the Spring Festival, per sector (order of sectors.SECTORS):
# (20 days before: shopping, haircuts, cleaning, family photos), (festival week: many shops shut,
# guesthouses busy), (the two weeks after: slow restart), (rest of the first lunar month).
_SF = {
    "catering": (1.15, 0.60, 0.85, 1.0),
    "retail": (1.40, 0.75, 0.85, 1.0),
    "accommodation": (0.90, 1.35, 1.10, 1.0),
    "housekeeping": (1.80, 0.20, 0.70, 1.0),
    "laundry_dyeing": (1.30, 0.30, 0.80, 1.0),
    "appliance_repair": (1.10, 0.30, 0.80, 1.0),
    "portrait_photography": (1.50, 0.50, 0.80, 1.0),
    "beauty_hairdressing": (1.60, 0.30, 0.55, 0.65),  # 正月不剃头: no haircuts in the first lunar month
    "convenience": (1.25, 0.90, 0.95, 1.0),
}
# (National Day golden week Oct 1-7, July-August summer).
_HOLIDAY = {
    "catering": (1.20, 1.00),
    "retail": (1.15, 0.95),
    "accommodation": (1.60, 1.25),
    "housekeeping": (0.80, 1.00),
    "laundry_dyeing": (0.80, 0.90),
    "appliance_repair": (0.80, 1.40),  # air-conditioner season
    "portrait_photography": (1.25, 1.05),
    "beauty_hairdressing": (1.10, 1.00),
    "convenience": (1.05, 1.10),
}


def month_start(start: date, k: int) -> date:
    """First day of simulated month ``k`` (``k`` may be negative)."""
    m = start.year * 12 + start.month - 1 + k
    return date(m // 12, m % 12 + 1, 1)


def month_end(start: date, k: int) -> date:
    """Last day of simulated month ``k``."""
    return month_start(start, k + 1) - timedelta(days=1)


def epoch_day(d: date) -> int:
    return (d - EPOCH).days


def month_grid(start: date, months: int) -> dict[str, np.ndarray]:
    """Per month: first and last day as epoch days, days in month, calendar year and month."""
    firsts = [month_start(start, k) for k in range(months + 1)]
    first = np.array([epoch_day(d) for d in firsts], dtype=np.int64)
    return {
        "first": first[:-1],
        "last": first[1:] - 1,
        "days": np.diff(first),
        "year": np.array([d.year for d in firsts[:-1]]),
        "month": np.array([d.month for d in firsts[:-1]]),
    }


def spring_festival(year: int) -> date:
    """Lunar new year; outside the table a mid-range date (Feb 5) stands in."""
    return SPRING_FESTIVAL.get(year, date(year, 2, 5))


def yearly_multipliers(start: date, n_days: int) -> np.ndarray:
    """(9, n_days) seasonal multipliers for each sector on each simulated day."""
    days = [start + timedelta(days=i) for i in range(n_days)]
    out = np.ones((len(sectors.SECTORS), n_days))
    sf_days = {}
    for y in {d.year for d in days} | {d.year + 1 for d in days}:
        sf_days[y] = spring_festival(y)
    rel = np.empty(n_days, dtype=np.int64)
    for i, d in enumerate(days):
        # days relative to the closest lunar new year
        cand = [(d - sf_days[y]).days for y in (d.year, d.year + 1) if y in sf_days]
        rel[i] = min(cand, key=abs)
    month = np.array([d.month for d in days])
    dom = np.array([d.day for d in days])
    golden = (month == 10) & (dom <= 7)
    summer = (month == 7) | (month == 8)
    for s, sec in enumerate(sectors.SECTORS):
        pre, fest, after, first_month = _SF[sec.name]
        gold, summ = _HOLIDAY[sec.name]
        m = np.ones(n_days)
        m[(rel >= -20) & (rel < 0)] = pre
        m[(rel >= 0) & (rel < 7)] = fest
        m[(rel >= 7) & (rel < 21)] = after
        if first_month != 1.0:
            m[(rel >= 7) & (rel < 29)] = np.minimum(m[(rel >= 7) & (rel < 29)], first_month)
        m[golden] *= gold
        m[summer] *= summ
        out[s] = m
    return out
