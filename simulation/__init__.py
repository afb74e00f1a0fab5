"""Synthetic life-service market with known true risk."""
