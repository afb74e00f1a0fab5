"""``simulate_market``: the whole synthetic market, generated in blocks of merchants.

A market with a past: the panel's ``months`` months from ``start`` are preceded by
``HISTORY_MONTHS`` months of history, so the tables span [start - 12 months, start + months) and
the first panel ``as_of`` (``start``) already has a full year of data behind it. Established
merchants do business, borrow, draw complaints and public records from the first day of the
history; entrants (``simulation.merchants.ENTRY_RATE`` a year, registered during the history or
the panel) only from their registration day, with the poor health of a new business; a
business that shuts after a default records nothing more. ``truth.parquet`` has one row per
merchant and panel ``as_of`` (the first day of months start .. start + months, the last one the
day after the data, i.e. the latest snapshot's ``as_of``) for every merchant registered before it.
``demand.parquet`` holds the demand factors per sector x province x month (``simulation.demand``).

Blocks hold about ``BLOCK_ROWS`` expected transactions (64 to 2,048 merchants, a function of
months and ``volume_scale`` only), so memory does not grow with the number of merchants: peak
resident memory was 0.54 GB for 5,000 merchants x 24 months at full volume (and, with blocks
twice as large, 0.80 GB for both 5,000 and 15,000 merchants).
Each block draws from its own random streams (``SeedSequence([seed, 1, block, component])``)
and the market-wide shocks from ``SeedSequence([seed, 0])``, so the output depends only on the
arguments. Ids are numbered in block order.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from core.files import atomic_path
from core.progress import ProgressFn
from simulation import calendar, demand, dynamics, events, loans, regions, sectors, truth
from simulation.arrow import (
    SCHEMAS,
    TABLES,
    TIMESTAMP_COLUMNS,
    ascii_rows,
    digits_ids,
    fixed_width,
    schema,
    take,
)
from simulation.defects import corrupt
from simulation.merchants import REVENUE_BASED_SECTORS, Merchants, draw_merchants
from simulation.sink import ParquetSink
from simulation.transactions import VOLUME_NORM, Calendar, transactions

HISTORY_MONTHS = 12
"""Months simulated before the first panel month (``start``): a full year of history at its first ``as_of``."""
BLOCK_ROWS = 1_000_000
"""Expected transaction rows per block of merchants."""
SCENARIOS = ("baseline", "downturn")
CLOSE_AFTER_DEFAULT = 0.6
"""Chance that a merchant whose loan defaults shuts its business within three months."""


@dataclass(frozen=True)
class _Setup:
    dyn: dynamics.Dynamics
    truth: truth.TruthTables
    shocks: dict[str, np.ndarray]
    cal: Calendar
    months: int
    """Every simulated month: history and panel."""
    history: int
    start: date
    """First day of the first simulated (history) month."""
    month_first: np.ndarray
    month_days: np.ndarray
    window_end_s: int
    volume_scale: float
    defect_rate: float
    salt: str
    entropy: int


def simulate_market(
    out: Path,
    *,
    merchants: int,
    months: int,
    seed: int,
    defect_rate: float = 0.0,
    scenario: str = "baseline",
    volume_scale: float = 1.0,
    start: date = date(2023, 1, 1),
    progress: ProgressFn | None = None,
) -> dict:
    """Write the six raw tables, ``truth.parquet`` and ``demand.parquet`` into ``out``; return row counts and timing.

    ``defect_rate``: share of rows corrupted (0 for a clean market). ``scenario``: ``baseline`` or
    ``downturn`` (a broad shock a little before the middle of the panel). ``volume_scale`` thins
    recorded transactions only (loan sizes still follow the unthinned business). ``start``: first
    day of the first panel month; the data begin ``HISTORY_MONTHS`` months earlier and end on the
    last day of panel month ``months - 1``.
    """
    if merchants < 1 or months < 1:
        raise ValueError("merchants and months must be at least 1")
    if scenario not in SCENARIOS:
        raise ValueError(f"scenario must be one of {SCENARIOS}, not {scenario!r}")
    if not 0.0 <= defect_rate <= 0.5:
        raise ValueError("defect_rate must be between 0 and 0.5")
    if volume_scale <= 0:
        raise ValueError("volume_scale must be positive")
    if start.day != 1:
        raise ValueError(f"start must be the first day of a month, not {start}")
    if merchants >= 90_000_000:
        raise ValueError("at most 89,999,999 merchants (ids from M90000000 mark unknown merchants)")
    t0, cpu0 = time.perf_counter(), time.thread_time()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    setup = _setup(seed, months, scenario, volume_scale, start, defect_rate)
    strings = defect_rate > 0
    schemas = {name: schema(name, strings and name in TIMESTAMP_COLUMNS) for name in TABLES}
    schemas["truth"] = SCHEMAS["truth"]
    sink = ParquetSink(out, schemas)
    counters = {"txn": 1, "complaint": 1, "record": 1, "entrants": 0}
    defects = {name: {} for name in TABLES}
    block = block_size(months + HISTORY_MONTHS, volume_scale)
    try:
        for b, lo in enumerate(range(0, merchants, block)):
            index = np.arange(lo, min(lo + block, merchants), dtype=np.int64)
            tables = _block(setup, b, index, counters)
            if defect_rate > 0:
                rng = _rng(setup.entropy, 1, b, 99)
                for name in TABLES:
                    tables[name], counts = corrupt(name, tables[name], defect_rate, rng)
                    for kind, k in counts.items():
                        defects[name][kind] = defects[name].get(kind, 0) + k
            for name, table in tables.items():
                sink.put(name, table)
            if progress is not None:
                progress(int(index[-1]) + 1, merchants)
        generate_cpu = time.thread_time() - cpu0
        rows = sink.close()
    except BaseException:
        sink.abort()
        raise
    demand_rows = _write_demand(out, setup)
    summary = {
        "rows": rows,
        "seconds": time.perf_counter() - t0,
        "cpu_seconds": {"generate": generate_cpu, "write": sink.cpu_seconds},
        "merchants": merchants,
        "months": months,
        "history_months": HISTORY_MONTHS,
        "data_start": setup.start.isoformat(),
        "entrants": counters["entrants"],
        "seed": seed,
        "scenario": scenario,
        "volume_scale": volume_scale,
        "defect_rate": defect_rate,
        "demand_rows": demand_rows,
    }
    if defect_rate > 0:
        summary["defects"] = defects
    return summary


def _write_demand(out: Path, setup: _Setup) -> int:
    """``demand.parquet`` (evaluation only, like truth): written after the tables, from the market-wide draws alone."""
    table = demand.demand_table(setup.dyn, setup.shocks, setup.cal, setup.start)
    with atomic_path(out / "demand.parquet") as tmp:
        pq.write_table(table, tmp, compression="lz4")
    return table.num_rows


def block_size(months: int, volume_scale: float) -> int:
    """Merchants per block: about ``BLOCK_ROWS`` expected transactions over ``months`` simulated
    months (history included), a multiple of 64 in [64, 2048]."""
    rows_per_merchant = months * 30.4 * 10.0 * volume_scale
    return int(np.clip(BLOCK_ROWS / rows_per_merchant // 64 * 64, 64, 2048))


def _rng(entropy: int, *key: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([entropy, *key])))


def _setup(
    seed: int, panel_months: int, scenario: str, volume_scale: float, panel_start: date, defect_rate: float
) -> _Setup:
    dyn = dynamics.DEFAULT
    entropy = int(seed) % 2**63
    history = HISTORY_MONTHS
    months = history + panel_months
    start = calendar.month_start(panel_start, -history)
    grid = calendar.month_grid(start, months)
    n_days = int(grid["last"][-1] - grid["first"][0] + 1)
    first_day = int(grid["first"][0])
    cal = Calendar(
        first_day=first_day,
        day_month=np.repeat(np.arange(months), grid["days"]),
        weekday=(first_day + np.arange(n_days) + 3) % 7,  # 1970-01-01 was a Thursday
        yearly=calendar.yearly_multipliers(start, n_days),
        weekly=sectors.weekly(),
        months_since_2023=(grid["year"] - 2023) * 12 + grid["month"] - 1,
        month_first_index=np.concatenate([[0], np.cumsum(grid["days"])[:-1]]),
    )
    return _Setup(
        dyn=dyn,
        truth=truth.tables(dyn),
        shocks=dynamics.common_shocks(dyn, _rng(entropy, 0), months, len(regions.CODES), scenario, history),
        cal=cal,
        months=months,
        history=history,
        start=start,
        month_first=grid["first"],
        month_days=grid["days"],
        window_end_s=int((grid["last"][-1] + 1) * 86400 - 8 * 3600 - 1),
        volume_scale=volume_scale,
        defect_rate=defect_rate,
        salt=hashlib.sha256(f"lifecredit-simulation:{seed}".encode()).hexdigest()[:16],
        entropy=entropy,
    )


def _block(setup: _Setup, b: int, index: np.ndarray, counters: dict[str, int]) -> dict[str, pa.Table]:
    """Every table's rows for one block of merchants."""
    dyn, months = setup.dyn, setup.months
    r_merchants, r_latent, r_loans, r_txn, r_events = (_rng(setup.entropy, 1, b, k) for k in range(5))
    end_day = int(setup.month_first[-1] + setup.month_days[-1])
    mer = draw_merchants(dyn, r_merchants, index, int(setup.month_first[0]), setup.salt, end_day)
    # month of registration counted from the first simulated month (negative before it)
    start_month = np.datetime64(setup.start, "M")
    registered_month = (mer.registered_day.astype("datetime64[D]").astype("datetime64[M]") - start_month).astype(
        np.int64
    )
    entry = np.where(mer.entrant, registered_month + 1, 0)
    d = dynamics.latent_paths(dyn, r_latent, mer.d0, mer.sector, mer.region, setup.shocks, entry)
    group = dynamics.group_index(mer.sector, mer.enterprise, mer.rural)
    x = dyn.group_offsets()[group][:, None] + d
    s = mer.sector
    monthly_sales = (
        sectors.column("daily_txns")[s]
        * mer.size
        * VOLUME_NORM
        * sectors.column("ticket_yuan")[s]
        * np.exp(0.5 * sectors.column("ticket_sigma")[s] ** 2)
        * 30.0
    )
    revenue_ok = np.isin(s, [sectors.NAMES.index(n) for n in REVENUE_BASED_SECTORS])
    book = loans.simulate_loans(dyn, r_loans, x, mer.borrower, monthly_sales, revenue_ok, start_month, registered_month)
    # a defaulted business often shuts within three months; a shut business records nothing more
    shuts = (book.default_month >= 0) & (r_latent.random(len(index)) < CLOSE_AFTER_DEFAULT)
    closed_month = np.where(shuts, book.default_month + r_latent.integers(0, 4, len(index)), 10**6)
    first_ext = np.concatenate([setup.month_first, [setup.month_first[-1] + setup.month_days[-1]]])
    active_until_day = np.where(closed_month < months, first_ext[np.minimum(closed_month, months)], 10**9)

    tables = {
        "merchants": _merchants_table(mer),
        "transactions": transactions(
            r_txn, mer, d[:, 1:], active_until_day, setup.cal, setup.volume_scale, counters["txn"]
        ),
        "complaints": events.complaints(
            r_events,
            mer,
            d[:, 1:],
            setup.month_first,
            setup.month_days,
            active_until_day,
            setup.window_end_s,
            counters["complaint"],
        ),
        "loans": _loans_table(mer, book),
        "loan_performance": _performance_table(mer, book),
        "public_records": events.public_records(
            r_events, mer, d[:, 1:], setup.month_first, setup.month_days, closed_month, counters["record"]
        ),
        "truth": _truth_table(setup, mer, d, group, book),
    }
    counters["txn"] += tables["transactions"].num_rows
    counters["complaint"] += tables["complaints"].num_rows
    counters["record"] += tables["public_records"].num_rows
    counters["entrants"] += int(mer.entrant.sum())
    return tables


def _merchants_table(mer: Merchants) -> pa.Table:
    return pa.Table.from_arrays(
        [
            fixed_width(ascii_rows(mer.ids)),
            fixed_width(ascii_rows(mer.credit_code)),
            pa.array(mer.name, type=pa.large_string()),
            fixed_width(ascii_rows(mer.owner_hash)),
            take(sectors.NAMES, mer.sector),
            take(regions.CODES, mer.region),
            take(("individual_business", "enterprise"), mer.enterprise.astype(np.int8)),
            pa.array(mer.registered_day.astype(np.int32)).view(pa.date32()),
            pa.array(mer.capital_fen, mask=mer.capital_fen < 0, type=pa.int64()),
        ],
        schema=SCHEMAS["merchants"],
    )


def _loan_ids(mer: Merchants, local: np.ndarray, seq: np.ndarray) -> pa.Array:
    return digits_ids("L", (mer.index[local] + 1) * 100 + seq, 10)


def _loans_table(mer: Merchants, book: loans.LoanBook) -> pa.Table:
    order = np.lexsort((book.seq, book.merchant))
    m = book.merchant[order]
    return pa.Table.from_arrays(
        [
            _loan_ids(mer, m, book.seq[order]),
            fixed_width(ascii_rows(mer.ids)[m]),
            take(loans.PRODUCTS, book.product[order]),
            pa.array(book.disbursed_day[order].astype(np.int32)).view(pa.date32()),
            pa.array(book.principal_fen[order]),
            pa.array(book.term[order].astype(np.int16)),
            pa.array(book.rate[order]),
            digits_ids("B", book.lender[order] + 1, 3),
        ],
        schema=SCHEMAS["loans"],
    )


def _performance_table(mer: Merchants, book: loans.LoanBook) -> pa.Table:
    li = book.perf_loan
    order = np.lexsort((book.perf_day, book.seq[li], book.merchant[li]))
    li = li[order]
    m = book.merchant[li]
    return pa.Table.from_arrays(
        [
            _loan_ids(mer, m, book.seq[li]),
            pa.array(book.perf_day[order].astype(np.int32)).view(pa.date32()),
            fixed_width(ascii_rows(mer.ids)[m]),
            pa.array(book.perf_dpd[order].astype(np.int32)),
            pa.array(book.perf_outstanding[order]),
            take(loans.STATUSES, book.perf_status[order]),
        ],
        schema=SCHEMAS["loan_performance"],
    )


def _truth_table(setup: _Setup, mer: Merchants, d: np.ndarray, group: np.ndarray, book: loans.LoanBook) -> pa.Table:
    """True 12-month PD per merchant and panel ``as_of``, from the state at the end of the previous month.

    ``as_of`` runs over the first days of the panel months and of the month after the data; a
    merchant has rows from the first ``as_of`` after its registration day.
    """
    n, cols = d.shape[0], np.arange(setup.history, setup.months + 1)  # column c: state at the end of month c - 1
    before = book.state_before[:, cols].astype(np.int64)
    held = (before >= 0) & (before < loans.IN_DEFAULT)
    state = np.where(held, truth.state_index(np.maximum(before, 0), book.remaining_before[:, cols]), -1)
    pd = setup.truth.lookup(np.repeat(group[:, None], len(cols), axis=1), d[:, cols], state)
    pd = np.where(before == loans.IN_DEFAULT, 1.0, np.clip(pd, 0.0, 1.0))
    as_of = np.concatenate([setup.month_first, [setup.month_first[-1] + setup.month_days[-1]]])[cols]
    keep = (mer.registered_day[:, None] < as_of[None, :]).ravel()
    ids = ascii_rows(mer.ids)
    return pa.Table.from_arrays(
        [
            fixed_width(np.repeat(ids, len(cols))[keep]),
            pa.array(np.tile(as_of, n)[keep].astype(np.int32)).view(pa.date32()),
            pa.array(pd.ravel()[keep]),
        ],
        schema=SCHEMAS["truth"],
    )
