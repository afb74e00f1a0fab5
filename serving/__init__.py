"""lifecredit serving."""
