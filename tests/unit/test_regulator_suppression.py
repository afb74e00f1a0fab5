"""Small-cell protection: no suppressed count can be recovered from what a table publishes.

The adversary here is independent of the code under test: a linear program that, for each
suppressed cell, minimises and maximises its value subject to every published number (cells,
row and column totals) and non-negativity. A cell is protected when the two differ.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog

from regulator.suppression import augment, cell, protect, recoverable

K = 10


def adversary_ranges(values: np.ndarray, suppressed: np.ndarray) -> dict[tuple[int, int], tuple[float, float]]:
    """Tightest [min, max] of each suppressed cell given the published cells and line totals."""
    rows, cols = values.shape
    unknown = [(i, j) for i in range(rows) for j in range(cols) if suppressed[i, j]]
    pos = {c: t for t, c in enumerate(unknown)}
    a_eq, b_eq = [], []
    lines = [[(i, j) for j in range(cols)] for i in range(rows)] + [[(i, j) for i in range(rows)] for j in range(cols)]
    for line in lines:
        total_cell = line[-1]  # the margin closes each line: interior cells - total = 0
        coef, rhs = np.zeros(len(unknown)), 0.0
        for c in line:
            sign = -1.0 if c == total_cell else 1.0
            if c in pos:
                coef[pos[c]] += sign
            else:
                rhs -= sign * values[c]
        if coef.any():
            a_eq.append(coef)
            b_eq.append(rhs)
    out = {}
    for t, c in enumerate(unknown):
        obj = np.zeros(len(unknown))
        obj[t] = 1.0
        kw = dict(A_eq=np.array(a_eq) if a_eq else None, b_eq=b_eq or None, bounds=(0, None), method="highs")
        lo, hi = linprog(obj, **kw), linprog(-obj, **kw)
        assert lo.status == 0, "the published numbers must be consistent"
        out[c] = (lo.fun, np.inf if hi.status == 3 else -hi.fun)
    return out


def assert_protected(counts: np.ndarray, k: int = K) -> None:
    t = protect(counts, k)
    v, s = t.values, t.suppressed
    # primary: every count of 1..k-1 (interior and margins) is suppressed; zeros never are
    assert (s[(v >= 1) & (v < k)]).all()
    assert not s[v == 0].any()
    # the standard criterion: each row and column of the augmented grid has 0 or >= 2 suppressed cells
    for line in [*s, *s.T]:
        assert line.sum() != 1
    # and the real one: an adversary solving the line equations cannot pin a suppressed value
    for c, (lo, hi) in adversary_ranges(v, s).items():
        assert hi - lo >= 1 - 1e-6, f"cell {c} (true {v[c]}) pinned to [{lo}, {hi}] in\n{v}\n{s.astype(int)}"
        assert lo - 1e-6 <= v[c] <= hi + 1e-6
    assert recoverable(v, s) == []


count_tables = st.integers(1, 5).flatmap(
    lambda m: st.integers(1, 4).flatmap(
        lambda n: st.lists(
            st.lists(st.sampled_from([0, 0, 1, 2, 3, 5, 8, 9, 10, 12, 25, 60]), min_size=n, max_size=n),
            min_size=m,
            max_size=m,
        )
    )
)


@settings(max_examples=50, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(count_tables)
def test_no_suppressed_cell_is_recoverable_on_random_tables(rows):
    assert_protected(np.array(rows))


def test_lone_small_cell_gets_the_next_smallest_partner_in_row_and_column():
    t = protect(np.array([[3, 40, 25], [30, 12, 18], [41, 35, 50]]), k=K)
    assert t.suppressed[:3, :3].astype(int).tolist() == [[1, 0, 1], [1, 0, 1], [0, 0, 0]]
    assert not t.suppressed[3].any() and not t.suppressed[:, 3].any()  # totals stay published
    assert_protected(np.array([[3, 40, 25], [30, 12, 18], [41, 35, 50]]))


def test_iteration_across_rows_and_columns():
    """Each complement creates a new lone cell in its column, which needs its own partner, and so on."""
    counts = np.array([[4, 50, 60, 70], [80, 11, 90, 95], [85, 99, 13, 97], [98, 96, 94, 15]])
    t = protect(counts, k=K)
    assert t.primary[:4, :4].sum() == 1
    # row 0 pulls in (0, 1); column 0 pulls in (1, 0); column 1, now lone, pulls in (1, 1)
    assert sorted(zip(*np.nonzero(t.suppressed), strict=True)) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert_protected(counts)


def test_two_per_line_is_not_enough_a_bridge_is_closed():
    """Every line holds 0 or >= 2 suppressed cells after the per-line rule, yet cell (0, 0) = 3 equals
    col3 + col4 - 12 - col2 arithmetic (it is a bridge of the suppressed-cell graph): one more cell fixes it."""
    from regulator import suppression as S

    counts = np.array([[3, 12, 5], [0, 0, 1], [3, 5, 40]])
    values = S.augment(counts)
    mask = (values >= 1) & (values < K)
    while S._fill_lone_lines(values, mask, np.zeros_like(mask)):
        pass
    assert all(line.sum() != 1 for line in [*mask, *mask.T])
    assert recoverable(values, mask) == [(0, 0)]
    assert adversary_ranges(values, mask)[(0, 0)] == pytest.approx((3, 3))
    t = protect(counts, k=K)
    assert t.suppressed.sum() == mask.sum() + 1
    assert_protected(counts)


def test_small_margin_is_a_small_cell_and_a_single_class_segment_stays_hidden():
    """A town of 5 merchants, all in class C: publishing its total and zeros would reveal all five."""
    counts = np.array([[0, 0, 5, 0], [40, 30, 20, 12], [50, 33, 25, 11]])
    t = protect(counts, k=K)
    assert t.suppressed[0, 2] and t.suppressed[0, 4]  # the cell and the town's total
    assert_protected(counts)


def test_pooled_months_use_distinct_merchants():
    """12 merchant-months of one merchant are one merchant: suppressed although 12 >= k."""
    counts = np.array([[12, 40], [30, 50]])
    distinct = augment(counts)
    distinct[0, 0] = 1
    t = protect(counts, k=K, distinct=distinct)
    assert t.primary[0, 0] and t.suppressed[0, 0]
    assert t.suppressed[:2, :2].all()


def test_degenerate_tables():
    assert protect(np.zeros((0, 4), dtype=int), K).n_suppressed == 0
    one_row = protect(np.array([[3, 40, 25]]), K)  # column totals equal the cells: both hidden
    assert one_row.suppressed[0, 0] and one_row.suppressed[1, 0]
    assert_protected(np.array([[3, 40, 25]]))
    tiny = protect(np.array([[2, 3]]), K)  # everything below k, grand total included
    assert tiny.suppressed.all()


def test_extra_published_sums_are_checked():
    """A published diagonal sum (e.g. 'stable merchants') can pin a cell the line equations alone cannot."""
    counts = np.array([[3, 20], [20, 4]])
    t = protect(counts, K)
    assert recoverable(t.values, t.suppressed) == []
    diagonal = np.zeros_like(t.values)
    diagonal[0, 0] = diagonal[1, 1] = 1
    assert (0, 0) in recoverable(t.values, t.suppressed, extra=[diagonal])


def test_cell_json_hides_derived_values():
    assert cell(4, True, share=0.1) == {"count": None, "suppressed": True, "share": None}
    assert cell(40, False, share=0.5) == {"count": 40, "suppressed": False, "share": 0.5}
    t = protect(np.array([[3, 40], [30, 12]]), K)
    assert t.share(0, 0, of=(0, 2)) is None and t.share(2, 0, of=(2, 2)) == pytest.approx(33 / 85)


def test_hidden_zeros_can_be_pinned_by_non_negativity_and_the_lp_check_sees_it():
    from regulator.suppression import recoverable_lp

    values = augment(np.array([[0, 0, 15], [12, 11, 20]]))
    hidden = np.zeros_like(values, dtype=bool)
    hidden[0, 0] = hidden[0, 1] = hidden[1, 0] = hidden[1, 1] = True
    assert recoverable(values, hidden) == []  # the equations alone leave a free direction
    assert recoverable_lp(values, hidden) == [(0, 0), (0, 1), (1, 0), (1, 1)]  # but x + y = 0 with x, y >= 0
