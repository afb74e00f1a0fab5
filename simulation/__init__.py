"""lifecredit simulation."""
