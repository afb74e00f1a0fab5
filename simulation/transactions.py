"""Transactions: every recorded sale and refund of a block of merchants, fully vectorised.

Expected count per merchant-day = sector volume x business size x health (``exp(-0.30 d)``) x a
recorded-share factor (cash use drifts; noisier for individual and rural merchants) x weekly
and yearly (Spring Festival, golden week, summer) rhythm x day-to-day noise that widens as
health worsens, with unhealthy merchants closing more days. Counts are Poisson; each row then
gets a time from the sector's intraday profile, an amount from the merchant's ticket
distribution, a refund flag (refunds rise as health worsens), a channel from the merchant's
channel mix (digital RMB spreads over time) and a customer from a per-merchant pool of salted
hashes: a regular (drawn with a loyalty exponent, so regulars recur and concentration is
measurable) or, more often as health worsens, an occasional customer from a set that grows
month by month. Pool sizes follow expected, never realised, volume: nothing in a month's rows
depends on what happens later.
Rows come out sorted by merchant, then time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from scipy.special import expit

from simulation import sectors
from simulation.arrow import SCHEMAS, ascii_rows, fixed_width, hex16, take
from simulation.merchants import Merchants

CHANNELS = ("wechat_pay", "alipay", "unionpay_qr", "bank_card", "digital_rmb", "other")
TXN_TYPES = ("sale", "refund")
_URBAN_MIX = np.array([0.46, 0.32, 0.07, 0.08, 0.02, 0.05])
_RURAL_MIX = np.array([0.55, 0.20, 0.06, 0.05, 0.02, 0.12])
_NULL_CUSTOMER = np.array([0.0, 0.0, 0.10, 0.0, 0.60, 1.0])
"""Per channel: share of rows without an identifiable customer."""
VOLUME_NORM = 0.75
"""Global factor that brings the market average to about 10 recorded transactions per merchant-day."""
HEALTH_ON_VOLUME = 0.30
"""Log of the expected number of sales falls by this much per unit of ill health ``d``."""
HEALTH_ON_TICKET = 0.05
"""Log of the mean ticket falls by this much per unit of ill health ``d``."""
_HOUR_TABLE_SIZE = 4096
_VISITS_PER_REGULAR = 3.0
"""Visits a month by a typical regular customer."""
_UTC_OFFSET_S = 8 * 3600


@dataclass(frozen=True)
class Calendar:
    """The simulated days: epoch day of day 0, month of each day, weekday, sector multipliers."""

    first_day: int
    day_month: np.ndarray
    weekday: np.ndarray
    yearly: np.ndarray  # (9, n_days)
    weekly: np.ndarray  # (9, 7)
    months_since_2023: np.ndarray  # per month, for the spread of digital RMB
    month_first_index: np.ndarray  # per month, index of its first day

    @property
    def n_days(self) -> int:
        return len(self.day_month)


def _hour_table() -> np.ndarray:
    """(9, 4096) inverse CDF of the local hour, per sector."""
    cdf = sectors.hour_cdf()
    probs = (np.arange(_HOUR_TABLE_SIZE) + 0.5) / _HOUR_TABLE_SIZE
    return np.stack([np.searchsorted(cdf[s], probs, side="right") for s in range(len(cdf))]).astype(np.int32)


HOUR_TABLE = _hour_table()


def transactions(
    rng: np.random.Generator,
    mer: Merchants,
    d: np.ndarray,
    active_until_day: np.ndarray,
    cal: Calendar,
    volume_scale: float,
    first_txn_id: int,
) -> pa.Table:
    """All transactions of a block. ``d``: (n, months) deviation per month; business runs from the
    registration day (``mer.registered_day``) to the day before ``active_until_day``."""
    n_m, months = d.shape
    s = mer.sector
    n_days = cal.n_days
    # per merchant
    base = sectors.column("daily_txns")[s] * mer.size * VOLUME_NORM * volume_scale
    log_ticket = np.log(sectors.column("ticket_yuan")[s]) + 0.3 * rng.standard_normal(n_m) + 0.1 * mer.enterprise
    ticket_sd = sectors.column("ticket_sigma")[s]
    refund_factor = np.exp(0.4 * rng.standard_normal(n_m) - 0.08)
    loyalty = sectors.column("loyalty")[s] * np.exp(0.15 * rng.standard_normal(n_m))
    mix = np.where(mer.rural[:, None], _RURAL_MIX, _URBAN_MIX)
    mix = rng.gamma(40.0 * mix) + 1e-9
    # per merchant-month
    omega = np.empty((n_m, months))
    shock = rng.standard_normal((n_m, months)) * mer.thin[:, None]
    omega[:, 0] = shock[:, 0]
    for t in range(1, months):
        omega[:, t] = 0.7 * omega[:, t - 1] + 0.714 * shock[:, t]
    level = base[:, None] * np.exp(-HEALTH_ON_VOLUME * d + omega)
    day_sd = 0.10 + 0.25 * expit(2.0 * (d - 1.0)) + 0.8 * mer.thin[:, None]
    p_closed = 0.015 + 0.10 * expit(2.5 * (d - 1.5))
    refund_rate = np.minimum(sectors.column("refund_rate")[s][:, None] * refund_factor[:, None] * np.exp(0.45 * d), 0.5)
    gamma = loyalty[:, None] * np.exp(-0.12 * d)
    # customers: regulars (a fixed set, visited with Zipf-like concentration) and occasional
    # customers (a set that grows month by month); both sized from the expected, not the
    # realised, volume so that the future never shapes the past
    expected_month = base * 30.4
    walk_in_base = sectors.column("walk_in_share")[s]
    walk_in = np.clip(walk_in_base[:, None] * np.exp(0.3 * d), 0.02, 0.98)
    regulars = np.maximum(2, np.ceil(expected_month * (1 - walk_in_base) / _VISITS_PER_REGULAR)).astype(np.int64)
    occasional = np.maximum(
        5, np.ceil(expected_month * walk_in_base * 0.8)[:, None] * np.arange(1, months + 1)[None, :]
    ).astype(np.int64)  # seen by the end of each month
    pool = regulars + occasional[:, -1]
    pool_start = np.concatenate([[0], np.cumsum(pool)[:-1]])
    drmb = np.clip(1.0 + 0.06 * cal.months_since_2023, 0.5, 5.0)
    mm_mix = mix[:, None, :] * np.ones((1, months, 1))
    mm_mix[:, :, 4] *= drmb[None, :]
    cdf = np.cumsum(mm_mix / mm_mix.sum(axis=2, keepdims=True), axis=2).reshape(-1, len(CHANNELS))
    # per merchant-day
    dm = cal.day_month
    sd = day_sd[:, dm].astype(np.float32)
    noise = sd * rng.standard_normal((n_m, n_days), dtype=np.float32) - np.float32(0.5) * sd * sd
    mu = (level[:, dm] * (cal.weekly[s][:, cal.weekday] * cal.yearly[s])).astype(np.float32) * np.exp(noise)
    mu *= rng.random((n_m, n_days), dtype=np.float32) >= p_closed[:, dm].astype(np.float32)
    day = (cal.first_day + np.arange(n_days))[None, :]
    mu *= (day >= mer.registered_day[:, None]) & (day < active_until_day[:, None])
    counts = rng.poisson(mu)
    per_mm = np.add.reduceat(counts, cal.month_first_index, axis=1)
    per_merchant = per_mm.sum(axis=1)
    n = int(per_merchant.sum())
    # rows, in merchant-day order; per-row values are repeats of per-merchant(-month) values
    rep_m = lambda v: np.repeat(v, per_merchant)  # noqa: E731
    rep_mm = lambda v: np.repeat(v.ravel(), per_mm.ravel())  # noqa: E731
    cell = np.repeat(np.arange(n_m * n_days, dtype=np.int64), counts.ravel())
    u = rng.random((7, n), dtype=np.float32)  # hour, refund, channel, customer, anonymous, price, regular
    k = u[0] * np.float32(_HOUR_TABLE_SIZE)
    kk = k.astype(np.int32)
    hour = HOUR_TABLE.ravel()[rep_m(s * _HOUR_TABLE_SIZE) + kk]
    second = hour * 3600 + ((k - kk.astype(np.float32)) * np.float32(3600)).astype(np.int32)
    key = cell * 86400 + second
    key.sort()  # rows keep their cell: only times move within a merchant-day
    ts_us = (key - rep_m(np.arange(n_m) * (n_days * 86400)) + (cal.first_day * 86400 - _UTC_OFFSET_S)) * 1_000_000
    is_refund = u[1] < rep_mm(refund_rate.astype(np.float32))
    amount = np.exp(
        rep_mm((log_ticket[:, None] - HEALTH_ON_TICKET * d).astype(np.float32))
        + rep_m(ticket_sd.astype(np.float32)) * rng.standard_normal(n, dtype=np.float32)
    )
    grain = np.where((u[5] < np.float32(0.6)) & (amount >= 1), np.float32(100), np.float32(1))
    fen = np.clip(np.rint(amount * (100 / grain)) * grain, 1, 1e10).astype(np.int64)
    channel = np.zeros(n, dtype=np.int8)
    for c in range(len(CHANNELS) - 1):
        channel += u[2] >= rep_mm(cdf[:, c].astype(np.float32))
    known = u[4] >= _NULL_CUSTOMER.astype(np.float32)[channel]
    regular = u[6] >= rep_mm(walk_in.astype(np.float32))
    which = np.where(
        regular,
        np.minimum(
            (rep_m(regulars.astype(np.float32)) * np.power(u[3], rep_mm(gamma.astype(np.float32)))).astype(np.int64),
            rep_m(regulars - 1),
        ),
        rep_m(regulars) + (rep_mm(occasional.astype(np.float32)) * u[3]).astype(np.int64),
    )
    cust = rep_m(pool_start) + which
    hashes = hex16(rng.integers(0, np.iinfo(np.int64).max, int(pool.sum()), dtype=np.int64))
    return pa.Table.from_arrays(
        [
            pa.array(np.arange(first_txn_id, first_txn_id + n, dtype=np.int64)),
            fixed_width(rep_m(ascii_rows(mer.ids))),
            pa.array(ts_us, type=pa.int64()).view(SCHEMAS["transactions"].field("ts").type),
            take(TXN_TYPES, is_refund),
            pa.array(fen),
            take(CHANNELS, channel),
            fixed_width(hashes[cust], valid=known),
        ],
        schema=SCHEMAS["transactions"],
    )
