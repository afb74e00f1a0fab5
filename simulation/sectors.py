"""Per-sector economics of the nine life-service sectors: what differs from a noodle shop to a photo studio.

Ticket size, daily recorded volume, weekly and intraday rhythm, refund and complaint
propensity, customer loyalty, exposure to the broad downturn and the sector's risk offset.
Numbers are plausible orders of magnitude for small Chinese merchants, not estimates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Sector:
    name: str
    share: float
    """Share of merchants in the sector."""
    daily_txns: float
    """Recorded transactions per merchant-day for an average merchant (before the global calibration)."""
    ticket_yuan: float
    """Median sale in yuan."""
    ticket_sigma: float
    """Log-sd of sale amounts within a merchant."""
    refund_rate: float
    """Share of recorded transactions that are refunds for a healthy merchant."""
    complaints_month: float
    """Complaints per month for an average-sized, average-health merchant."""
    loyalty: float
    """Exponent of repeat-customer concentration (1: no regulars; higher: more regulars)."""
    walk_in_share: float
    """Share of transactions by occasional customers rather than regulars (tourists high, neighbours low)."""
    risk_offset: float
    """Added to the latent risk index: sectors with more failures sit higher."""
    downturn_exposure: float
    """Multiplier on the broad downturn shock."""
    borrow_share: float
    """Share of merchants who are borrowers at all."""
    weekly: tuple[float, ...]
    """Mon..Sun volume multipliers."""
    hours: tuple[float, ...]
    """Relative volume in each local hour 0..23."""
    complaint_categories: tuple[float, ...]
    """Weights over COMPLAINT_CATEGORIES."""


COMPLAINT_CATEGORIES = (
    "food_safety",
    "hygiene",
    "service_quality",
    "price_dispute",
    "refund_dispute",
    "false_advertising",
    "property_damage",
    "other",
)

_H = {
    "meals": (1, 0.5, 0.3, 0.2, 0.2, 0.4, 2, 5, 5, 2, 3, 12, 16, 9, 3, 2, 3, 9, 14, 11, 6, 4, 3, 2),
    "shop": (0.2, 0.1, 0, 0, 0, 0.1, 0.5, 2, 4, 6, 7, 7, 7, 6, 6, 6, 7, 8, 10, 11, 10, 7, 3, 1),
    "stay": (3, 2, 1, 0.5, 0.3, 0.3, 0.5, 1, 2, 3, 4, 5, 6, 7, 9, 10, 10, 9, 9, 9, 8, 7, 6, 4),
    "office": (0, 0, 0, 0, 0, 0, 0, 0.5, 4, 9, 10, 10, 7, 8, 10, 10, 9, 7, 4, 2, 1, 0.5, 0, 0),
    "evening": (0, 0, 0, 0, 0, 0, 0, 0.5, 2, 4, 7, 8, 7, 7, 8, 9, 9, 9, 9, 9, 8, 6, 2, 0.5),
    "corner": (2, 1, 0.5, 0.3, 0.3, 0.5, 3, 8, 9, 6, 5, 6, 7, 5, 4, 4, 5, 8, 10, 10, 9, 7, 5, 3),
}

SECTORS: tuple[Sector, ...] = (
    Sector(
        "catering",
        0.27,
        20.0,
        38,
        0.55,
        0.010,
        0.22,
        2.0,
        0.25,
        0.30,
        1.3,
        0.60,
        (0.92, 0.92, 0.95, 0.97, 1.08, 1.12, 1.04),
        _H["meals"],
        (8, 7, 5, 3, 2, 1, 1, 1),
    ),
    Sector(
        "retail",
        0.20,
        7.0,
        85,
        0.90,
        0.030,
        0.10,
        1.6,
        0.35,
        0.00,
        1.2,
        0.55,
        (0.92, 0.90, 0.92, 0.95, 1.04, 1.15, 1.12),
        _H["shop"],
        (0, 0, 3, 4, 5, 4, 1, 1),
    ),
    Sector(
        "accommodation",
        0.05,
        3.5,
        220,
        0.50,
        0.050,
        0.18,
        1.1,
        0.80,
        0.20,
        1.4,
        0.55,
        (0.82, 0.80, 0.85, 0.90, 1.25, 1.35, 1.03),
        _H["stay"],
        (0, 4, 4, 3, 3, 2, 1, 1),
    ),
    Sector(
        "housekeeping",
        0.06,
        2.5,
        180,
        0.60,
        0.030,
        0.14,
        1.8,
        0.35,
        0.10,
        0.8,
        0.45,
        (1.05, 1.05, 1.05, 1.05, 1.00, 0.95, 0.85),
        _H["office"],
        (0, 1, 5, 3, 2, 1, 4, 1),
    ),
    Sector(
        "laundry_dyeing",
        0.06,
        5.0,
        35,
        0.70,
        0.010,
        0.08,
        2.2,
        0.25,
        -0.20,
        0.8,
        0.45,
        (1.10, 0.92, 0.90, 0.90, 1.00, 1.13, 1.05),
        _H["evening"],
        (0, 1, 3, 2, 2, 0, 6, 1),
    ),
    Sector(
        "appliance_repair",
        0.05,
        1.3,
        160,
        0.80,
        0.020,
        0.12,
        1.2,
        0.70,
        -0.10,
        0.7,
        0.50,
        (1.10, 1.10, 1.08, 1.08, 1.05, 0.82, 0.77),
        _H["office"],
        (0, 0, 4, 6, 2, 2, 4, 1),
    ),
    Sector(
        "portrait_photography",
        0.04,
        0.9,
        450,
        0.80,
        0.040,
        0.08,
        1.1,
        0.85,
        0.15,
        1.2,
        0.40,
        (0.72, 0.70, 0.72, 0.80, 1.00, 1.60, 1.46),
        _H["evening"],
        (0, 0, 4, 4, 4, 3, 1, 1),
    ),
    Sector(
        "beauty_hairdressing",
        0.13,
        6.0,
        75,
        0.80,
        0.020,
        0.16,
        2.3,
        0.25,
        0.25,
        1.1,
        0.55,
        (0.86, 0.85, 0.90, 0.95, 1.10, 1.25, 1.09),
        _H["evening"],
        (0, 2, 5, 3, 6, 3, 0, 1),
    ),
    Sector(
        "convenience",
        0.14,
        30.0,
        22,
        0.80,
        0.005,
        0.05,
        2.6,
        0.20,
        -0.30,
        0.9,
        0.60,
        (0.97, 0.97, 0.97, 0.98, 1.03, 1.05, 1.03),
        _H["corner"],
        (3, 2, 1, 3, 1, 1, 0, 1),
    ),
)

NAMES: tuple[str, ...] = tuple(s.name for s in SECTORS)
SHARES = np.array([s.share for s in SECTORS]) / sum(s.share for s in SECTORS)


def column(attr: str) -> np.ndarray:
    """One sector attribute as an array indexed by sector number."""
    return np.array([getattr(s, attr) for s in SECTORS], dtype=np.float64)


def weekly() -> np.ndarray:
    """(9, 7) Monday-first weekly multipliers, each row averaging 1."""
    w = np.array([s.weekly for s in SECTORS], dtype=np.float64)
    return w / w.mean(axis=1, keepdims=True)


def hour_cdf() -> np.ndarray:
    """(9, 24) cumulative intraday distribution of transactions, local hours."""
    h = np.array([s.hours for s in SECTORS], dtype=np.float64)
    return np.cumsum(h / h.sum(axis=1, keepdims=True), axis=1)


def complaint_category_cdf() -> np.ndarray:
    """(9, 8) cumulative distribution over COMPLAINT_CATEGORIES."""
    c = np.array([s.complaint_categories for s in SECTORS], dtype=np.float64)
    return np.cumsum(c / c.sum(axis=1, keepdims=True), axis=1)
