"""Small-cell protection for the count tables regulators see.

A published table is a grid of counts with its margins. Think of it as the *augmented* grid of
shape (m + 1) x (n + 1): the m x n interior, the row totals in the last column, the column
totals in the last row and the grand total in the corner. Every row and every column of that
grid (a *line*) is one linear equation: the interior cells add up to the line's total.

**Primary suppression.** Every cell of the augmented grid that counts 1 to k - 1 merchants is
suppressed, margins included (a town with 3 merchants is itself a small cell). When a table
pools several months, the threshold applies to *distinct* merchants, so one merchant counted
in twelve months is still one merchant. Zero cells are published: they single out nobody.

**Complementary suppression.** A lone suppressed cell in a line would be its total minus the
published cells, so every line holding one suppressed cell gets a second one: the smallest
published non-zero cell of that line (interior cells before margins, the grand total last),
repeated over rows and columns until stable. Two per line is not enough in general: suppressed
cells form a bipartite graph (row lines and column lines are the vertices, each suppressed
cell an edge), and a cell that is a *bridge* of that graph (on no cycle) is still determined by
the published totals, whatever the number per line. So the loop also suppresses, for each
bridge, the smallest published non-zero cell that closes a cycle through it.

**Why the result is safe.** At the end no suppressed cell is a bridge and every suppressed
cell counts at least 1 (zeros are never suppressed). Any suppressed cell therefore lies on a
cycle of suppressed cells; adding +1, -1, +1, ... around the cycle keeps every published
total and every cell non-negative, so the value can move both ways: an adversary who solves
the row and column equations (with non-negativity) learns an interval, never the value.
:func:`recoverable` checks the same thing by linear algebra for tables that publish extra
sums (the migration view's upgrade / downgrade / stable totals).

Derived values (shares, rates, means, intervals) are published only when every count they
derive from is published; callers build them with :func:`cell`.

Example:
    >>> import numpy as np
    >>> t = protect(np.array([[3, 40, 25], [30, 12, 18], [41, 35, 50]]), k=10)
    >>> t.suppressed[:3, :3].astype(int).tolist()
    [[1, 0, 1], [1, 0, 1], [0, 0, 0]]
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

SUPPRESSED_MARK = "<{k}"
"""What a screen shows for every suppressed cell (``SUPPRESSED_MARK.format(k=k)``: "<10"), primary or
complementary alike, so a reader cannot tell which hidden cells are the small ones (that would
narrow the complementary cells' ranges). A complementary cell may hold k or more; the legend
(:data:`SUPPRESSED_NOTE_EN`) says so."""

SUPPRESSED_NOTE_EN = (
    "<{k}: not published: fewer than {k} merchants, or hidden so that such a cell cannot be worked out from the totals"
)
SUPPRESSED_NOTE_ZH = "<{k}：不公布：少于{k}户商户，或为防止由合计推算出此类单元格而隐藏"


def suppressed_mark(k: int) -> str:
    """The on-screen mark of a suppressed cell for threshold ``k`` ("<10" by default)."""
    return SUPPRESSED_MARK.format(k=k)


def augment(counts: np.ndarray) -> np.ndarray:
    """The (m + 1) x (n + 1) grid: interior, row totals last column, column totals last row, grand total."""
    counts = np.asarray(counts, dtype=np.int64)
    if counts.ndim != 2:
        raise ValueError(f"a count table is two-dimensional, got shape {counts.shape}")
    m, n = counts.shape
    out = np.zeros((m + 1, n + 1), dtype=np.int64)
    out[:m, :n] = counts
    out[:m, n] = counts.sum(axis=1)
    out[m, :n] = counts.sum(axis=0)
    out[m, n] = counts.sum()
    return out


@dataclass(frozen=True)
class Protected:
    """A protected table: the augmented values, which cells are suppressed, and why."""

    values: np.ndarray
    """(m + 1) x (n + 1) augmented counts (true values; never publish them directly)."""
    suppressed: np.ndarray
    """Same shape, True where the cell is not published."""
    primary: np.ndarray
    """Same shape, True where the cell itself is below the threshold."""
    k: int

    @property
    def shape(self) -> tuple[int, int]:
        """(m, n): the interior's shape."""
        return self.values.shape[0] - 1, self.values.shape[1] - 1

    def count(self, i: int, j: int) -> int | None:
        """Augmented cell (i, j) as published: its count, or None when suppressed."""
        return None if self.suppressed[i, j] else int(self.values[i, j])

    def share(self, i: int, j: int, of: tuple[int, int]) -> float | None:
        """Cell (i, j) over cell ``of`` (e.g. its row total), published only if both counts are."""
        num, den = self.count(i, j), self.count(*of)
        if num is None or den is None or den == 0:
            return None
        return num / den

    def cell(self, i: int, j: int, **derived) -> dict:
        """JSON for cell (i, j); see :func:`cell`."""
        return cell(self.values[i, j], bool(self.suppressed[i, j]), **derived)

    @property
    def n_suppressed(self) -> int:
        return int(self.suppressed.sum())


def cell(count, suppressed: bool, **derived) -> dict:
    """``{"count": n, "suppressed": false, **derived}``, or every value null when suppressed."""
    if suppressed:
        return {"count": None, "suppressed": True, **{k: None for k in derived}}
    return {"count": int(count), "suppressed": False, **{k: _plain(v) for k, v in derived.items()}}


def _plain(v):
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not np.isfinite(v):
        return None
    return v


class ProtectionError(RuntimeError):
    """A small cell would be recoverable from what is published (only with ``locked`` cells or ``extra`` sums)."""


def protect(
    counts: np.ndarray,
    k: int,
    *,
    distinct: np.ndarray | None = None,
    force: np.ndarray | None = None,
    locked: np.ndarray | None = None,
    extra: Sequence[np.ndarray] = (),
) -> Protected:
    """Suppress small cells of ``counts`` (m x n interior) and enough others that none is recoverable.

    ``distinct``: the augmented grid of distinct merchants per cell (shape (m + 1) x (n + 1)),
    when a cell can count one merchant more than once (months pooled, several decisions);
    the threshold applies to it. By default the counts themselves.
    ``force``: augmented cells to suppress from the start (decided by a linked table, e.g. a
    month's class totals; zeros included if asked). ``locked``: augmented cells never chosen
    as complements (published by a linked table). ``extra``: coefficient grids of sums a
    linked table publishes. Without these three the result is safe by construction (module
    docstring); with any of them an exact final check raises :class:`ProtectionError` rather
    than publish a recoverable small cell.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    values = augment(counts)
    d = values if distinct is None else np.asarray(distinct, dtype=np.int64)
    if d.shape != values.shape:
        raise ValueError(f"distinct has shape {d.shape}, expected the augmented {values.shape}")
    if ((d > 0) != (values > 0)).any():
        raise ValueError("distinct must be non-zero exactly where the counts are")
    primary = (d >= 1) & (d < k)
    mask = primary.copy()
    if force is not None:
        mask |= np.asarray(force, dtype=bool)
    frozen = np.zeros_like(mask) if locked is None else np.asarray(locked, dtype=bool) & ~mask
    while True:
        if _fill_lone_lines(values, mask, frozen):
            continue
        if not any(_close_cycle(values, mask, frozen, b) for b in _bridges(mask)):
            break
    if locked is not None or len(extra) or (mask & (values == 0)).any():
        check = recoverable_lp if (mask & (values == 0)).any() else recoverable
        exposed = [c for c in check(values, mask, extra) if primary[c]]
        if exposed:
            raise ProtectionError(f"small cells {exposed} stay recoverable from what is published")
    return Protected(values=values, suppressed=mask, primary=primary, k=k)


def _priority(values: np.ndarray, i: int, j: int) -> tuple:
    """Complement order: interior cells before margins before the grand total, then the smallest."""
    last_i, last_j = values.shape[0] - 1, values.shape[1] - 1
    kind = (i == last_i) + (j == last_j)
    return (kind, int(values[i, j]), i, j)


def _best(values: np.ndarray, mask: np.ndarray, frozen: np.ndarray, cells) -> tuple[int, int] | None:
    options = [(i, j) for i, j in cells if not mask[i, j] and not frozen[i, j] and values[i, j] > 0]
    return min(options, key=lambda c: _priority(values, *c)) if options else None


def _fill_lone_lines(values: np.ndarray, mask: np.ndarray, frozen: np.ndarray) -> bool:
    """One pass over rows and columns: a line with exactly one suppressed cell gets a second one."""
    rows, cols = mask.shape
    changed = False
    for i in range(rows):
        if mask[i].sum() == 1:
            pick = _best(values, mask, frozen, ((i, j) for j in range(cols)))
            if pick is not None:
                mask[pick] = changed = True
    for j in range(cols):
        if mask[:, j].sum() == 1:
            pick = _best(values, mask, frozen, ((i, j) for i in range(rows)))
            if pick is not None:
                mask[pick] = changed = True
    return changed


def _graph(mask: np.ndarray) -> list[list[int]]:
    """Adjacency of the suppressed-cell graph: vertex i < rows is row line i, rows + j column line j."""
    rows, cols = mask.shape
    adj: list[list[int]] = [[] for _ in range(rows + cols)]
    for i, j in zip(*np.nonzero(mask), strict=True):
        adj[int(i)].append(rows + int(j))
        adj[rows + int(j)].append(int(i))
    return adj


def _bridges(mask: np.ndarray) -> list[tuple[int, int]]:
    """Suppressed cells (i, j) that lie on no cycle of suppressed cells (Tarjan, iterative)."""
    rows = mask.shape[0]
    adj = _graph(mask)
    disc = [-1] * len(adj)
    low = [0] * len(adj)
    clock = 0
    found: list[tuple[int, int]] = []
    for root in range(len(adj)):
        if disc[root] != -1 or not adj[root]:
            continue
        disc[root] = low[root] = clock
        clock += 1
        stack = [(root, -1, iter(adj[root]))]
        while stack:
            v, parent, neighbours = stack[-1]
            for w in neighbours:
                if w == parent:
                    continue
                if disc[w] == -1:
                    disc[w] = low[w] = clock
                    clock += 1
                    stack.append((w, v, iter(adj[w])))
                    break
                low[v] = min(low[v], disc[w])
            else:
                stack.pop()
                if parent != -1:
                    low[parent] = min(low[parent], low[v])
                    if low[v] > disc[parent]:
                        a, b = sorted((parent, v))
                        found.append((a, b - rows))
    return sorted(found)


def _reach(adj: list[list[int]], start: int, cut: tuple[int, int]) -> set[int]:
    seen, todo = {start}, deque([start])
    while todo:
        v = todo.popleft()
        for w in adj[v]:
            if {v, w} == set(cut) or w in seen:
                continue
            seen.add(w)
            todo.append(w)
    return seen


def _close_cycle(values: np.ndarray, mask: np.ndarray, frozen: np.ndarray, bridge: tuple[int, int]) -> bool:
    """Suppress one more cell so that ``bridge`` lies on a cycle (or, failing that, closer to one).

    Without frozen cells a candidate always exists: in every line the interior adds up to the
    total, so the cut a bridge crosses carries another non-zero cell (published, or it would
    not be a bridge). Returns False when every candidate is frozen.
    """
    rows, cols = mask.shape
    i0, j0 = bridge
    adj = _graph(mask)
    side_a = _reach(adj, i0, (i0, rows + j0))
    side_b = _reach(adj, rows + j0, (i0, rows + j0))
    across = [
        (i, j)
        for i in range(rows)
        for j in range(cols)
        if (i in side_a and rows + j in side_b) or (i in side_b and rows + j in side_a)
    ]
    in_lines = [(i0, j) for j in range(cols)] + [(i, j0) for i in range(rows)]
    touching = [(i, j) for i in range(rows) for j in range(cols) if i in side_a | side_b or rows + j in side_a | side_b]
    for candidates in (across, in_lines, touching):
        pick = _best(values, mask, frozen, candidates)
        if pick is not None:
            mask[pick] = True
            return True
    if not frozen.any():
        raise AssertionError(f"no published non-zero cell near bridge {bridge}: the line balance was broken")
    return False


def line_equations(shape: tuple[int, int]) -> np.ndarray:
    """Coefficients (one row per line, one column per augmented cell) of 'interior sum - total = 0'."""
    rows, cols = shape
    eqs = []
    for i in range(rows):
        e = np.zeros((rows, cols))
        e[i, : cols - 1] = 1
        e[i, cols - 1] = -1
        eqs.append(e.ravel())
    for j in range(cols):
        e = np.zeros((rows, cols))
        e[: rows - 1, j] = 1
        e[rows - 1, j] = -1
        eqs.append(e.ravel())
    return np.array(eqs)


def recoverable(values: np.ndarray, suppressed: np.ndarray, extra: Sequence[np.ndarray] = ()) -> list[tuple[int, int]]:
    """Suppressed cells an adversary can compute exactly from what is published.

    Published: every unsuppressed cell, the line equations of the augmented grid, and one
    equation per ``extra`` coefficient grid (a published sum such as "upgrades"). A
    suppressed cell is determined exactly when its unit vector lies in the row space of the
    equations restricted to the suppressed cells (otherwise some direction changes it while
    keeping every published number; with every suppressed count >= 1 a small enough step
    also keeps all cells non-negative).
    """
    values = np.asarray(values)
    idx = np.flatnonzero(np.asarray(suppressed).ravel())
    if len(idx) == 0:
        return []
    eqs = line_equations(values.shape)
    if len(extra):
        eqs = np.vstack([eqs, *(np.asarray(e, dtype=float).ravel()[None, :] for e in extra)])
    sub = eqs[:, idx]
    sub = sub[np.abs(sub).sum(axis=1) > 0]
    if len(sub) == 0:
        return []
    _, sv, vt = np.linalg.svd(sub)
    rank = int((sv > 1e-9 * max(sv.max(), 1.0)).sum())
    null = vt[rank:]  # rows span the directions that keep every published number
    free = np.abs(null).sum(axis=0) > 1e-9 if len(null) else np.zeros(len(idx), dtype=bool)
    cols = values.shape[1]
    return [(int(c // cols), int(c % cols)) for c, f in zip(idx, free, strict=True) if not f]


def recoverable_lp(
    values: np.ndarray, suppressed: np.ndarray, extra: Sequence[np.ndarray] = ()
) -> list[tuple[int, int]]:
    """Like :func:`recoverable`, with non-negativity: for tables that hide zeros, where a bound can pin a cell.

    Minimises and maximises each suppressed cell by linear programming (HiGHS) subject to every
    published number; a cell whose range is narrower than 1 is recoverable.
    """
    from scipy.optimize import linprog

    values = np.asarray(values, dtype=float)
    flat_mask = np.asarray(suppressed).ravel()
    idx = np.flatnonzero(flat_mask)
    if len(idx) == 0:
        return []
    eqs = line_equations(values.shape)
    if len(extra):
        eqs = np.vstack([eqs, *(np.asarray(e, dtype=float).ravel()[None, :] for e in extra)])
    keep = np.abs(eqs[:, idx]).sum(axis=1) > 0
    a_eq = eqs[keep][:, idx]
    # what the published numbers leave for the hidden cells of each equation (the true values satisfy it)
    b_eq = eqs[keep] @ np.where(flat_mask, values.ravel(), 0.0)
    cols = values.shape[1]
    pinned = []
    for t, c in enumerate(idx):
        obj = np.zeros(len(idx))
        obj[t] = 1.0
        lo = linprog(obj, A_eq=a_eq, b_eq=b_eq, bounds=(0, None), method="highs")
        hi = linprog(-obj, A_eq=a_eq, b_eq=b_eq, bounds=(0, None), method="highs")
        top = np.inf if hi.status == 3 else -hi.fun
        if lo.status == 0 and top - lo.fun < 1 - 1e-9:
            pinned.append((int(c // cols), int(c % cols)))
    return pinned
