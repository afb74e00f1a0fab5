"""Simulated inspection findings for a drawn plan: evaluation only, like ``truth.parquet``.

An inspected merchant shows a finding with probability ``expit(ANY_INTERCEPT + ANY_SLOPE x logit(true PD))``
and a found problem is serious with probability ``expit(SERIOUS_INTERCEPT + SERIOUS_SLOPE x logit(true PD))``,
the true 12-month PD taken at the plan month's ``as_of`` from ``truth.parquet``: the riskier the merchant
in fact, the more an inspection finds, so a test can show the finding rate rise from class A to D.
Nothing on the scoring path reads these results (only the CLI imports this module).
"""

from __future__ import annotations

import calendar
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl

ANY_INTERCEPT, ANY_SLOPE = 1.9, 1.0
"""P(any finding): odds 6.7 x the PD's odds: PD 1.7 % -> 10 %, PD 12 % -> 48 %, PD 40 % -> 82 %."""
SERIOUS_INTERCEPT, SERIOUS_SLOPE = 0.5, 0.6
"""P(serious | a finding): PD 1.7 % -> 13 %, PD 12 % -> 33 %, PD 40 % -> 56 %."""
PD_FLOOR = 1e-6
TEAMS = 20
COLUMNS = ("merchant_id", "inspected_on", "finding", "plan_id", "inspector")


def _expit(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, PD_FLOOR, 1.0 - PD_FLOOR)
    return np.log(p / (1.0 - p))


def finding_probabilities(true_pd: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(P(any finding), P(serious | a finding)) for each true PD."""
    z = _logit(np.asarray(true_pd, dtype=float))
    return _expit(ANY_INTERCEPT + ANY_SLOPE * z), _expit(SERIOUS_INTERCEPT + SERIOUS_SLOPE * z)


def simulate_findings(plan: dict, truth: Path | pl.DataFrame, seed: int | None = None) -> pl.DataFrame:
    """One inspection of every merchant the plan drew, on a day of the plan month, with a simulated finding.

    ``plan``: a plan as ``lifecredit inspections plan`` writes it (``plan_id``, ``month``, ``as_of``,
    ``merchants``); ``truth``: ``truth.parquet`` (or its frame). ``seed`` (default: the plan's seed) fixes
    the draws. Returns the columns of a results CSV, sorted by merchant.
    """
    as_of = date.fromisoformat(plan["as_of"])
    ids = sorted(m["merchant_id"] for m in plan["merchants"])
    frame = truth if isinstance(truth, pl.DataFrame) else pl.scan_parquet(truth)
    pds = (
        frame.lazy()
        .filter((pl.col("as_of") == as_of) & pl.col("merchant_id").is_in(ids))
        .select("merchant_id", "true_pd_12m")
        .collect()
    )
    known = dict(pds.iter_rows())
    missing = [m for m in ids if m not in known]
    if missing:
        raise ValueError(
            f"truth has no true PD at {as_of} for {len(missing)} of the plan's merchants (e.g. {missing[0]}): "
            "is it the truth.parquet of the market the plan was drawn from?"
        )
    p_any, p_serious = finding_probabilities(np.array([known[m] for m in ids]))
    rng = np.random.default_rng([int(plan["seed"] if seed is None else seed), int(plan["month"].replace("-", ""))])
    found = rng.random(len(ids)) < p_any
    serious = rng.random(len(ids)) < p_serious
    days = calendar.monthrange(as_of.year, as_of.month)[1]
    first = as_of.replace(day=1)
    offsets = rng.integers(0, days, len(ids))
    teams = rng.integers(1, TEAMS + 1, len(ids))
    return pl.DataFrame(
        {
            "merchant_id": ids,
            "inspected_on": [first + timedelta(days=int(d)) for d in offsets],
            "finding": np.where(found, np.where(serious, "serious", "minor"), "none").tolist(),
            "plan_id": [plan["plan_id"]] * len(ids),
            "inspector": [f"team-{t:02d}" for t in teams],
        },
        schema={
            "merchant_id": pl.String,
            "inspected_on": pl.Date,
            "finding": pl.String,
            "plan_id": pl.String,
            "inspector": pl.String,
        },
    )
