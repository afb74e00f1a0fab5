"""The merchant's side of the credit system: its own credit report, objections and one-merchant re-scoring.

Above the regulator domain (it reads the class history) and below serving (which exposes it over HTTP).
"""
