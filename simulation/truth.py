"""The true 12-month PD: default probability computed from the simulator's own dynamics.

``true_pd_12m`` at ``as_of`` (first day of month ``t``) is the probability that the merchant has a
loan report with status ``default`` (90+ dpd) or ``written_off`` on one of the twelve month-ends
``t .. t+11`` (the label window (as_of, as_of + 12 months]), given only the state at ``as_of``:
its group offset ``m``, its deviation ``d[t-1]`` and the state of its loan at the end of month
``t-1``:

* holding a loan (current or 1-3 months in arrears, ``r`` instalment months left):
  ``V_12(state, d)``;
* a loan already in default: 1;
* no loan: the PD of a loan disbursed during month ``t`` (the applicants of the training spine),
  ``A(d) = E[originate(x_t) V_11(current, long, d_t)] / E[originate(x_t)]``, where the bank's
  approval in month ``t`` tilts ``d_t``. For a merchant that does not borrow it is the PD it would
  have if it did.

``V_n`` comes from exact backward induction over the Markov chain of ``dynamics`` (loan
states x remaining term, including the chance that a loan closes and a new one is taken
within the window), integrated over ``d`` on a grid of ``GRID_POINTS`` points with the true
innovation mixture (cell probabilities from its CDF) and interpolated linearly in ``d``. There is
no Monte Carlo error. The discretisation error is below 1e-4 in absolute PD (against a grid four
times finer), and brute-force Monte Carlo of the continuous process (100,000 paths per state,
tests/unit/test_simulation_truth.py) agrees within its standard error of about 0.001. Future
sector, regional and broad shocks are integrated out, never peeked at.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from simulation.dynamics import Dynamics

HORIZON = 12
LONG = 13
"""Remaining term at or beyond which a loan cannot mature inside the window."""
N_R = LONG + 1
N_LOAN_STATES = 4 * N_R
"""Loan states ``b * N_R + r``: ``b`` = months in arrears 0..3, ``r`` = instalment months left 0..13."""
OUT = N_LOAN_STATES
DEF = N_LOAN_STATES + 1
GRID_LO, GRID_HI, GRID_POINTS = -4.5, 7.5, 301


def state_index(arrears: np.ndarray, remaining: np.ndarray) -> np.ndarray:
    """Row of the truth table for a loan ``arrears`` months behind with ``remaining`` instalments left."""
    return arrears.astype(np.int64) * N_R + np.clip(remaining, 0, LONG).astype(np.int64)


@dataclass(frozen=True)
class TruthTables:
    grid: np.ndarray
    """(G,) grid of ``d``."""
    holder: np.ndarray
    """(groups, N_LOAN_STATES, G): ``V_12`` for a loan held at ``as_of``."""
    applicant: np.ndarray
    """(groups, G): PD of a loan disbursed in the ``as_of`` month."""

    def lookup(self, group: np.ndarray, d: np.ndarray, state: np.ndarray | None) -> np.ndarray:
        """PD for each (group, d, loan state); ``state`` -1 (or None) means no loan held."""
        pos = np.clip((d - self.grid[0]) / (self.grid[1] - self.grid[0]), 0, len(self.grid) - 1 - 1e-9)
        lo = pos.astype(np.int64)
        w = pos - lo
        app = self.applicant[group, lo] * (1 - w) + self.applicant[group, lo + 1] * w
        if state is None:
            return app
        s = np.maximum(state, 0)
        held = self.holder[group, s, lo] * (1 - w) + self.holder[group, s, lo + 1] * w
        return np.where(state >= 0, held, app)


def kernel(dyn: Dynamics, grid: np.ndarray) -> np.ndarray:
    """K[i, j] = P(d' in cell j | d = grid[i]) for the baseline innovation mixture."""
    edges = np.concatenate([[-np.inf], (grid[1:] + grid[:-1]) / 2, [np.inf]])
    cdf = dyn.innovation_cdf(edges[None, :] - dyn.phi * grid[:, None])
    return np.diff(cdf, axis=1)


def _transitions() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For every state: which probability applies (0 miss, 1-3 roll, 4 originate) and the two destinations."""
    n = N_LOAN_STATES + 1
    kind = np.zeros(n, dtype=np.int64)
    hit = np.zeros(n, dtype=np.int64)  # destination with probability p
    other = np.zeros(n, dtype=np.int64)  # destination with probability 1 - p
    for b in range(4):
        for r in range(N_R):
            s = b * N_R + r
            r1 = LONG if r == LONG else max(r - 1, 0)
            if b == 0:
                kind[s] = 0
                hit[s] = 1 * N_R + r1
                other[s] = OUT if (r1 == 0) else 0 * N_R + r1
            else:
                kind[s] = b
                hit[s] = DEF if b == 3 else (b + 1) * N_R + r1
                other[s] = OUT if r1 == 0 else 0 * N_R + r1
    kind[OUT], hit[OUT], other[OUT] = 4, 0 * N_R + LONG, OUT
    return kind, hit, other


@lru_cache(maxsize=4)
def tables(dyn: Dynamics) -> TruthTables:
    """Backward induction for every group; cached per parameter set (about a second)."""
    grid = np.linspace(GRID_LO, GRID_HI, GRID_POINTS)
    K = kernel(dyn, grid)
    m = dyn.group_offsets()
    x = m[:, None] + grid[None, :]  # (groups, G): risk index at each next-month grid point
    probs = np.stack([dyn.miss(x), dyn.roll(1, x), dyn.roll(2, x), dyn.roll(3, x), dyn.originate(x)])
    kind, hit, other = _transitions()
    p = probs[kind].transpose(1, 0, 2)  # (groups, states, G)
    n_groups, n_states = len(m), N_LOAN_STATES + 1
    V = np.zeros((n_groups, n_states + 1, GRID_POINTS))  # last row: DEF, worth 1
    V[:, DEF] = 1.0
    v11_long = None
    for n in range(1, HORIZON + 1):
        U = p * V[:, hit] + (1 - p) * V[:, other]
        V_new = np.empty_like(V)
        V_new[:, :n_states] = (U.reshape(-1, GRID_POINTS) @ K.T).reshape(n_groups, n_states, GRID_POINTS)
        V_new[:, DEF] = 1.0
        V = V_new
        if n == HORIZON - 1:
            v11_long = V[:, 0 * N_R + LONG].copy()
    q = probs[4]
    applicant = ((q * v11_long) @ K.T) / (q @ K.T)
    return TruthTables(grid=grid, holder=V[:, :N_LOAN_STATES].copy(), applicant=applicant)
