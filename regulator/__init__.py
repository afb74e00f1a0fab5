"""The regulator domain: batch work beside serving, not inside it.

* :mod:`~regulator.history`: ``lifecredit score-all``, every merchant's monthly PD,
  score, grade and class (Parquet, one partition per month).
* :mod:`~regulator.suppression`: small-cell protection (primary and complementary
  suppression, the exact recoverability checks).
* :mod:`~regulator.aggregates`: the views as pure functions of frames returning JSON-able
  dicts, one import for their callers; each lives in a module of its own:

  * :mod:`~regulator.distribution`: class distribution per segment or month, grade concentration;
  * :mod:`~regulator.stability`: PSI month over month, the class migration matrix;
  * :mod:`~regulator.outcomes`: observed default rates with Jeffreys intervals and tests;
  * :mod:`~regulator.inclusion`: the service's decisions per segment, calibration per segment;
  * :mod:`~regulator.common`: what they share (errors, dimensions, months, count grids).

* :mod:`~regulator.objections`: merchants' objections and credit-repair requests by month,
  sector and province (received, resolved, corrected, overdue), small-cell protected.

* :mod:`~regulator.views`: :class:`RegulatorViews`, the aggregates bound to the
  configured stores (given a ``Settings``), and the champion's validation evidence: what an
  API route calls.
* :mod:`~regulator.labels`: bilingual labels of the values regulators see.
* :mod:`~regulator.report`: ``lifecredit report``, the self-contained HTML; its charts are
  :mod:`~regulator.figures`, its PDF printing :mod:`~regulator.pdf`.

The HTTP routes and the dashboard page live in :mod:`serving.regulator`; nothing here imports
``serving`` or ``lifecredit``.
"""
