"""The regulator's HTTP side: the ``GET /regulator/*`` JSON routes (:mod:`~serving.regulator.api`)
and the supervisor's page with its static files (:mod:`~serving.regulator.dashboard`).

Everything they answer is computed by the regulator domain (the top-level ``regulator`` package).
"""
