"""Raw-table contracts (ODCS v3 YAML) and the validator that splits tables into valid and quarantined rows.

Modules: ``contract`` (typed contract models and loaders), ``read`` (finding and opening raw
files), ``cast`` (raw columns to contract types), ``rules`` (row rules as Polars expressions),
``validate`` (per-table and per-folder validation), ``uscc`` (credit-code check character).
"""

from data_contracts.contract import TABLES, Contract, load_contract, load_contracts
from data_contracts.errors import TableError
from data_contracts.rules import REASONS, rule_names
from data_contracts.validate import validate_dir, validate_table

__all__ = [
    "REASONS",
    "TABLES",
    "Contract",
    "TableError",
    "load_contract",
    "load_contracts",
    "rule_names",
    "validate_dir",
    "validate_table",
]
