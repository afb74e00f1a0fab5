"""Synthetic life-service market with known true risk.

``simulate_market`` writes the six raw tables in their contracts plus ``truth.parquet`` (the
true 12-month PD of every merchant at every panel ``as_of``, for evaluation only; the
tables begin with a year of history before the panel) and ``demand.parquet`` (the demand factor
per sector x province x month, evaluation only: ``demand``). Modules: ``regions``,
``sectors`` and ``calendar`` hold the market's fixed facts; ``dynamics`` the latent risk and
loan-transition model; ``truth`` the exact PD under that model; ``merchants``, ``loans``,
``transactions`` and ``events`` draw the tables; ``defects`` injects faults; ``arrow`` and
``sink`` build and write Arrow/Parquet; ``market`` wires it together block by block.
"""

from simulation.market import simulate_market

__all__ = ["simulate_market"]
