"""The simulator's own demand factors per sector x province x month (``demand.parquet``, evaluation only).

Expected recorded sales of merchant ``i`` (sector ``s``, county ``r``) on day ``k`` of month ``t``
are ``base_i x exp(-0.30 d[i,t] + omega[i,t]) x weekly[s, weekday(k)] x yearly[s, k]`` sales at a
mean ticket ``ticket_i x exp(-0.05 d[i,t])`` (``simulation.transactions``). Split the ill health
``d = c + u`` into its common part ``c[s,r,t] = phi c[s,r,t-1] + eta[s,t] + nu[r,t] + push[s,t]``
(``c = 0`` before the first simulated month; ``simulation.dynamics``: sector-wide and regional
shocks and the downturn push, the draws every merchant of the cell shares) and the merchant's own
part ``u``. What every merchant of a sector in a county shares is then the month's expected
sales multiplier

    demand[s, r, t] = sum over the month's days k of weekly[s, weekday(k)] x yearly[s, k]
                      x exp(-(0.30 + 0.05) c[s, r, t])

(``demand_count``: the same with ``exp(-0.30 c)``, the multiplier of the number of sales). A
province's factor is the mean of its counties' factors weighted by their expected share of the
sector's sales (``weight``: merchants per county, business size, enterprise share and ticket
premium, urban or rural), so it moves exactly as expected sales of the province's sector move
when only the market moves. Month length is in the factor: monthly sales add up days.

The factors are computed from the market-wide draws alone (``SeedSequence([seed, 0])``) after the
tables are written, so writing them changes no byte of the six raw tables or ``truth.parquet``.
Like ``truth.parquet``, nothing in the feature, training or scoring path reads this file.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pyarrow as pa

from simulation import calendar, regions, sectors
from simulation.dynamics import Dynamics
from simulation.merchants import ENTERPRISE_SHARE
from simulation.transactions import HEALTH_ON_TICKET, HEALTH_ON_VOLUME, Calendar

SCHEMA = pa.schema(
    [
        ("sector", pa.large_string()),
        ("province", pa.large_string()),
        ("month", pa.large_string()),
        ("days", pa.int16()),
        ("rhythm", pa.float64()),
        ("shock_factor", pa.float64()),
        ("demand", pa.float64()),
        ("demand_count", pa.float64()),
        ("weight", pa.float64()),
    ]
)
"""``rhythm``: mean daily weekly x yearly multiplier of the month; ``shock_factor``: weighted mean of
``exp(-0.35 c)`` over the province's counties; ``demand = days x rhythm x shock_factor``;
``weight``: the province's expected share of the sector's national sales (sums to 1 per sector
and month, so a national factor is ``sum(weight x demand)``)."""


def county_weights() -> np.ndarray:
    """(sectors, counties) expected share of a sector's recorded sales amount in each county.

    Mirrors ``simulation.merchants.draw_merchants`` and ``simulation.transactions``: merchants per
    county, mean size by form (enterprise 1.6, individual 0.85) and place (rural 0.7, urban 1.15),
    the enterprise ticket premium ``exp(0.1)`` and the mean of the recorded-share noise ``exp(thin^2/2)``.
    """
    rural = regions.RURAL
    p_ent = np.array([ENTERPRISE_SHARE[n] for n in sectors.NAMES])[:, None] * np.where(rural, 0.6, 1.2)[None, :]
    place = np.where(rural, 0.7, 1.15)[None, :]
    thin_ent = 0.05 + np.where(rural, 0.12, 0.0)
    thin_ind = 0.15 + np.where(rural, 0.12, 0.0)
    ent = 1.6 * np.exp(0.1) * np.exp(0.5 * thin_ent**2)
    ind = 0.85 * np.exp(0.5 * thin_ind**2)
    w = regions.WEIGHTS[None, :] * place * (p_ent * ent + (1 - p_ent) * ind)
    return w / w.sum(axis=1, keepdims=True)


def common_component(dyn: Dynamics, shocks: dict[str, np.ndarray]) -> np.ndarray:
    """(months, sectors, counties) common part ``c`` of the ill health ``d`` at the end of each month."""
    months, n_sec = shocks["sector"].shape
    c = np.zeros((months, n_sec, shocks["region"].shape[1]))
    prev = np.zeros(c.shape[1:])
    for t in range(months):
        prev = dyn.phi * prev + (shocks["sector"][t] + shocks["push"][t])[:, None] + shocks["region"][t][None, :]
        c[t] = prev
    return c


def demand_table(dyn: Dynamics, shocks: dict[str, np.ndarray], cal: Calendar, first: date) -> pa.Table:
    """One row per sector x province x simulated month, from the transactions' own calendar ``cal``
    (``first``: the first simulated day)."""
    months = shocks["sector"].shape[0]
    grid = calendar.month_grid(first, months)
    daily = cal.weekly[:, cal.weekday] * cal.yearly  # (sectors, days): the multipliers the transactions use
    rhythm = np.add.reduceat(daily, cal.month_first_index, axis=1) / grid["days"][None, :]  # (sectors, months)
    c = common_component(dyn, shocks)
    amount = np.exp(-(HEALTH_ON_VOLUME + HEALTH_ON_TICKET) * c)
    count = np.exp(-HEALTH_ON_VOLUME * c)
    w = county_weights()
    provinces = sorted({regions.province(code) for code in regions.CODES})
    member = np.array([[regions.province(code) == p for code in regions.CODES] for p in provinces], dtype=float)
    w_prov = w @ member.T  # (sectors, provinces)
    shock_amount = np.einsum("tsr,sr,pr->tsp", amount, w, member) / w_prov[None]
    shock_count = np.einsum("tsr,sr,pr->tsp", count, w, member) / w_prov[None]
    labels = [f"{y:04d}-{m:02d}" for y, m in zip(grid["year"], grid["month"], strict=True)]
    n_sec, n_prov = len(sectors.NAMES), len(provinces)
    t_idx, s_idx, p_idx = (a.ravel() for a in np.meshgrid(np.arange(months), np.arange(n_sec), np.arange(n_prov)))
    order = np.lexsort((t_idx, p_idx, s_idx))
    t_idx, s_idx, p_idx = t_idx[order], s_idx[order], p_idx[order]
    days = grid["days"][t_idx]
    base = days * rhythm[s_idx, t_idx]
    return pa.Table.from_arrays(
        [
            pa.array([sectors.NAMES[s] for s in s_idx], type=pa.large_string()),
            pa.array([provinces[p] for p in p_idx], type=pa.large_string()),
            pa.array([labels[t] for t in t_idx], type=pa.large_string()),
            pa.array(days.astype(np.int16)),
            pa.array(rhythm[s_idx, t_idx]),
            pa.array(shock_amount[t_idx, s_idx, p_idx]),
            pa.array(base * shock_amount[t_idx, s_idx, p_idx]),
            pa.array(base * shock_count[t_idx, s_idx, p_idx]),
            pa.array(w_prov[s_idx, p_idx]),
        ],
        schema=SCHEMA,
    )
