"""The regulator domain: batch work beside serving, not inside it.

* :mod:`~regulator.history`: ``lifecredit score-all``, every merchant's monthly PD,
  score, grade and class (Parquet, one partition per month).
* :mod:`~regulator.suppression`: small-cell protection (primary and complementary
  suppression, the exact recoverability checks).
* :mod:`~regulator.aggregates`: distribution, outcomes, stability, migration,
  concentration, inclusive finance; pure functions of frames returning JSON-able dicts.
* :mod:`~regulator.views`: :class:`RegulatorViews`, the aggregates bound to the
  configured stores, and the champion's validation evidence: what an API route calls.
* :mod:`~regulator.labels`: bilingual labels of the values regulators see.
* :mod:`~regulator.report`: ``lifecredit report``, the self-contained HTML (and PDF).

The HTTP routes and the dashboard page live in :mod:`serving.regulator`.
"""
