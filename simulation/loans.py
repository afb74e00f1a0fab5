"""Micro-loans and their month-end performance, driven month by month by the latent risk.

Implements the loan chain of ``simulation.dynamics`` exactly as ``simulation.truth`` integrates
it: at most one open loan per merchant; instalments fall due on the loan's due day (10th-27th)
of each month after disbursement, so 1/2/3 months in arrears read as 1-21 / 32-52 / 62-82 days
past due and 4 months as 92+ (``default``); a defaulted loan is written off 3-9 months later.
Borrowers who already hold a loan when the window opens start current with a random age. A
lender wants ``MIN_TRADING_MONTHS`` months of trading since registration before a first loan
(opening loans included), so no loan is disbursed before its merchant was registered.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit

from simulation.dynamics import Dynamics

PRODUCTS = ("term_loan", "revenue_based")
STATUSES = ("current", "delinquent", "default", "written_off", "closed")
N_LENDERS = 12
NO_LOAN = -1
IN_DEFAULT = 4
"""End-of-month loan state: -1 none, 0..3 months in arrears, 4 in default."""
MIN_TRADING_MONTHS = 3
"""Calendar months from the registration month to the first month a loan can be disbursed."""


@dataclass
class LoanBook:
    """A block's loans (one row per loan) and month-end reports, plus per merchant-month states."""

    merchant: np.ndarray  # local merchant index
    seq: np.ndarray  # loan number within the merchant
    product: np.ndarray
    disbursed_day: np.ndarray  # epoch day
    principal_fen: np.ndarray
    term: np.ndarray
    rate: np.ndarray
    lender: np.ndarray
    perf_loan: np.ndarray  # index into the loan rows
    perf_day: np.ndarray  # epoch day of the month-end report
    perf_dpd: np.ndarray
    perf_outstanding: np.ndarray
    perf_status: np.ndarray  # index into STATUSES
    state_before: np.ndarray
    """(n, months+1): loan state at the end of month t-1 (-1 none, 0..3 arrears, 4 default);
    column ``months`` is the state after the last simulated month."""
    remaining_before: np.ndarray
    """(n, months+1): instalment months left at the end of month t-1."""
    default_month: np.ndarray
    """Month of a merchant's first default, or -1."""


def _month_first(start_month: np.datetime64, k: np.ndarray) -> np.ndarray:
    """Epoch day of the first day of simulated month(s) ``k`` (any integers)."""
    return (start_month + k.astype("timedelta64[M]")).astype("datetime64[D]").astype(np.int64)


def simulate_loans(
    dyn: Dynamics,
    rng: np.random.Generator,
    x: np.ndarray,
    borrower: np.ndarray,
    monthly_sales_yuan: np.ndarray,
    sector_revenue_ok: np.ndarray,
    start_month: np.datetime64,
    registered_month: np.ndarray | None = None,
) -> LoanBook:
    """Run the loan chain for one block. ``x``: (n, months+1) risk index, column 0 = month -1.

    ``registered_month``: month of each merchant's registration, counted from month 0 (negative
    before it; None: long before); a first loan comes ``MIN_TRADING_MONTHS`` later at the earliest.
    """
    n, months = x.shape[0], x.shape[1] - 1
    first_loan = (
        np.full(n, -(10**6), dtype=np.int64)
        if registered_month is None
        else registered_month.astype(np.int64) + MIN_TRADING_MONTHS
    )
    # the book at the end of month -1: borrowers hold a loan with a chance that rises with approval,
    # disbursed in month -age0 (never before the merchant could borrow)
    has0 = borrower & (rng.random(n) < 0.45 * expit(-(x[:, 0] - dyn.approve_centre) / dyn.approve_scale))
    term0 = _draw_terms(rng, sector_revenue_ok)
    age0 = np.minimum(1 + (rng.random(n) * (term0[1] - 1)).astype(np.int64), -first_loan)
    has0 &= age0 >= 1

    loans: dict[str, list] = {
        k: [] for k in ("merchant", "seq", "product", "disb_month", "due", "principal", "term", "rate", "lender")
    }
    cur = np.full(n, -1, dtype=np.int64)  # index of the merchant's open loan
    arrears = np.zeros(n, dtype=np.int64)
    remaining = np.zeros(n, dtype=np.int64)
    open_ = np.zeros(n, dtype=bool)
    seq = np.zeros(n, dtype=np.int64)
    writeoff_month = np.full(n, -1, dtype=np.int64)
    default_month = np.full(n, -1, dtype=np.int64)
    n_loans = 0

    def originate(mask: np.ndarray, month: int, xk: np.ndarray, product_term=None, age=None) -> None:
        nonlocal n_loans
        idx = np.flatnonzero(mask)
        if len(idx) == 0:
            return
        product, term = _draw_terms(rng, sector_revenue_ok[idx]) if product_term is None else product_term
        if product_term is not None:
            product, term = product[idx], term[idx]
        disb = np.full(len(idx), month, dtype=np.int64) if age is None else month - age[idx]
        mult = rng.uniform(1.0, 3.0, len(idx)) * np.exp(-0.25 * xk[idx])
        principal = np.clip(np.round(monthly_sales_yuan[idx] * mult / 1000.0), 5, 3000) * 100_000
        rate = 0.045 + 0.05 * expit(xk[idx] + 0.7 * rng.standard_normal(len(idx))) + 0.025 * product
        loans["merchant"].append(idx)
        loans["seq"].append(seq[idx].copy())
        loans["product"].append(product)
        loans["disb_month"].append(disb)
        loans["due"].append(rng.integers(10, 28, len(idx)))
        loans["principal"].append(principal.astype(np.int64))
        loans["term"].append(term)
        loans["rate"].append(np.round(np.clip(rate, 0.03, 0.24), 4))
        loans["lender"].append(np.minimum((rng.pareto(1.2, len(idx))).astype(np.int64), N_LENDERS - 1))
        seq[idx] += 1
        cur[idx] = n_loans + np.arange(len(idx))
        n_loans += len(idx)
        open_[idx] = True
        arrears[idx] = 0
        remaining[idx] = term if age is None else term - age[idx]

    originate(has0, 0, x[:, 0], product_term=term0, age=age0)
    state_before = np.full((n, months + 1), NO_LOAN, dtype=np.int8)
    remaining_before = np.zeros((n, months + 1), dtype=np.int16)
    rows: dict[str, list] = {"loan": [], "month": [], "arrears": [], "status": []}

    for k in range(months):
        state_before[:, k] = np.where(open_, np.minimum(arrears, IN_DEFAULT), NO_LOAN)
        remaining_before[:, k] = np.clip(remaining, 0, 32767)
        xk = x[:, k + 1]
        u = rng.random(n)
        live = open_ & (arrears < IN_DEFAULT)
        was_out = ~open_
        # loans in default age one month; written off when their time comes
        in_def = open_ & (arrears >= IN_DEFAULT)
        arrears[in_def] += 1
        wo = in_def & (writeoff_month == k)
        # current loans miss or pay; delinquent ones roll or cure
        p = np.select(
            [arrears == 0, arrears == 1, arrears == 2, arrears == 3],
            [dyn.miss(xk), dyn.roll(1, xk), dyn.roll(2, xk), dyn.roll(3, xk)],
            0.0,
        )
        hit = live & (u < p)
        remaining[live] = np.maximum(remaining[live] - 1, 0)
        cure_or_pay = live & ~hit
        closes = cure_or_pay & (remaining == 0)
        arrears[hit] += 1
        arrears[cure_or_pay] = 0
        new_default = hit & (arrears == IN_DEFAULT)
        default_month[new_default] = k
        writeoff_month[new_default] = k + rng.integers(3, 10, int(new_default.sum()))
        status = np.select([closes, wo, arrears >= IN_DEFAULT, arrears > 0], [4, 3, 2, 1], 0)
        report = open_.copy()
        rows["loan"].append(cur[report])
        rows["month"].append(np.full(int(report.sum()), k))
        rows["arrears"].append(arrears[report].copy())
        rows["status"].append(status[report])
        ended = closes | wo
        open_[ended] = False
        cur[ended] = -1
        # borrowers without a loan since last month may get one (never after a default)
        eligible = was_out & borrower & (default_month < 0) & (first_loan <= k)
        new = eligible & (rng.random(n) < dyn.originate(xk))
        originate(new, k, xk)
        rows["loan"].append(cur[new])
        rows["month"].append(np.full(int(new.sum()), k))
        rows["arrears"].append(np.zeros(int(new.sum()), dtype=np.int64))
        rows["status"].append(np.zeros(int(new.sum()), dtype=np.int64))

    state_before[:, months] = np.where(open_, np.minimum(arrears, IN_DEFAULT), NO_LOAN)
    remaining_before[:, months] = np.clip(remaining, 0, 32767)
    cat = {k: (np.concatenate(v) if v else np.zeros(0, dtype=np.int64)) for k, v in loans.items()}
    r = {k: np.concatenate(v) for k, v in rows.items()}
    disb_first = _month_first(start_month, cat["disb_month"])
    perf = _performance(cat, r, start_month)
    return LoanBook(
        merchant=cat["merchant"],
        seq=cat["seq"],
        product=cat["product"],
        disbursed_day=disb_first + cat["due"] - 1,
        principal_fen=cat["principal"],
        term=cat["term"],
        rate=cat["rate"].astype(np.float64),
        lender=cat["lender"],
        perf_loan=r["loan"],
        perf_day=perf["day"],
        perf_dpd=perf["dpd"],
        perf_outstanding=perf["outstanding"],
        perf_status=r["status"],
        state_before=state_before,
        remaining_before=remaining_before,
        default_month=default_month,
    )


def _draw_terms(rng: np.random.Generator, revenue_ok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Product (0 term loan, 1 revenue-based) and term in months; every term is at least 12."""
    n = len(revenue_ok)
    product = (revenue_ok & (rng.random(n) < 0.35)).astype(np.int64)
    term = np.where(product == 1, 12, np.array([12, 24, 36])[np.searchsorted([0.55, 0.85], rng.random(n))])
    return product, term


def _performance(
    loans: dict[str, np.ndarray], rows: dict[str, np.ndarray], start_month: np.datetime64
) -> dict[str, np.ndarray]:
    """Report date, days past due and outstanding principal of every month-end report."""
    li, k, a, status = rows["loan"], rows["month"], rows["arrears"], rows["status"]
    day = _month_first(start_month, k + 1) - 1
    due = loans["due"][li]
    oldest_unpaid = _month_first(start_month, k - a + 1) + due - 1
    dpd = np.where(a > 0, day - oldest_unpaid, 0)
    term = loans["term"][li]
    paid = np.clip(k - loans["disb_month"][li] - a, 0, term)
    principal = loans["principal"][li].astype(np.float64)
    i = loans["rate"][li] / 12.0
    growth_t = (1 + i) ** term
    annuity = principal * (growth_t - (1 + i) ** paid) / (growth_t - 1)
    linear = principal * (1 - paid / term)
    outstanding = np.where(loans["product"][li] == 1, linear, annuity)
    outstanding = np.where(status == 4, 0.0, outstanding)
    return {"day": day, "dpd": dpd.astype(np.int64), "outstanding": np.round(outstanding).astype(np.int64)}
