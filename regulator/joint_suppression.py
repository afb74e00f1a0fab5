"""Province and prefecture tables protected together: a province is the sum of its prefectures.

Each level protected alone (:func:`regulator.suppression.protect`) can still leak a hidden small cell
through the other level: a province with one prefecture publishes what the city table hides, a hidden
prefecture is its province's row minus the published siblings. The check here is exact linear algebra
over both levels (:func:`determined`); the map uses it on the totals and PD sums (:func:`joint_hidden`),
the distribution view on every class column (:func:`joint_additions`).
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from regulator.suppression import Protected, ProtectionError


def determined(equations: np.ndarray, hidden: np.ndarray) -> np.ndarray:
    """Hidden variables that ``equations`` (rows of coefficients, each summing to zero) pin down once the
    published variables are known: those whose unit vector lies in the equations' row space over the hidden
    ones (no direction of the null space moves them)."""
    out = np.zeros(len(hidden), dtype=bool)
    idx = np.flatnonzero(hidden)
    sub = equations[:, idx]
    sub = sub[np.abs(sub).sum(axis=1) > 0]
    if len(idx) == 0 or len(sub) == 0:
        return out
    _, sv, vt = np.linalg.svd(sub, full_matrices=False)
    basis = vt[: int((sv > 1e-9 * max(sv.max(), 1.0)).sum())]  # the row space of the equations
    out[idx[(basis**2).sum(axis=0) > 1 - 1e-9]] = True  # a unit vector lying in it: that variable is fixed
    return out


def nesting(pairs: list[tuple[str, str]], provinces: list[str], cities: list[str]) -> tuple[np.ndarray, list[int]]:
    """The sums tying one column of both levels, and the variable of each (province, prefecture) pair.

    Variables: the province totals, the prefecture totals, the pairs of a prefecture found in several
    provinces (any other pair is its prefecture's total) and the grand total; equations: "a province is
    the sum of its pairs", "a prefecture is the sum of its pairs", "the provinces add up to the total".
    """
    mp, mc = len(provinces), len(cities)
    pi, ci = {p: i for i, p in enumerate(provinces)}, {c: i for i, c in enumerate(cities)}
    spans = Counter(c for _, c in pairs)
    multi = sorted(c for c, n in spans.items() if n > 1)  # prefectures in several provinces (unknown codes)
    shared = [j for j, (_, c) in enumerate(pairs) if spans[c] > 1]  # their pairs are variables of their own
    own = {j: mp + mc + n for n, j in enumerate(shared)}
    size = mp + mc + len(shared) + 1
    equations = np.zeros((mp + len(multi) + 1, size))
    pair_var = []
    for j, (p, c) in enumerate(pairs):
        pair_var.append(own.get(j, mp + ci[c]))
        equations[pi[p], pair_var[-1]] = 1.0
        if j in own:
            equations[mp + multi.index(c), own[j]] = 1.0
    equations[np.arange(mp), np.arange(mp)] = -1.0
    equations[mp + np.arange(len(multi)), [mp + ci[c] for c in multi]] = -1.0
    equations[-1, :mp], equations[-1, -1] = 1.0, -1.0
    return equations, pair_var


def joint_hidden(
    pairs: list[tuple[str, str, int]],
    provinces: list[str],
    p_hidden: np.ndarray,
    cities: list[str],
    c_hidden: np.ndarray,
    k: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Province and prefecture totals to hide so that no small group is pinned down by both levels together.

    ``pairs``: merchants per (province, prefecture) as the month holds them (never published); the
    variables and sums are :func:`nesting`'s. While a hidden group of 1 to k - 1 merchants is pinned down,
    hide the smallest published prefecture of its province (or, for a province pinned down through its
    prefectures, every prefecture of the hidden provinces); the last resort hides every prefecture.
    """
    p_hidden, c_hidden = p_hidden.copy(), c_hidden.copy()
    mp, mc = len(provinces), len(cities)
    pi, ci = {p: i for i, p in enumerate(provinces)}, {c: i for i, c in enumerate(cities)}
    equations, pair_var = nesting([(p, c) for p, c, _ in pairs], provinces, cities)
    size = equations.shape[1]
    owner = {v: j for j, v in enumerate(pair_var) if v >= mp + mc}
    values = np.zeros(size, dtype=np.int64)
    for (p, c, count), v in zip(pairs, pair_var, strict=True):
        values[[pi[p], mp + ci[c], size - 1]] += count
        if v in owner:
            values[v] = count
    small = (values >= 1) & (values < k)
    in_province: dict[str, set[int]] = {}
    for p, c, _ in pairs:
        in_province.setdefault(p, set()).add(ci[c])
    for _ in range(mc + 2):
        hidden = np.concatenate([p_hidden, c_hidden, np.ones(len(owner), dtype=bool), [False]])
        exposed = np.flatnonzero(determined(equations, hidden) & small)
        if len(exposed) == 0:
            return p_hidden, c_hidden
        for v in exposed:
            if v < mp:  # a province pinned down through the prefectures of the other hidden provinces
                for p, members in in_province.items():
                    if p_hidden[pi[p]]:
                        c_hidden[list(members)] = True
                continue
            if v < mp + mc:
                around = {p for p, c, _ in pairs if ci[c] == v - mp}
            else:
                around = {pairs[owner[v]][0]}
            members = [i for p in sorted(around) for i in in_province[p] if not c_hidden[i]]
            if members:
                c_hidden[min(members, key=lambda i: (values[mp + i], cities[i]))] = True
    c_hidden[:] = True
    return p_hidden, c_hidden


def joint_additions(
    pairs: list[tuple[str, str, np.ndarray]],
    provinces: list[str],
    p_table: Protected,
    cities: list[str],
    c_table: Protected,
) -> tuple[np.ndarray, np.ndarray] | None:
    """Cells to hide more in the province and city tables (class columns and totals), or None when both
    tables together pin down no hidden cell of 1 to k - 1 merchants.

    ``pairs``: merchants per class of each (province, prefecture) (never published). Every column of
    both tables is one copy of :func:`nesting`'s sums, tied across columns by "the classes add up to the
    total" of every province, prefecture and pair. A pinned prefecture cell gets its row's hidden pattern
    copied onto the cheapest sibling of its province (the same move in both keeps the province's sums),
    or, alone in its province, onto the province row; a pinned province cell gets every province row's
    hidden pattern copied onto one of its prefectures (so any move of the province table is a move of
    both). When that adds nothing, the prefectures of the provinces concerned are hidden, then every one.
    """
    mp, mc, k = len(provinces), len(cities), p_table.k
    cols = p_table.values.shape[1]
    pi, ci = {p: i for i, p in enumerate(provinces)}, {c: i for i, c in enumerate(cities)}
    one, pair_var = nesting([(p, c) for p, c, _ in pairs], provinces, cities)
    size = one.shape[1]
    owner = {v: j for j, v in enumerate(pair_var) if v >= mp + mc}
    rows_eq = np.zeros((size, cols * size))  # every entity's classes add up to its total
    for j in range(cols):
        rows_eq[np.arange(size), j * size + np.arange(size)] = 1.0 if j < cols - 1 else -1.0
    equations = np.vstack([np.kron(np.eye(cols), one), rows_eq])
    values = np.zeros((cols, size), dtype=np.int64)
    hidden = np.ones((cols, size), dtype=bool)
    values[:, :mp], hidden[:, :mp] = p_table.values[:mp].T, p_table.suppressed[:mp].T
    values[:, mp : mp + mc], hidden[:, mp : mp + mc] = c_table.values[:mc].T, c_table.suppressed[:mc].T
    values[:, -1], hidden[:, -1] = p_table.values[-1], p_table.suppressed[-1] | c_table.suppressed[-1]
    for v, j in owner.items():
        values[:, v] = np.append(pairs[j][2], pairs[j][2].sum())
    small = (values >= 1) & (values < k)
    exposed = determined(equations, hidden.ravel()).reshape(cols, size) & small
    if not exposed.any():
        return None
    p_add, c_add = np.zeros_like(p_table.suppressed), np.zeros_like(c_table.suppressed)
    members: dict[int, list[int]] = {}  # province -> its prefectures
    for p, c in {(p, c) for p, c, _ in pairs}:
        members.setdefault(pi[p], []).append(ci[c])
    for m in members.values():
        m.sort()
    c_vals, c_hid = c_table.values, c_table.suppressed

    def copy_onto(pattern: np.ndarray, candidates: list[int]) -> None:
        """Hide ``pattern``'s columns in the candidate prefecture row costing fewest new non-zero cells."""
        if not candidates:
            return
        best = min(candidates, key=lambda c: (int((pattern & ~c_hid[c]).sum()), int(c_vals[c, -1]), cities[c]))
        c_add[best] |= pattern & ~c_hid[best] & (c_vals[best] > 0)

    provinces_hit: set[int] = set()
    for j, v in zip(*np.nonzero(exposed), strict=True):
        if v < mp or v == size - 1:  # a province (or class total) pinned through the prefectures
            provinces_hit |= {q for q in range(mp) if p_table.suppressed[q].any()}
            for q in provinces_hit:
                pattern = p_table.suppressed[q]
                if not any((c_hid[c] >= pattern).all() for c in members.get(q, [])):
                    copy_onto(pattern, members.get(q, []))
            continue
        c = v - mp if v < mp + mc else ci[pairs[owner[v]][1]]
        q = pi[pairs[owner[v]][0]] if v >= mp + mc else next(q for q, m in members.items() if c in m)
        provinces_hit.add(q)
        pattern = c_hid[c].copy()
        pattern[j] = True
        siblings = [s for s in members[q] if s != c]
        if siblings:
            copy_onto(pattern, siblings)
        else:  # alone in its province: the province row hides what the prefecture row hides, and back
            union = pattern | p_table.suppressed[q]
            p_add[q] |= union & ~p_table.suppressed[q] & (p_table.values[q] > 0)
            c_add[c] |= union & ~c_hid[c] & (c_vals[c] > 0)
    for scope in (sorted(provinces_hit), list(range(mp))):
        if p_add.any() or c_add.any():
            break
        for q in scope:  # nothing cheaper helped: hide the prefectures of these provinces
            for c in members.get(q, []):
                c_add[c] |= ~c_hid[c] & (c_vals[c] > 0)
    if not (p_add.any() or c_add.any()):
        raise ProtectionError(f"{int(exposed.sum())} small cells stay pinned by the province and city tables")
    return p_add, c_add
