"""Raw-table contracts (ODCS v3 YAML) and the validator that splits tables into valid and quarantined rows."""
