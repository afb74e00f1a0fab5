"""lifecredit data_contracts."""
