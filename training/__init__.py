"""lifecredit training."""
