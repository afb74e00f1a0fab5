"""Regulator views: the class history, its aggregates with small-cell protection, and the report.

* :mod:`~serving.regulator.history`: ``lifecredit score-all``, every merchant's monthly PD,
  score, grade and class (Parquet, one partition per month).
* :mod:`~serving.regulator.suppression`: small-cell protection (primary and complementary
  suppression, the exact recoverability checks).
* :mod:`~serving.regulator.aggregates`: distribution, outcomes, stability, migration,
  concentration, inclusive finance; pure functions of frames returning JSON-able dicts.
* :mod:`~serving.regulator.views`: :class:`RegulatorViews`, the aggregates bound to the
  configured stores, and the champion's validation evidence: what an API route calls.
* :mod:`~serving.regulator.api`: the ``GET /regulator/*`` JSON routes of the scoring service
  (role ``regulator``), included into its read API.
* :mod:`~serving.regulator.dashboard`: the supervisor's page at ``/regulator/`` and its
  ``static/`` files (Chart.js vendored: no internet needed).
* :mod:`~serving.regulator.report`: ``lifecredit report``, the self-contained HTML (and PDF).
"""
