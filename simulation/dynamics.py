"""The latent risk of a merchant and the monthly loan transitions it drives.

Risk index of merchant ``i`` in month ``t``: ``x[i,t] = m[g(i)] + d[i,t]`` where

* ``m[g]`` is a fixed offset of the merchant's group ``g`` = (sector, business form, urban/rural):
  sector ``risk_offset`` + form offset + rural offset;
* ``d`` is an AR(1) deviation ("ill health"; health is ``-d``) with heavy-tailed innovations:
  ``d[t] = phi * d[t-1] + e[t]``, ``e = s_i*eps_i + s_s*eta[sector,t] + s_r*nu[region,t] + J - pi*mu_J``,
  standard normal ``eps, eta, nu`` (idiosyncratic, sector-wide, regional) and an adverse jump
  ``J ~ Bernoulli(pi) * N(mu_J, sd_J)``. For one merchant the innovations are i.i.d. over time
  (the common shocks only correlate merchants), so ``d`` alone is a Markov state.
* ``downturn`` adds a broad shock: during ``downturn_months`` every ``e`` is shifted up by
  ``downturn_push`` times the sector's exposure. The true PD does not anticipate it (it is a
  surprise to everybody), so in that scenario realised defaults run above the truth around it.

Each month-end an open loan moves by (probabilities evaluated at that month's ``x``):
current --miss(x)--> 1 month in arrears --roll1(x)--> 2 --roll2(x)--> 3 --roll3(x)--> default (90+ dpd);
a delinquent loan that does not roll cures (pays all arrears) and is current again, or closed
when its term is over. A current loan whose last instalment is paid closes. A borrower
without a loan gets a new one in a month with probability ``originate(x)`` (bank approval
depends on the risk). A merchant whose loan defaulted never borrows again.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit, ndtr

from simulation import sectors


@dataclass(frozen=True)
class Dynamics:
    phi: float = 0.95
    sigma_idio: float = 0.20
    sigma_sector: float = 0.045
    sigma_region: float = 0.04
    jump_prob: float = 0.015
    jump_mean: float = 1.0
    jump_sd: float = 0.4
    miss_base: float = -4.4
    """Logit of the monthly miss probability at x = 0."""
    miss_slope: float = 1.0
    roll_base: tuple[float, float, float] = (-0.2, 0.3, 0.8)
    roll_slope: float = 0.8
    individual_offset: float = 0.15
    enterprise_offset: float = -0.15
    rural_offset: float = 0.10
    originate_rate: float = 0.12
    """Monthly chance that a borrower without a loan applies."""
    approve_centre: float = 1.0
    approve_scale: float = 0.6
    downturn_push: float = 0.15
    downturn_length: int = 6

    @property
    def sigma(self) -> float:
        """Sd of the Gaussian part of one month's innovation."""
        return float(np.sqrt(self.sigma_idio**2 + self.sigma_sector**2 + self.sigma_region**2))

    @property
    def stationary_sd(self) -> float:
        """Sd of ``d`` in the long run (baseline)."""
        p, mj, sj = self.jump_prob, self.jump_mean, self.jump_sd
        var_e = self.sigma**2 + p * (mj**2 + sj**2) - (p * mj) ** 2
        return float(np.sqrt(var_e / (1 - self.phi**2)))

    def miss(self, x: np.ndarray) -> np.ndarray:
        """Monthly probability that a current loan misses its instalment."""
        return expit(self.miss_base + self.miss_slope * x)

    def roll(self, a: int, x: np.ndarray) -> np.ndarray:
        """Probability that a loan ``a`` months in arrears (1..3) stays unpaid another month."""
        return expit(self.roll_base[a - 1] + self.roll_slope * x)

    def originate(self, x: np.ndarray) -> np.ndarray:
        """Monthly probability that a borrower without a loan gets a new one (applies and is approved)."""
        return self.originate_rate * expit(-(x - self.approve_centre) / self.approve_scale)

    def innovation_cdf(self, e: np.ndarray) -> np.ndarray:
        """CDF of one month's innovation ``e`` of ``d`` (baseline): a two-component normal mixture."""
        p, mj, sj, s = self.jump_prob, self.jump_mean, self.jump_sd, self.sigma
        shift = -p * mj
        return (1 - p) * ndtr((e - shift) / s) + p * ndtr((e - shift - mj) / np.sqrt(s**2 + sj**2))

    def group_offsets(self) -> np.ndarray:
        """Offset ``m[g]`` for group ``g = sector*4 + form*2 + rural`` (form 0 individual, 1 enterprise)."""
        sec = sectors.column("risk_offset")
        form = np.array([self.individual_offset, self.enterprise_offset])
        rural = np.array([0.0, self.rural_offset])
        return (sec[:, None, None] + form[None, :, None] + rural[None, None, :]).ravel()


DEFAULT = Dynamics()


def group_index(sector: np.ndarray, enterprise: np.ndarray, rural: np.ndarray) -> np.ndarray:
    """Group number used by ``Dynamics.group_offsets`` and the truth tables."""
    return sector.astype(np.int64) * 4 + enterprise.astype(np.int64) * 2 + rural.astype(np.int64)


def common_shocks(
    dyn: Dynamics, rng: np.random.Generator, months: int, n_regions: int, scenario: str, panel_start: int = 0
) -> dict[str, np.ndarray]:
    """Market-wide draws shared by all merchants: sector and regional shocks, the broad downturn push.

    ``months`` counts every simulated month; the downturn falls in the panel, the months from
    ``panel_start`` on (the ones before are history).
    """
    n_sec = len(sectors.SECTORS)
    sector = rng.standard_normal((months, n_sec)) * dyn.sigma_sector
    region = rng.standard_normal((months, n_regions)) * dyn.sigma_region
    push = np.zeros((months, n_sec))
    if scenario == "downturn":
        first = panel_start + downturn_start(months - panel_start)
        last = min(months, first + dyn.downturn_length)
        push[first:last] = dyn.downturn_push * sectors.column("downturn_exposure")[None, :]
    return {"sector": sector, "region": region, "push": push}


def downturn_start(months: int) -> int:
    """Month of the panel (``months`` long) the broad shock of ``downturn`` begins: a little before its middle."""
    return max(1, months // 2 - 3)


def latent_paths(
    dyn: Dynamics,
    rng: np.random.Generator,
    d0: np.ndarray,
    sector: np.ndarray,
    region: np.ndarray,
    shocks: dict[str, np.ndarray],
    entry: np.ndarray | None = None,
) -> np.ndarray:
    """(n, months+1) deviation ``d``: column 0 is month -1 (the state before the first month).

    ``entry``: per merchant, the column where its path starts afresh at ``d0`` (an entrant's
    registration month + 1), or 0 for a path that starts at column 0. Before that column the
    path is never used.
    """
    n = len(d0)
    months = shocks["sector"].shape[0]
    eps = rng.standard_normal((n, months)) * dyn.sigma_idio
    jumps = (rng.random((n, months)) < dyn.jump_prob) * (dyn.jump_mean + dyn.jump_sd * rng.standard_normal((n, months)))
    e = (
        eps
        + shocks["sector"][:, sector].T
        + shocks["region"][:, region].T
        + jumps
        - dyn.jump_prob * dyn.jump_mean
        + shocks["push"][:, sector].T
    )
    d = np.empty((n, months + 1))
    d[:, 0] = d0
    restart = None if entry is None else entry > 0
    for t in range(months):
        d[:, t + 1] = dyn.phi * d[:, t] + e[:, t]
        if restart is not None:
            fresh = restart & (entry == t + 1)
            d[fresh, t + 1] = d0[fresh]
    return d
