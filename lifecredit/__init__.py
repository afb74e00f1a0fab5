"""lifecredit lifecredit."""
