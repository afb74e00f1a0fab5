"""The true PD of the simulator: backward induction agrees with brute-force Monte Carlo of the same dynamics."""

from __future__ import annotations

import numpy as np
import pytest

from simulation import truth
from simulation.dynamics import DEFAULT, Dynamics


def _monte_carlo(
    dyn: Dynamics,
    m: float,
    d0: float,
    arrears: int,
    remaining: int,
    n: int,
    rng: np.random.Generator,
    applicant: bool = False,
) -> tuple[float, float]:
    """Default-within-12-months by simulating the continuous process and the loan chain path by path."""

    def innovation() -> np.ndarray:
        jump = (rng.random(n) < dyn.jump_prob) * (dyn.jump_mean + dyn.jump_sd * rng.standard_normal(n))
        return dyn.sigma * rng.standard_normal(n) + jump - dyn.jump_prob * dyn.jump_mean

    d = np.full(n, d0)
    b = np.full(n, arrears)
    r = np.full(n, remaining)
    out = np.zeros(n, dtype=bool)
    dead = np.zeros(n, dtype=bool)
    weight = np.ones(n)
    steps = truth.HORIZON
    if applicant:  # a loan disbursed in the first month: approval weighs the path, no instalment due yet
        d = dyn.phi * d + innovation()
        weight = dyn.originate(m + d)
        r[:] = 10**6
        steps -= 1
    for _ in range(steps):
        d = dyn.phi * d + innovation()
        x = m + d
        u = rng.random(n)
        live = ~out & ~dead
        p = np.select([b == 0, b == 1, b == 2, b == 3], [dyn.miss(x), dyn.roll(1, x), dyn.roll(2, x), dyn.roll(3, x)])
        hit = live & (u < p)
        ok = live & ~hit
        r = np.where(live, np.maximum(r - 1, 0), r)
        dead |= hit & (b == 3)
        closes = ok & (r == 0)
        b = np.where(hit, b + 1, np.where(ok, 0, b))
        new = out & (u < dyn.originate(x))
        b[new], r[new] = 0, 10**6
        out = (out & ~new) | closes
    est = np.sum(dead * weight) / np.sum(weight)
    se = np.sqrt(np.sum(weight**2 * (dead - est) ** 2)) / np.sum(weight)
    return float(est), float(se)


@pytest.mark.parametrize(
    "group, d0, arrears, remaining",
    [
        (0, 0.0, 0, 30),
        (0, 1.2, 0, 30),
        (5, -0.5, 0, 3),
        (10, 0.5, 1, 5),
        (20, 2.0, 2, 0),
        (35, 0.0, 3, 1),
        (7, 0.3, 1, 1),
        (17, 1.5, 0, 12),
    ],
)
def test_holder_pd_matches_monte_carlo(group, d0, arrears, remaining):
    rng = np.random.default_rng(group)
    m = DEFAULT.group_offsets()[group]
    est, se = _monte_carlo(DEFAULT, m, d0, arrears, remaining, 100_000, rng)
    tables = truth.tables(DEFAULT)
    state = truth.state_index(np.array([arrears]), np.array([remaining]))
    exact = tables.lookup(np.array([group]), np.array([d0]), state)[0]
    assert abs(exact - est) < 4 * se + 0.002, (exact, est, se)


@pytest.mark.parametrize("group, d0", [(0, 0.0), (12, 1.0), (30, -1.0)])
def test_applicant_pd_matches_monte_carlo(group, d0):
    rng = np.random.default_rng(100 + group)
    m = DEFAULT.group_offsets()[group]
    est, se = _monte_carlo(DEFAULT, m, d0, 0, 0, 100_000, rng, applicant=True)
    exact = truth.tables(DEFAULT).lookup(np.array([group]), np.array([d0]), None)[0]
    assert abs(exact - est) < 4 * se + 0.002, (exact, est, se)


def test_kernel_rows_are_distributions_and_pd_rises_with_risk():
    grid = np.linspace(truth.GRID_LO, truth.GRID_HI, truth.GRID_POINTS)
    K = truth.kernel(DEFAULT, grid)
    np.testing.assert_allclose(K.sum(axis=1), 1.0, atol=1e-12)
    tables = truth.tables(DEFAULT)
    current_long = tables.holder[:, truth.state_index(np.array(0), np.array(truth.LONG))]
    assert np.all(np.diff(current_long, axis=1) >= -1e-12)  # worse health, higher PD
    one_behind = tables.holder[:, truth.state_index(np.array(1), np.array(truth.LONG))]
    assert np.all(one_behind > current_long)  # arrears raise PD
    assert np.all((tables.holder >= 0) & (tables.holder <= 1))


def test_a_loan_that_matures_soon_carries_less_risk_than_a_long_one():
    tables = truth.tables(DEFAULT)
    short = tables.holder[:, truth.state_index(np.array(0), np.array(1))]
    long = tables.holder[:, truth.state_index(np.array(0), np.array(truth.LONG))]
    assert np.all(short <= long + 1e-12)


def test_loan_states_follow_the_month_end_reports_through_the_last_month():
    """``state_before[:, k + 1]`` (what the truth at the first day of month k + 1 conditions on) is
    the state of the month-end k reports, for every month including the last one: the extra
    column that gives the truth at the latest snapshot's as_of. No loan starts before its
    merchant may borrow (``MIN_TRADING_MONTHS`` after registration)."""
    from simulation import loans

    rng = np.random.default_rng(3)
    n, months = 3000, 18
    x = np.cumsum(0.2 * rng.standard_normal((n, months + 1)), axis=1) + rng.normal(0.5, 0.8, (n, 1))
    registered = rng.integers(-40, months, n)
    book = loans.simulate_loans(
        DEFAULT,
        rng,
        x,
        rng.random(n) < 0.7,
        np.full(n, 50_000.0),
        rng.random(n) < 0.5,
        np.datetime64("2023-01"),
        registered,
    )
    assert book.state_before.shape == book.remaining_before.shape == (n, months + 1)
    # expected state after month k from its reports: -1 none, 0..3 arrears (from dpd), 4 default
    month = (book.perf_day.astype("datetime64[D]").astype("datetime64[M]") - np.datetime64("2023-01")).astype(np.int64)
    arrears = np.searchsorted([0, 30, 60], book.perf_dpd, side="left")
    status = book.perf_status
    state = np.select([status == 0, status == 1, status == 2], [0, arrears, loans.IN_DEFAULT], loans.NO_LOAN)
    expected = np.full((n, months), loans.NO_LOAN)
    np.maximum.at(expected, (book.merchant[book.perf_loan], month), state)
    np.testing.assert_array_equal(book.state_before[:, 1:], expected)
    assert (book.state_before[:, -1] >= 0).sum() > 100
    # first loans wait for three months of trading after registration
    disbursed = (book.disbursed_day.astype("datetime64[D]").astype("datetime64[M]") - np.datetime64("2023-01")).astype(
        np.int64
    )
    assert np.all(disbursed >= registered[book.merchant] + loans.MIN_TRADING_MONTHS)
    assert np.any(disbursed < 0) and np.any(registered[book.merchant] >= 0)
