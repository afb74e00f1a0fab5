"""Regulator views of the class history: one import for the API, the dashboard and the report.

Every function takes plain frames (the class history, the feature panel's outcomes, the audit
log's decisions) and returns a JSON-able dict; nothing here reads settings or files (see
:mod:`regulator.views` for that). Every count of merchants goes through
:mod:`regulator.suppression`: a suppressed cell is ``{"count": null, "suppressed":
true}``, and every value derived from it (share, rate, mean, interval) is null too.

Views, one module per question:

* :func:`distribution` (:mod:`regulator.distribution`): merchants per class by sector, province,
  city, business form, urban/rural (one month), or by month. All tables of one month share the
  suppression of the month's class totals, so no table publishes a class total another one hides.
* :func:`concentration` (:mod:`regulator.distribution`): Herfindahl index of the grade
  distribution per month.
* :func:`outcomes` (:mod:`regulator.outcomes`): observed 12-month default rate per class or
  grade, with Jeffreys intervals and the one-sided Jeffreys test of the mean PD, where outcomes exist.
* :func:`stability` (:mod:`regulator.stability`): PSI of the class and score distributions,
  month over month.
* :func:`migration` (:mod:`regulator.stability`): class migration matrix between two months,
  with new and departed merchants, row shares and the upgrade / downgrade / stable shares.
* :func:`inclusion` (:mod:`regulator.inclusion`): approval, referral and decline rates and
  average approved limit of the service's decisions per segment, relative approval, and mean
  PD against observed default rate per segment.

Shared pieces (errors, dimensions, months, count grids) live in :mod:`regulator.common`.
"""

from __future__ import annotations

from core.vocabulary import CLASSES, DECISIONS, PSI_BANDS
from regulator.common import (
    DIMENSIONS,
    INCLUSION_DIMENSIONS,
    UnknownValue,
    ViewError,
    count_grid,
    months,
    previous_month,
)
from regulator.distribution import FILTERS, concentration, distribution, month_tables
from regulator.inclusion import inclusion
from regulator.outcomes import INTERVAL_LEVEL, OUTCOMES, jeffreys_interval, outcomes
from regulator.stability import MIGRATION_COLS, MIGRATION_ROWS, migration, psi_band, stability

__all__ = [
    "CLASSES",
    "DECISIONS",
    "DIMENSIONS",
    "FILTERS",
    "INCLUSION_DIMENSIONS",
    "INTERVAL_LEVEL",
    "MIGRATION_COLS",
    "MIGRATION_ROWS",
    "OUTCOMES",
    "PSI_BANDS",
    "UnknownValue",
    "ViewError",
    "concentration",
    "count_grid",
    "distribution",
    "inclusion",
    "jeffreys_interval",
    "migration",
    "month_tables",
    "months",
    "outcomes",
    "previous_month",
    "psi_band",
    "stability",
]
