"""lifecredit features."""
