"""Complaints and public records: sparse events whose rates and outcomes follow latent health.

Complaints per merchant-month are Poisson in ``sector rate x sqrt(size) x merchant propensity x
exp(0.55 d)``; worse health means more serious complaints, more left unresolved and slower
resolution (a complaint whose resolution would fall after the data window is unresolved).
Public records: administrative penalties (Poisson, ``exp(0.5 d)``; publicity ends after three
years, or after about one through credit repair), the abnormal-operation list (listed more as
health worsens and almost surely once a business has shut, removed as it recovers) and the
serious-violation list (rare, removed after a year at the earliest); a removal is the listing's
``removed_on``, not a row of its own.
Complaints and records are not thinned by ``volume_scale``. None falls before the merchant's
registration day; in its registration month the rates scale with the days it was open.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from scipy.special import expit

from simulation import sectors
from simulation.arrow import SCHEMAS, ascii_rows, digits_ids, fixed_width, take
from simulation.merchants import Merchants
from simulation.sectors import COMPLAINT_CATEGORIES

SOURCES = ("hotline_12315", "platform", "regulator_referral")
RECORD_TYPES = (
    "administrative_penalty",
    "abnormal_operation_listed",
    "abnormal_operation_removed",
    "serious_violation_listed",
    "serious_violation_removed",
)
_PENALTY_RATE = {"catering": 0.010, "accommodation": 0.008, "beauty_hairdressing": 0.006, "convenience": 0.005}
_UTC_OFFSET_S = 8 * 3600


def _open_share(mer: Merchants, month_first: np.ndarray, month_days: np.ndarray) -> np.ndarray:
    """(n, months) share of each month's days on or after the registration day."""
    open_days = (
        month_first[None, :] + month_days[None, :] - np.maximum(month_first[None, :], mer.registered_day[:, None])
    )
    return np.clip(open_days, 0, month_days[None, :]) / month_days[None, :]


def _days(
    rng: np.random.Generator,
    mer: Merchants,
    mi: np.ndarray,
    m: np.ndarray,
    month_first: np.ndarray,
    month_days: np.ndarray,
) -> np.ndarray:
    """A uniform day of month ``m`` on or after merchant ``mi``'s registration day."""
    lo = np.maximum(month_first[m], mer.registered_day[mi])
    return lo + (rng.random(len(mi)) * (month_first[m] + month_days[m] - lo)).astype(np.int64)


def complaints(
    rng: np.random.Generator,
    mer: Merchants,
    d: np.ndarray,
    month_first: np.ndarray,
    month_days: np.ndarray,
    active_until_day: np.ndarray,
    window_end_s: int,
    first_id: int,
) -> pa.Table:
    """Complaints of a block; ``d`` is (n, months); times in epoch seconds are local + zone."""
    n_m, months = d.shape
    s = mer.sector
    propensity = np.exp(0.4 * rng.standard_normal(n_m) - 0.08)
    rate = (sectors.column("complaints_month")[s] * np.sqrt(mer.size) * propensity)[:, None] * np.exp(0.55 * d)
    active = (month_first[None, :] < active_until_day[:, None]) * _open_share(mer, month_first, month_days)
    counts = rng.poisson(rate * active)
    cell = np.repeat(np.arange(n_m * months), counts.ravel())
    mi, m = cell // months, cell % months
    n = len(cell)
    dd = d[mi, m]
    day = _days(rng, mer, mi, m, month_first, month_days)
    received_s = day * 86400 + rng.integers(8 * 3600, 22 * 3600, n) - _UTC_OFFSET_S
    logits = np.stack([np.zeros(n), -0.8 + 0.3 * dd, -2.2 + 0.7 * dd], axis=1)
    p = np.exp(logits)
    p /= p.sum(axis=1, keepdims=True)
    severity = 1 + (rng.random(n)[:, None] > np.cumsum(p, axis=1)[:, :2]).sum(axis=1)
    cat_cdf = sectors.complaint_category_cdf()[s[mi]]
    category = np.minimum((rng.random(n)[:, None] > cat_cdf).sum(axis=1), cat_cdf.shape[1] - 1)
    u = rng.random(n)
    source = np.where(u < 0.05 + 0.10 * (severity == 3), 2, np.where(u < 0.55, 0, 1))
    unresolved = rng.random(n) < expit(-2.6 + 0.8 * dd + 0.4 * (severity - 1))
    delay_h = np.exp(np.log(48.0) + 0.45 * dd + 0.25 * (severity - 1) + 0.8 * rng.standard_normal(n))
    resolved_s = received_s + np.maximum(np.rint(delay_h * 3600), 60).astype(np.int64)
    resolved_ok = ~unresolved & (resolved_s <= window_end_s)
    ids = ascii_rows(mer.ids)
    order = np.lexsort((received_s, mi))
    mi, received_s, resolved_s, resolved_ok = mi[order], received_s[order], resolved_s[order], resolved_ok[order]
    category, severity, source = category[order], severity[order], source[order]
    return pa.Table.from_arrays(
        [
            digits_ids("C", first_id + np.arange(n), 10),
            fixed_width(ids[mi]),
            _ts(received_s),
            pa.array(resolved_s * 1_000_000, mask=~resolved_ok, type=pa.int64()).view(
                SCHEMAS["complaints"].field("resolved_at").type
            ),
            take(COMPLAINT_CATEGORIES, category),
            pa.array(severity.astype(np.int8)),
            take(SOURCES, source),
        ],
        schema=SCHEMAS["complaints"],
    )


def _ts(seconds: np.ndarray) -> pa.Array:
    return pa.array(seconds * 1_000_000, type=pa.int64()).view(SCHEMAS["complaints"].field("received_at").type)


def public_records(
    rng: np.random.Generator,
    mer: Merchants,
    d: np.ndarray,
    month_first: np.ndarray,
    month_days: np.ndarray,
    closed_month: np.ndarray,
    first_id: int,
) -> pa.Table:
    """Penalties and list entries of a block, one row per record with the day it stopped being current.

    ``closed_month``: month the business shut (or large). A listing's ``removed_on`` is the day it
    came off the list (the merchant filed or corrected); a penalty's is the end of its publicity:
    three years, or one year and a few months for the merchants that ask for credit repair (more
    often the healthier ones). A date after the data window is not known yet: null.
    """
    n_m, months = d.shape
    pen_rate = np.array([_PENALTY_RATE.get(name, 0.004) for name in sectors.NAMES])[mer.sector]
    open_share = _open_share(mer, month_first, month_days)
    penalties = rng.poisson(pen_rate[:, None] * np.exp(0.5 * d) * open_share)
    events: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []  # (merchant, month, type, listing)
    cell = np.repeat(np.arange(n_m * months), penalties.ravel())
    none = np.full(len(cell), -1, dtype=np.int64)
    events.append((cell // months, cell % months, np.zeros(len(cell), dtype=np.int64), none))
    n_events = len(cell)
    abnormal = np.zeros(n_m, dtype=bool)
    serious = np.zeros(n_m, dtype=bool)
    serious_since = np.zeros(n_m, dtype=np.int64)
    listing = np.full((2, n_m), -1, dtype=np.int64)  # event index of the open abnormal / serious listing
    for t in range(months):
        shut = closed_month <= t
        dt = d[:, t]
        u = rng.random((4, n_m))
        u[:, open_share[:, t] == 0] = 1.0  # nothing happens to a business before it exists
        list_a = ~abnormal & (u[0] < open_share[:, t] * 0.0015 * np.exp(0.9 * dt) + 0.25 * shut)
        drop_a = abnormal & ~shut & (u[1] < 0.15 * expit(-dt))
        list_s = ~serious & (u[2] < 0.0002 * np.exp(1.1 * dt) + 0.02 * shut)
        drop_s = serious & (t - serious_since >= 12) & ~shut & (u[3] < 0.06)
        for mask, code, which in ((list_a, 1, 0), (drop_a, 2, 0), (list_s, 3, 1), (drop_s, 4, 1)):
            idx = np.flatnonzero(mask)
            if code in (1, 3):
                links = np.full(len(idx), -1, dtype=np.int64)
                listing[which, idx] = n_events + np.arange(len(idx))
            else:
                links = listing[which, idx]
            events.append((idx, np.full(len(idx), t), np.full(len(idx), code), links))
            n_events += len(idx)
        abnormal = (abnormal | list_a) & ~drop_a
        serious_since[list_s] = t
        serious = (serious | list_s) & ~drop_s
    mi, m, kind, link = (np.concatenate([e[i] for e in events]) for i in range(4))
    day = _days(rng, mer, mi, m, month_first, month_days)
    amount = np.rint(3000 * np.exp(0.9 * rng.standard_normal(len(mi)))).astype(np.int64) // 100 * 100 * 100
    amount = np.maximum(amount, 10_000)
    removed = np.full(len(mi), -1, dtype=np.int64)
    is_removal = (kind == 2) | (kind == 4)
    removed[link[is_removal]] = day[is_removal]
    pen = kind == 0
    repaired = rng.random(len(mi)) < 0.5 * expit(-d[mi, m])
    removed[pen] = day[pen] + np.where(repaired[pen], 365 + (rng.random(pen.sum()) * 120).astype(np.int64), 3 * 365)
    window_end = month_first[-1] + month_days[-1]
    removed[removed >= window_end] = -1
    keep = ~is_removal
    mi, day, kind, amount, removed = mi[keep], day[keep], kind[keep], amount[keep], removed[keep]
    order = np.lexsort((kind, day, mi))
    mi, day, kind, amount, removed = mi[order], day[order], kind[order], amount[order], removed[order]
    ids = ascii_rows(mer.ids)
    n = len(mi)
    return pa.Table.from_arrays(
        [
            digits_ids("P", first_id + np.arange(n), 10),
            fixed_width(ids[mi]),
            take(RECORD_TYPES, kind),
            pa.array(day.astype(np.int32), type=pa.int32()).view(pa.date32()),
            pa.array(amount, mask=kind != 0, type=pa.int64()),
            pa.array(removed.astype(np.int32), mask=removed < 0, type=pa.int32()).view(pa.date32()),
        ],
        schema=SCHEMAS["public_records"],
    )
