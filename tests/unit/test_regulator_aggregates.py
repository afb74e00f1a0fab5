"""Regulator aggregates on crafted class histories: the numbers, the suppression, the JSON."""

from __future__ import annotations

import json
from datetime import date

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.stats import beta

from regulator import aggregates as agg
from regulator.aggregates import ViewError
from training.evaluate import jeffreys_pvalue, psi_from_counts

K = 10
GRADE_OF_CLASS = {"A": "2", "B": "4", "C": "6", "D": "8"}
PD_OF_CLASS = {"A": 0.005, "B": 0.02, "C": 0.06, "D": 0.2}


def history(rows: list[tuple]) -> pl.DataFrame:
    """Rows of (merchant_id, month, class, sector, province, city, urban_rural, business_form)."""
    frame = pl.DataFrame(
        rows,
        schema=["merchant_id", "month", "class", "sector", "province", "city", "urban_rural", "business_form"],
        orient="row",
    )
    return frame.with_columns(
        as_of=pl.col("month").map_elements(lambda m: date.fromisoformat(m + "-01"), return_dtype=pl.Date),
        grade=pl.col("class").replace_strict(GRADE_OF_CLASS),
        pd=pl.col("class").replace_strict(PD_OF_CLASS, return_dtype=pl.Float64),
        score=pl.col("class").replace_strict({"A": 640, "B": 600, "C": 570, "D": 530}, return_dtype=pl.Int32),
    )


def month_of(month: str, spec: dict[tuple[str, str], int], start: int = 0, uniform: bool = False) -> list[tuple]:
    """``spec``: {(sector, class): merchants}; provinces alternate 33 / 44, cities 3301 / 4401
    (``uniform``: every merchant in 3301, urban, individual business)."""
    rows, n = [], start
    for (sector, cls), count in spec.items():
        for _ in range(count):
            prov = "33" if n % 2 == 0 or uniform else "44"
            rows.append(
                (
                    f"M{n:05d}",
                    month,
                    cls,
                    sector,
                    prov,
                    prov + "01",
                    "urban" if n % 3 or uniform else "rural",
                    "enterprise" if n % 4 == 0 and not uniform else "individual_business",
                )
            )
            n += 1
    return rows


BIG = {
    ("catering", "A"): 40,
    ("catering", "B"): 30,
    ("catering", "C"): 20,
    ("catering", "D"): 12,
    ("retail", "A"): 25,
    ("retail", "B"): 35,
    ("retail", "C"): 15,
    ("retail", "D"): 11,
}


def lines_ok(table: dict, columns: list[str]) -> None:
    """Every row and column of a published table, totals included, holds 0 or >= 2 suppressed cells."""
    grid = [[r["cells"][c]["suppressed"] for c in columns] + [r["total"]["suppressed"]] for r in table["rows"]]
    if table.get("total"):
        grid.append(
            [table["total"]["cells"][c]["suppressed"] for c in columns] + [table["total"]["total"]["suppressed"]]
        )
    g = np.array(grid)
    assert all(line.sum() != 1 for line in [*g, *g.T]), g.astype(int)


def test_distribution_counts_shares_and_json():
    h = history(month_of("2025-07", BIG))
    d = agg.distribution(h, "sector", k=K)
    json.dumps(d)
    assert d["month"] == "2025-07" and [r["key"] for r in d["rows"]] == ["catering", "retail"]
    catering = d["rows"][0]
    assert catering["total"] == {"count": 102, "suppressed": False, "share": pytest.approx(102 / 188)}
    assert catering["cells"]["A"] == {"count": 40, "suppressed": False, "share": pytest.approx(40 / 102)}
    assert d["total"]["cells"]["D"]["count"] == 23 and d["total"]["total"]["count"] == 188
    assert d["suppressed_cells"] == 0 and d["rows"][0]["label"]["zh"] == "餐饮"


def test_small_cell_suppressed_with_complements_and_derived_values():
    spec = {**BIG, ("retail", "D"): 3}
    d = agg.distribution(history(month_of("2025-07", spec)), "sector", k=K)
    retail = d["rows"][1]
    assert retail["cells"]["D"] == {"count": None, "suppressed": True, "share": None}
    assert sum(r["cells"]["D"]["suppressed"] for r in d["rows"]) >= 2  # the column needs a partner
    assert sum(c["suppressed"] for c in retail["cells"].values()) >= 2  # and so does the row
    lines_ok(d, list(agg.CLASSES))
    assert "<" not in json.dumps(d)  # no bound is published for a hidden cell


def test_class_totals_are_hidden_alike_in_every_table_of_a_month():
    """3 class-A merchants in the whole month: every dimension's table and the by-month view hide the same totals."""
    spec = {
        ("catering", "A"): 3,
        ("catering", "B"): 30,
        ("catering", "C"): 20,
        ("catering", "D"): 12,
        ("retail", "B"): 35,
        ("retail", "C"): 15,
        ("retail", "D"): 11,
    }
    h = history(month_of("2025-07", spec))
    hidden = {
        by: tuple(agg.distribution(h, by, k=K)["total"]["cells"][c]["suppressed"] for c in agg.CLASSES)
        for by in agg.DIMENSIONS
    }
    assert len(set(hidden.values())) == 1
    shared = next(iter(hidden.values()))
    assert shared[0] and sum(shared) >= 2
    by_month = agg.distribution(h, "month", k=K)["rows"][0]["cells"]
    assert tuple(by_month[c]["suppressed"] for c in agg.CLASSES) == shared
    for by in agg.DIMENSIONS:
        lines_ok(agg.distribution(h, by, k=K), list(agg.CLASSES))


def test_filters_select_rows_of_the_protected_table():
    h = history(month_of("2025-07", BIG))
    full = agg.distribution(h, "city", k=K)
    only = agg.distribution(h, "city", province="33", k=K)
    assert [r["key"] for r in only["rows"]] == ["3301"]
    assert only["rows"][0] == next(r for r in full["rows"] if r["key"] == "3301")
    assert [r["key"] for r in agg.distribution(h, "sector", sector="retail", k=K)["rows"]] == ["retail"]
    with pytest.raises(ViewError, match="cross-table"):
        agg.distribution(h, "province", sector="retail", k=K)
    with pytest.raises(ViewError, match="no month 2030-01"):
        agg.distribution(h, "sector", "2030-01", k=K)
    with pytest.raises(ViewError, match="by must be"):
        agg.distribution(h, "colour", k=K)


def test_distribution_by_month_and_latest_month_default():
    h = history(month_of("2025-06", BIG) + month_of("2025-07", {**BIG, ("retail", "A"): 5}))
    d = agg.distribution(h, "month", k=K)
    assert [r["key"] for r in d["rows"]] == ["2025-06", "2025-07"]
    assert d["rows"][0]["cells"]["A"]["count"] == 65 and d["rows"][1]["total"]["count"] == 168
    assert agg.distribution(h, "sector", k=K)["month"] == "2025-07"


def test_outcomes_rates_intervals_and_jeffreys_test():
    h = history(month_of("2024-01", BIG))
    # every class-D merchant defaults, and 10 of the class-C ones; others perform
    ids_c = h.filter(pl.col("class") == "C")["merchant_id"].to_list()[:10]
    panel = (
        h.select("merchant_id", "as_of", "class")
        .with_columns(bad=((pl.col("class") == "D") | pl.col("merchant_id").is_in(ids_c)).cast(pl.Int8))
        .drop("class")
    )
    o = agg.outcomes(h, panel, k=K)
    json.dumps(o)
    rows = {r["key"]: r for r in o["rows"]}
    c = rows["C"]
    assert c["n"]["count"] == 35 and c["defaults"]["count"] == 10 and c["default_rate"] == pytest.approx(10 / 35)
    lo, hi = beta.ppf([0.025, 0.975], 10.5, 25.5)
    assert (c["interval"]["low"], c["interval"]["high"]) == (pytest.approx(lo, abs=1e-6), pytest.approx(hi, abs=1e-6))
    assert c["jeffreys_p"] == pytest.approx(jeffreys_pvalue(35, 10, 0.06), abs=1e-6)
    assert rows["A"]["defaults"]["count"] == 0 and rows["A"]["interval"]["low"] == 0.0
    assert o["months_with_outcomes"] == ["2024-01"]
    assert o["total"]["n"]["count"] == 188


def test_outcomes_hide_small_default_counts_and_pool_months_by_merchant():
    months = [f"2024-{m:02d}" for m in range(1, 7)]
    rows = []
    for m in months:  # the same 60 merchants every month; one of them defaults, six months running
        rows += month_of(m, {("catering", "B"): 60})
    h = history(rows)
    panel = h.select("merchant_id", "as_of").with_columns(bad=(pl.col("merchant_id") == "M00000").cast(pl.Int8))
    o = agg.outcomes(h, panel, k=K)
    b = next(r for r in o["rows"] if r["key"] == "B")
    assert b["n"]["count"] == 360
    assert b["defaults"] == {"count": None, "suppressed": True}  # 6 merchant-months, but one merchant
    assert b["default_rate"] is None and b["interval"] is None and b["jeffreys_p"] is None
    assert b["mean_pd"] == pytest.approx(0.02)


def test_outcomes_without_labels():
    h = history(month_of("2025-07", BIG))
    panel = pl.DataFrame(schema={"merchant_id": pl.String, "as_of": pl.Date, "bad": pl.Int8})
    o = agg.outcomes(h, panel, k=K)
    assert o["months_with_outcomes"] == [] and all(r["default_rate"] is None for r in o["rows"])


def test_stability_psi_and_bands():
    same = agg.stability(history(month_of("2025-06", BIG) + month_of("2025-07", BIG)), k=K)
    assert same["rows"][0]["psi_class"] == pytest.approx(0.0) and same["rows"][0]["band_class"] == "stable"
    moved = {("catering", "A"): 5, ("catering", "B"): 10, ("catering", "C"): 60, ("catering", "D"): 90}
    s = agg.stability(history(month_of("2025-06", BIG) + month_of("2025-07", moved)), k=K)
    row = s["rows"][0]
    assert (row["month"], row["previous"]) == ("2025-07", "2025-06")
    assert row["psi_class"] == pytest.approx(psi_from_counts([65, 65, 35, 23], [5, 10, 60, 90]), abs=1e-6)
    assert row["band_class"] == "shifted" and row["band_score"] == "shifted"
    assert [agg.psi_band(v) for v in (0.0999, 0.1, 0.2499, 0.25, None)] == [
        "stable",
        "drifting",
        "drifting",
        "shifted",
        None,
    ]


def test_migration_matrix_with_new_and_departed_merchants():
    before = month_of("2025-06", {("catering", "A"): 30, ("catering", "B"): 40}, uniform=True)  # M0-29 A, M30-69 B
    after = []
    for mid, _, _cls, *rest in before:
        n = int(mid[1:])
        if n >= 54:
            continue  # 16 B merchants leave
        new_cls = "B" if n < 12 else "A" if n < 30 else "C" if n < 42 else "A"
        after.append((mid, "2025-07", new_cls, *rest))
    after += month_of("2025-07", {("catering", "C"): 15}, start=100, uniform=True)  # 15 new merchants
    m = agg.migration(history(before + after), k=K)
    json.dumps(m)
    rows = {r["key"]: r for r in m["rows"]}
    assert (m["from"], m["to"]) == ("2025-06", "2025-07") and m["suppressed_cells"] == 0
    assert rows["A"]["cells"]["A"]["count"] == 18 and rows["A"]["cells"]["B"]["count"] == 12
    assert rows["A"]["cells"]["B"]["share"] == pytest.approx(12 / 30)
    assert rows["B"]["cells"]["C"]["count"] == 12 and rows["B"]["cells"]["A"]["count"] == 12
    assert rows["B"]["cells"]["exited"]["count"] == 16 and rows["B"]["total"]["count"] == 40
    assert rows["new"]["cells"]["C"]["count"] == 15 and rows["new"]["cells"]["exited"]["count"] == 0
    assert m["column_totals"]["A"]["count"] == 30 and m["total"]["count"] == 85
    s = m["summary"]
    assert s["merchants_in_both"] == 54 and not s["suppressed"]
    assert (s["upgrades_share"], s["downgrades_share"], s["stable_share"]) == (
        pytest.approx(12 / 54, abs=1e-6),
        pytest.approx(24 / 54, abs=1e-6),
        pytest.approx(18 / 54, abs=1e-6),
    )
    with pytest.raises(ViewError, match="before"):
        agg.migration(history(before + after), k=K, from_month="2025-07", to_month="2025-06")


def test_migration_hides_small_moves_and_withholds_summaries_that_would_expose_them():
    before = month_of("2025-06", {("catering", "A"): 40, ("catering", "B"): 40}, uniform=True)
    after = [
        (mid, "2025-07", "B" if mid == "M00000" else "A" if 40 <= int(mid[1:]) < 52 else cls, *rest)
        for mid, _, cls, *rest in before
    ]  # one A -> B, twelve B -> A
    m = agg.migration(history(before + after), k=K)
    rows = {r["key"]: r for r in m["rows"]}
    assert rows["A"]["cells"]["B"] == {"count": None, "suppressed": True, "share": None}
    assert rows["A"]["cells"]["A"]["suppressed"] and rows["B"]["cells"]["B"]["suppressed"]
    assert m["summary"]["suppressed"] and m["summary"]["upgrades_share"] is None  # 1 downgrade: too few
    assert rows["A"]["total"]["count"] == 40  # class totals as the distribution view publishes them


def test_migration_fails_closed_when_published_totals_would_pin_a_move():
    """One merchant A -> B and nothing else: with zeros and the months' class totals published, the matrix
    would reveal it, so nothing of it is published but the class totals the distribution view shows."""
    before = month_of("2025-06", {("catering", "A"): 40, ("catering", "B"): 40}, uniform=True)
    after = [(mid, "2025-07", "B" if mid == "M00000" else cls, *rest) for mid, _, cls, *rest in before]
    m = agg.migration(history(before + after), k=K)
    assert all(c["suppressed"] for r in m["rows"] for c in r["cells"].values())  # zeros too
    assert [r["total"]["count"] for r in m["rows"][:2]] == [40, 40]
    assert m["column_totals"]["A"]["count"] == 39 and m["total"]["suppressed"]


def test_concentration_herfindahl():
    one_grade = history(month_of("2025-07", {("catering", "B"): 50}))
    c = agg.concentration(one_grade, k=K, grades=[str(g) for g in range(1, 10)])
    assert c["rows"][0]["herfindahl"] == 1.0 and c["rows"][0]["herfindahl_normalised"] == 1.0
    spread = history(month_of("2025-07", {("catering", x): 20 for x in "ABCD"}))
    c = agg.concentration(spread, k=K, grades=[str(g) for g in range(1, 10)])
    assert c["rows"][0]["herfindahl"] == pytest.approx(0.25)
    tiny = agg.concentration(history(month_of("2025-07", {("catering", "B"): 4})), k=K)
    assert tiny["rows"][0]["herfindahl"] is None and tiny["rows"][0]["suppressed"]


def test_inclusion_rates_ratio_limit_and_distinct_merchants():
    h = history(month_of("2025-07", BIG))
    segs = dict(h.select("merchant_id", "urban_rural").iter_rows())
    urban = [m for m, s in segs.items() if s == "urban"]
    rural = [m for m, s in segs.items() if s == "rural"]
    decisions = (
        [(m, "2025-07", "approve", 5_000_000) for m in urban[:60]]
        + [(m, "2025-07", "refer", 0) for m in urban[60:80]]
        + [(m, "2025-07", "decline", 0) for m in urban[80:100]]
        + [(m, "2025-07", "approve", 3_000_000) for m in rural[:20]]
        + [(m, "2025-07", "refer", 0) for m in rural[20:35]]
        + [(rural[40], "2025-07", "decline", 0)] * 12  # one merchant declined twelve times
    )
    d = pl.DataFrame(decisions, schema=agg_decision_schema(), orient="row")
    inc = agg.inclusion(h, d, k=K, by="urban_rural")
    json.dumps(inc)
    rows = {r["key"]: r for r in inc["rows"]}
    u, r = rows["urban"], rows["rural"]
    assert u["approval_rate"] == pytest.approx(0.6) and u["average_approved_limit_fen"] == 5_000_000
    overall = 80 / 147
    assert u["approval_ratio"] == pytest.approx(0.6 / overall, abs=1e-5)
    assert r["cells"]["decline"] == {"count": None, "suppressed": True, "rate": None}  # 12 decisions, 1 merchant
    assert r["cells"]["refer"]["suppressed"] and r["approval_rate"] == pytest.approx(20 / 47)
    assert u["cells"]["refer"]["suppressed"] and u["cells"]["decline"]["suppressed"]  # the cycle closes
    assert inc["total"]["decisions"]["count"] == 147
    with pytest.raises(ViewError):
        agg.inclusion(h, d, k=K, by="city")


def test_inclusion_calibration_by_segment():
    h = history(month_of("2024-01", BIG))
    panel = (
        h.select("merchant_id", "as_of", "class").with_columns(bad=(pl.col("class") == "D").cast(pl.Int8)).drop("class")
    )
    empty = pl.DataFrame(schema=agg_decision_schema())
    inc = agg.inclusion(h, empty, k=K, by="sector", panel=panel)
    cal = {r["key"]: r for r in inc["calibration"]["rows"]}
    assert cal["catering"]["defaults"]["count"] == 12 and cal["catering"]["n"]["count"] == 102
    expected_pd = (40 * 0.005 + 30 * 0.02 + 20 * 0.06 + 12 * 0.2) / 102
    assert cal["catering"]["mean_pd"] == pytest.approx(expected_pd, abs=1e-6)
    assert cal["catering"]["pd_minus_observed"] == pytest.approx(expected_pd - 12 / 102, abs=1e-5)
    assert inc["rows"] == [] and inc["total"]["approval_rate"] is None


def agg_decision_schema() -> dict:
    from regulator.views import DECISION_SCHEMA

    return DECISION_SCHEMA


# -- linked tables: an adversary who reads every table of a month at once -------------------------
def joint_adversary(
    tables: dict[str, tuple[np.ndarray, np.ndarray]],
    shared: dict[tuple, tuple],
    sums: list[list[tuple]] = (),
    small: int | None = None,
) -> list[tuple]:
    """Cells (table, i, j) pinned by the union of all tables' line equations.

    ``tables``: name -> (augmented values, suppressed mask); ``shared``: cell -> canonical cell
    (the same number published in two tables is one unknown); ``sums``: extra equations, lists of
    cells summing to zero with the sign of the last one flipped (a total); ``small``: only try
    cells counting 1 to small - 1.
    """
    from scipy.optimize import linprog

    def key(c):
        return shared.get(c, c)

    value = {}
    hidden = set()
    for name, (v, s) in tables.items():
        for i in range(v.shape[0]):
            for j in range(v.shape[1]):
                value[key((name, i, j))] = v[i, j]
                if s[i, j]:
                    hidden.add(key((name, i, j)))
    # a number hidden in one table but shown in another is known
    shown = {
        key((n, i, j))
        for n, (v, s) in tables.items()
        for i in range(v.shape[0])
        for j in range(v.shape[1])
        if not s[i, j]
    }
    hidden -= shown
    unknown = sorted(hidden)
    pos = {c: t for t, c in enumerate(unknown)}
    eqs = []
    for name, (v, _) in tables.items():
        r, c = v.shape
        eqs += [[((name, i, j), -1 if j == c - 1 else 1) for j in range(c)] for i in range(r)]
        eqs += [[((name, i, j), -1 if i == r - 1 else 1) for i in range(r)] for j in range(c)]
    eqs += [[(cell, -1 if t == len(eq) - 1 else 1) for t, cell in enumerate(eq)] for eq in sums]
    a, b = [], []
    for eq in eqs:
        row, rhs = np.zeros(len(unknown)), 0.0
        for cell, coef in eq:
            k_ = key(cell)
            if k_ in pos:
                row[pos[k_]] += coef
            else:
                rhs -= coef * value[k_]
        if row.any():
            a.append(row)
            b.append(rhs)
    pinned = []
    for t, c in enumerate(unknown):
        if small is not None and not 1 <= value[c] < small:
            continue
        obj = np.zeros(len(unknown))
        obj[t] = 1
        kw = dict(A_eq=np.array(a) if a else None, b_eq=b or None, bounds=(0, None), method="highs")
        lo, hi = linprog(obj, **kw), linprog(-obj, **kw)
        top = np.inf if hi.status == 3 else -hi.fun
        if top - lo.fun < 1 - 1e-6:
            pinned.append((c, value[c]))
    return pinned


random_months = st.lists(
    st.tuples(
        st.sampled_from(["catering", "retail", "laundry_dyeing"]),
        st.sampled_from("ABCD"),
        st.integers(0, 2),
        st.booleans(),
        st.booleans(),
        st.sampled_from("ABCD") | st.none(),
    ),
    min_size=15,
    max_size=50,
)


@settings(max_examples=8, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(random_months)
def test_no_small_cell_recoverable_across_a_months_tables_and_the_migration(merchants):
    """Random merchants (sector, class, province, urban, enterprise, class next month or gone), k = 5."""
    k = 5
    provinces = ["33", "44", "51"]
    rows = []
    for n, (sector, cls, p, urban, ent, nxt) in enumerate(merchants):
        seg = (
            sector,
            provinces[p],
            provinces[p] + "01",
            "urban" if urban else "rural",
            "enterprise" if ent else "individual_business",
        )
        rows.append((f"M{n:05d}", "2025-06", cls, *seg))
        if nxt is not None:
            rows.append((f"M{n:05d}", "2025-07", nxt, *seg))
    h = history(rows)
    tables, shared = {}, {}
    for month in agg.months(h):
        month_t, _ = agg.month_tables(h, month, k)
        for dim, (_, t) in month_t.items():
            name = f"{month}:{dim}"
            tables[name] = (t.values, t.suppressed)
            last = t.values.shape[0] - 1
            for j in range(t.values.shape[1]):  # class totals and the month's count: one number per month
                shared[(name, last, j)] = (month, "total", j)
    if len(agg.months(h)) == 2:
        m = agg.migration(h, k=k)
        v = _migration_values(h)
        s = _migration_mask(m)
        tables["mig"] = (v, s)
        for i in range(4):
            shared[("mig", i, 5)] = ("2025-06", "total", i)
            shared[("mig", 5, i)] = ("2025-07", "total", i)
    assert joint_adversary_primary(tables, shared, k) == []


def joint_adversary_primary(tables, shared, k) -> list:
    return joint_adversary(tables, shared, small=k)


def _migration_values(h: pl.DataFrame) -> np.ndarray:
    from regulator.suppression import augment

    a = h.filter(pl.col("month") == "2025-06").select("merchant_id", pl.col("class").alias("f"))
    b = h.filter(pl.col("month") == "2025-07").select("merchant_id", pl.col("class").alias("t"))
    pairs = a.join(b, on="merchant_id", how="full", coalesce=True).with_columns(
        pl.col("f").fill_null("new"), pl.col("t").fill_null("exited")
    )
    counts, _ = agg.count_grid(pairs, "f", list(agg.MIGRATION_ROWS), "t", list(agg.MIGRATION_COLS))
    return augment(counts)


def _migration_mask(m: dict) -> np.ndarray:
    cols = list(agg.MIGRATION_COLS)
    grid = [[r["cells"][c]["suppressed"] for c in cols] + [r["total"]["suppressed"]] for r in m["rows"]]
    grid.append([m["column_totals"][c]["suppressed"] for c in cols] + [m["total"]["suppressed"]])
    return np.array(grid)


# -- the province and city tables of one month, read together -------------------------------------
def _market(cities: dict[str, list[str]], month: str = "2025-06") -> pl.DataFrame:
    """``cities``: prefecture -> the class of each of its merchants (the province is the first two digits)."""
    rows = [
        (f"M{city}{n:03d}", month, cls, "catering", city[:2], city, "urban", "individual_business")
        for city, classes in cities.items()
        for n, cls in enumerate(classes)
    ]
    return history(rows)


def _published(h: pl.DataFrame, by: str, month: str) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Keys, true augmented counts (from the rows, not the views' code) and the mask the view publishes."""
    view = agg.distribution(h, by, month, k=K)
    keys = [r["key"] for r in view["rows"]]
    frame = h.filter(pl.col("month") == month)
    values = np.zeros((len(keys) + 1, 5), dtype=np.int64)
    for i, key in enumerate(keys):
        for j, cls in enumerate("ABCD"):
            values[i, j] = frame.filter((pl.col(by) == key) & (pl.col("class") == cls)).height
    values[:, 4] = values[:, :4].sum(axis=1)
    values[-1] = values[:-1].sum(axis=0)
    lines = [*view["rows"], view["total"]]
    mask = np.array([[r["cells"][c]["suppressed"] for c in "ABCD"] + [r["total"]["suppressed"]] for r in lines])
    return keys, values, mask


def _pinned_across_levels(h: pl.DataFrame, month: str = "2025-06", alone: bool = False) -> list:
    """Hidden cells of 1 to K - 1 merchants that the province and city tables pin down together (LP);
    ``alone``: with each table protected by itself, as before the joint check."""
    provinces, p_values, p_mask = _published(h, "province", month)
    cities, c_values, c_mask = _published(h, "city", month)
    if alone:
        p_mask, c_mask = _separately(h, "province", month), _separately(h, "city", month)
    tables = {"province": (p_values, p_mask), "city": (c_values, c_mask)}
    last_p, last_c = len(provinces), len(cities)
    shared = {("city", last_c, j): ("province", last_p, j) for j in range(5)}  # the same class totals
    sums = [  # a province's cell is the sum of its prefectures' cells, column by column
        [("city", i, j) for i, c in enumerate(cities) if c[:2] == p] + [("province", q, j)]
        for q, p in enumerate(provinces)
        for j in range(5)
    ]
    return joint_adversary(tables, shared, sums, small=K)


def _separately(h: pl.DataFrame, by: str, month: str = "2025-06") -> np.ndarray:
    """The mask of ``by``'s table protected alone (with the month's class totals as the views force them)."""
    from regulator.suppression import protect

    keys, values, _ = _published(h, by, month)
    force = np.zeros(values.shape, dtype=bool)
    force[-1] = _published(h, "sector", month)[2][-1]
    return protect(values[:-1, :4], K, force=force).suppressed


def test_a_single_prefecture_province_and_a_small_prefecture_are_not_pinned_by_both_levels():
    """44 has one prefecture (its row is 4401's row); 3303 has 4 merchants next to published siblings (3302,
    and 3301's class A). Each table alone is safe; together they leak unless protected jointly."""
    classes = {
        "3301": ["A"] * 14 + ["B"] * 12 + ["C"] * 11 + ["D"] * 3,
        "3302": ["A"] * 13 + ["B"] * 10 + ["C"] * 12 + ["D"] * 10,
        "3303": ["A", "B", "B", "C"],
        "4401": ["A"] * 20 + ["B"] * 15 + ["C"] * 4 + ["D"] * 11,
        "5101": ["A"] * 12 + ["B"] * 11 + ["C"] * 13 + ["D"] * 12,
    }
    h = _market(classes)
    # alone: 3303's A (1) is 33's A minus 3301's and 3302's; 4401's C (4) is 44's C, whose complement in the
    # province table (D, 11) the city table publishes for 4401, and so back to 44's C
    assert {c for c, _ in _pinned_across_levels(h, alone=True)} == {("city", 2, 0), ("city", 3, 2), ("province", 1, 2)}
    assert _pinned_across_levels(h) == []
    cities = {r["key"]: r for r in agg.distribution(h, "city", k=K)["rows"]}
    provinces = {r["key"]: r for r in agg.distribution(h, "province", k=K)["rows"]}
    assert cities["3303"]["total"]["suppressed"] and cities["3303"]["cells"]["A"]["suppressed"]
    assert cities["3301"]["cells"]["A"]["suppressed"] or cities["3302"]["cells"]["A"]["suppressed"]
    hidden_44 = {c for c, v in provinces["44"]["cells"].items() if v["suppressed"]}
    assert hidden_44 == {c for c, v in cities["4401"]["cells"].items() if v["suppressed"]} >= {"C"}
    # only extra suppression: what the tables hid alone stays hidden
    for by in ("province", "city"):
        _, _, mask = _published(h, by, "2025-06")
        assert (mask >= _separately(h, by)).all()
    # a province filter selects rows of the same jointly protected city table
    filtered = agg.distribution(h, "city", province="33", k=K)["rows"]
    assert [r["key"] for r in filtered] == ["3301", "3302", "3303"]
    assert all(r == cities[r["key"]] for r in filtered)


@pytest.mark.parametrize("seed", range(8))
def test_random_markets_pin_no_small_cell_across_province_and_city_tables(seed):
    """1 to 4 prefectures per province, 40% of them small, random classes: no hidden small cell of either
    table follows from both published tables together (class cells, row totals and class totals)."""
    rng = np.random.default_rng(seed)
    classes = {
        f"{p}{c + 1:02d}": list(rng.choice(list("ABCD"), size=int(n), p=[0.4, 0.3, 0.2, 0.1]))
        for p in ("11", "33", "44", "51")
        for c in range(rng.integers(1, 5))
        for n in [rng.integers(1, 10) if rng.random() < 0.4 else rng.integers(10, 50)]
    }
    h = _market(classes)
    assert _pinned_across_levels(h) == []
    for by in ("province", "city"):
        assert (_published(h, by, "2025-06")[2] >= _separately(h, by)).all()
