"""Unified social credit code (统一社会信用代码, GB 32100-2015): check character.

An 18-character code: registration authority (1), organisation type (1), region (6),
organisation code (9), check character (1). Characters come from a 31-symbol alphabet
without I, O, S, V, Z; the check character makes the weighted sum of all 18 values
divisible by 31, with weights 3**(i-1) mod 31.
"""

from __future__ import annotations

import numpy as np
import polars as pl

ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
VALUE = {c: i for i, c in enumerate(ALPHABET)}
WEIGHTS = [pow(3, i, 31) for i in range(17)]
PATTERN = r"^[0-9A-HJ-NPQRTUWXY]{2}\d{6}[0-9A-HJ-NPQRTUWXY]{10}$"


def check_char(first17: str) -> str:
    """Return the check character for the first 17 characters of a code."""
    total = sum(VALUE[c] * w for c, w in zip(first17, WEIGHTS, strict=True))
    return ALPHABET[(31 - total % 31) % 31]


def is_valid(code: str) -> bool:
    """True when `code` has the right shape and its check character matches."""
    if len(code) != 18 or any(c not in VALUE for c in code):
        return False
    return check_char(code[:17]) == code[17]


def check_chars(first17: np.ndarray) -> np.ndarray:
    """Vectorised `check_char` over an (n, 17) array of character values (0..30)."""
    total = (first17.astype(np.int64) * np.asarray(WEIGHTS, dtype=np.int64)).sum(axis=1)
    return (31 - total % 31) % 31


def valid_expr(col: str) -> pl.Expr:
    """Polars expression: the code in `col` matches the pattern and its check character.

    Null codes evaluate to null (nullability is a separate rule).
    """
    code = pl.col(col)
    lookup = {c: i for c, i in VALUE.items()}
    total = pl.lit(0, dtype=pl.Int64)
    for i, w in enumerate(WEIGHTS):
        value = code.str.slice(i, 1).replace_strict(lookup, default=None, return_dtype=pl.Int64)
        total = total + value * w
    expected = (pl.lit(31) - total % 31) % 31
    actual = code.str.slice(17, 1).replace_strict(lookup, default=None, return_dtype=pl.Int64)
    return code.str.contains(PATTERN) & (expected == actual).fill_null(False)
