"""The regulator's view of merchants' objections: states as of a time, suppression, and nothing recoverable.

Objections are filed into a temporary :class:`core.objections.ObjectionStore` with injected
timestamps; the view is checked against counts worked out here, and its suppression against an
exact solver written here too (every published number an equation over the underlying counts).
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from core.objections import ObjectionStore
from regulator.common import ViewError
from regulator.objections import check_query, objections
from regulator.views import read_objections

NOW = datetime(2025, 9, 15, 12, tzinfo=UTC)
K = 10
STATES = ("corrected_in_time", "corrected_late", "upheld_in_time", "upheld_late", "open_in_time", "open_overdue")
MEASURE_STATES = {
    "received": set(STATES),
    "corrected": {"corrected_in_time", "corrected_late"},
    "upheld": {"upheld_in_time", "upheld_late"},
    "open": {"open_in_time", "open_overdue"},
    "overdue": {"corrected_late", "upheld_late", "open_overdue"},
    "resolved_in_time": {"corrected_in_time", "upheld_in_time"},
    "open_in_time": {"open_in_time"},
    "resolved": {"corrected_in_time", "corrected_late", "upheld_in_time", "upheld_late"},
}
KINDS = ("objection", "repair")


@pytest.fixture
def store(tmp_path):
    s = ObjectionStore(tmp_path / "var" / "objections.db")
    yield s
    s.close()


def history(segments: dict[str, tuple[str, str]]) -> pl.DataFrame:
    """A class history of one month: merchant -> (sector, province)."""
    return pl.DataFrame(
        {
            "merchant_id": list(segments),
            "month": "2025-06",
            "sector": [s for s, _ in segments.values()],
            "province": [p for _, p in segments.values()],
        }
    )


def file(store, merchant: str, received: datetime, *, kind="objection", outcome=None, after_days=None):
    o = store.file(
        merchant_id=merchant,
        kind=kind,
        table="complaints",
        record_id="R1",
        reason="not mine",
        filed_by=merchant,
        now=received,
    )
    if outcome is not None:
        store.resolve(o.objection_id, outcome=outcome, resolved_by="steward", now=received + timedelta(days=after_days))
    return o


def counts(row: dict) -> dict:
    return {name: c["count"] for name, c in row["cells"].items()}


def test_states_as_of_now_overdue_and_resolved_late_counted(store):
    t0 = datetime(2025, 9, 1, tzinfo=UTC)
    file(store, "M1", t0)  # open, 14 days old: in time
    file(store, "M2", t0 - timedelta(days=30))  # open past its 20 days: overdue (received in August)
    file(store, "M3", t0, outcome="corrected", after_days=5)  # resolved in time
    file(store, "M4", t0, outcome="upheld", after_days=9)  # resolved in time
    late = file(store, "M5", t0 - timedelta(days=40), outcome="upheld", after_days=25)  # resolved late: overdue
    file(store, "M6", t0, outcome="corrected", after_days=30)  # resolved after NOW: still open as of NOW
    file(store, "M7", NOW + timedelta(days=1))  # received after NOW: not counted
    assert store.get(late.objection_id).overdue(NOW)
    hist = history({f"M{i}": ("retail", "33") for i in range(1, 8)})

    sep = objections(store.list(), hist, k=1, by="sector", month="2025-09", now=NOW)
    assert [r["key"] for r in sep["rows"]] == ["retail"] and sep["month"] == "2025-09"
    assert counts(sep["total"]) == {
        "received": 4,
        "resolved": 2,
        "corrected": 1,
        "upheld": 1,
        "open": 2,
        "overdue": 0,
        "resolved_in_time": 2,
        "open_in_time": 2,
    }
    assert sep["total"]["median_days_to_resolve"] == 7.0 and sep["total"]["resolved_within_deadline_share"] == 1.0

    by_month = objections(store.list(), hist, k=1, by="month", now=NOW)
    assert [r["key"] for r in by_month["rows"]] == ["2025-07", "2025-08", "2025-09"]
    assert by_month["total"] is None and by_month["months"] == ["2025-07", "2025-08", "2025-09"]
    july, august, september = (counts(r) for r in by_month["rows"])
    assert july == {**dict.fromkeys(july, 0), "received": 1, "resolved": 1, "upheld": 1, "overdue": 1}
    assert august == {**dict.fromkeys(august, 0), "received": 1, "open": 1, "overdue": 1}
    assert september == counts(sep["total"])
    assert by_month["rows"][0]["resolved_within_deadline_share"] == 0.0
    assert by_month["rows"][0]["median_days_to_resolve"] == 25.0
    # the same objections a little later: M1 is overdue, M6 resolved late
    later = objections(store.list(), hist, k=1, by="month", now=NOW + timedelta(days=20))
    assert counts(later["rows"][-1]) == {
        "received": 5,  # M7 now counted too
        "resolved": 3,
        "corrected": 2,
        "upheld": 1,
        "open": 2,
        "overdue": 2,  # M1 open past due, M6 resolved after its deadline
        "resolved_in_time": 2,
        "open_in_time": 1,
    }


def test_kind_narrows_and_segments_come_from_the_history(store):
    t0 = datetime(2025, 9, 2, tzinfo=UTC)
    file(store, "M1", t0, kind="repair", outcome="corrected", after_days=3)
    file(store, "M2", t0)
    file(store, "M9", t0, kind="repair")  # not in the history: unknown
    hist = pl.DataFrame(
        {
            "merchant_id": ["M1", "M1", "M2"],
            "month": ["2025-05", "2025-06", "2025-06"],
            "sector": ["retail", "catering", "retail"],  # M1's latest month says catering
            "province": ["33", "44", "33"],
        }
    )
    out = objections(store.list(), hist, k=1, by="sector", kind="repair", now=NOW)
    assert out["kind"] == "repair" and out["kind_label"]["zh"] == "信用修复"
    rows = {r["key"]: counts(r) for r in out["rows"]}
    assert set(rows) == {"catering", "retail", "unknown"}  # the same rows as for both kinds
    assert rows["catering"]["received"] == 1 and rows["catering"]["corrected"] == 1
    assert rows["retail"]["received"] == 0 and rows["unknown"]["received"] == 1 and rows["unknown"]["open"] == 1
    prov = objections(store.list(), hist, k=1, by="province", now=NOW)
    assert {r["key"]: r["label"]["en"] for r in prov["rows"]} == {
        "33": "Zhejiang",
        "44": "Guangdong",
        "unknown": "unknown",
    }
    assert [m["key"] for m in out["measures"]][:3] == ["received", "resolved", "corrected"]


def test_no_objections_means_zero_not_an_error(tmp_path):
    path = tmp_path / "var" / "objections.db"
    assert read_objections(path) == [] and not path.exists()  # reading creates nothing
    for by in ("month", "sector", "province"):
        out = objections([], None, k=K, by=by, now=NOW)
        assert out["rows"] == [] and out["suppressed_cells"] == 0
    out = objections([], None, k=K, by="sector", now=NOW)
    assert out["month"] == "2025-09" and counts(out["total"]) == dict.fromkeys(counts(out["total"]), 0)


@pytest.mark.parametrize(
    ("by", "month", "kind"),
    [("city", None, None), ("month", "2025-07", None), ("sector", "2025-7", None), ("sector", None, "complaint")],
)
def test_bad_queries(by, month, kind):
    with pytest.raises(ViewError):
        check_query(by, month, kind)
    with pytest.raises(ViewError):
        objections([], None, k=K, by=by, month=month, kind=kind, now=NOW)


# -- suppression -------------------------------------------------------------------------------------
def truth(records, segments: dict[str, tuple[str, str]], now: datetime) -> pl.DataFrame:
    """Each objection's month, kind, segments and state as of ``now``, worked out here."""
    rows = []
    for o in records:
        received = datetime.fromisoformat(o.received_at)
        if received > now:
            continue
        done = datetime.fromisoformat(o.resolved_at) if o.resolved_at else None
        due = received + timedelta(days=20)
        if done is not None and done <= now:
            state = f"{o.outcome}_{'late' if done > due else 'in_time'}"
        else:
            state = "open_overdue" if now > due else "open_in_time"
        sector, province = segments.get(o.merchant_id, ("unknown", "unknown"))
        rows.append((o.merchant_id, o.kind, received.strftime("%Y-%m"), sector, province, state))
    return pl.DataFrame(rows, schema=["merchant_id", "kind", "month", "sector", "province", "state"], orient="row")


def busy_store(store, n: int, merchants: int, seed: int) -> dict[str, tuple[str, str]]:
    """``n`` objections of ``merchants`` merchants over three months, most resolved, some late; their segments."""
    rnd = random.Random(seed)
    start = datetime(2025, 6, 1, tzinfo=UTC)
    for _ in range(n):
        mid = f"M{rnd.randrange(merchants):04d}"
        received = start + timedelta(days=rnd.uniform(0, 100))
        outcome = rnd.choice(["corrected", "upheld"]) if rnd.random() < 0.75 else None
        days = rnd.choice([rnd.uniform(1, 19), rnd.uniform(1, 19), rnd.uniform(21, 40)])
        if outcome is not None and received + timedelta(days=days) > NOW:
            outcome = None
        file(
            store, mid, received, kind="repair" if rnd.random() < 0.3 else "objection", outcome=outcome, after_days=days
        )
    sectors = ["catering", "retail", "laundry_dyeing", "housekeeping"]
    return {
        f"M{i:04d}": (sectors[rnd.randrange(4)] if i % 11 else "retail", str(rnd.choice([33, 44, 44, 51, 11])))
        for i in range(merchants)
    }


def published_tables(records, hist, by: str, month: str | None) -> dict[str, dict]:
    """The view for both kinds and for each kind: what a reader can put side by side."""
    return {
        scope: objections(records, hist, k=K, by=by, month=month, kind=None if scope == "all" else scope, now=NOW)
        for scope in ("all", *KINDS)
    }


def check_protection(tables: dict[str, dict], facts: pl.DataFrame, by: str) -> int:
    """Every claim the suppression makes, checked from the published JSON and the true counts; returns hidden cells."""
    from scipy.optimize import linprog

    first = tables["all"]
    keys = [r["key"] for r in first["rows"]]
    lines = [(r["key"], r) for r in first["rows"]] + ([(None, first["total"])] if first["total"] else [])
    col = "month" if by == "month" else by
    unknowns = [(key, kind, state) for key in keys for kind in KINDS for state in STATES]
    index = {u: n for n, u in enumerate(unknowns)}
    equations, values, hidden = [], [], []
    for scope, table in tables.items():
        assert [r["key"] for r in table["rows"]] == keys  # the same rows whatever the kind
        rows = [(r["key"], r) for r in table["rows"]] + ([(None, table["total"])] if table["total"] else [])
        for key, row in rows:
            part = facts if key is None else facts.filter(pl.col(col) == key)
            if scope != "all":
                part = part.filter(pl.col("kind") == scope)
            for measure, cell in row["cells"].items():
                mine = part.filter(pl.col("state").is_in(list(MEASURE_STATES[measure])))
                n, merchants = mine.height, mine["merchant_id"].n_unique()
                if cell["suppressed"]:
                    assert cell["count"] is None
                    if measure != "resolved" and 0 < merchants < K:
                        hidden.append((scope, key, measure, n))
                    continue
                assert cell["count"] == n, (scope, key, measure)
                assert n == 0 or merchants >= K, f"{scope} {key} {measure}: {merchants} merchants published"
                if measure == "resolved":
                    continue  # published only where the table already gives it away
                w = np.zeros(len(unknowns))
                for k2 in keys if key is None else [key]:
                    for kind in KINDS if scope == "all" else [scope]:
                        for state in MEASURE_STATES[measure]:
                            w[index[(k2, kind, state)]] = 1
                equations.append(w)
                values.append(n)
            resolved = row["cells"]["resolved"]
            if resolved["suppressed"]:
                assert row["median_days_to_resolve"] is None and row["resolved_within_deadline_share"] is None
    assert lines
    a_eq, b_eq = np.array(equations), np.array(values, dtype=float)
    for scope, key, measure, n in hidden:
        c = np.zeros(len(unknowns))
        for k2 in keys if key is None else [key]:
            for kind in KINDS if scope == "all" else [scope]:
                for state in MEASURE_STATES[measure]:
                    c[index[(k2, kind, state)]] = 1
        lo = linprog(c, A_eq=a_eq, b_eq=b_eq, bounds=(0, None), method="highs")
        hi = linprog(-c, A_eq=a_eq, b_eq=b_eq, bounds=(0, None), method="highs")
        top = np.inf if hi.status == 3 else -hi.fun
        assert lo.status == 0 and top - lo.fun >= 1 - 1e-9, (
            f"{scope} {key} {measure}={n} is pinned to [{lo.fun}, {top}]"
        )
    return len(hidden)


@pytest.mark.parametrize(("n", "merchants", "seed"), [(40, 30, 1), (160, 90, 2), (400, 150, 3)])
def test_small_cells_are_hidden_and_not_recoverable(store, n, merchants, seed):
    segments = busy_store(store, n, merchants, seed)
    hist = history(segments)
    records = store.list()
    facts = truth(records, segments, NOW)
    hidden = 0
    for by in ("sector", "province"):
        for month in ("2025-06", "2025-07", "2025-08"):
            tables = published_tables(records, hist, by, month)
            hidden += check_protection(tables, facts.filter(pl.col("month") == month), by)
    by_month = published_tables(records, hist, "month", None)
    hidden += check_protection(by_month, facts, "month")
    assert hidden > 0  # the data were small enough to need it


def test_a_month_publishes_the_same_totals_everywhere(store):
    segments = busy_store(store, 160, 90, 2)
    hist = history(segments)
    records = store.list()
    for scope in (None, *KINDS):
        rows = {r["key"]: r for r in objections(records, hist, k=K, by="month", kind=scope, now=NOW)["rows"]}
        for month in ("2025-06", "2025-07", "2025-08"):
            sector = objections(records, hist, k=K, by="sector", month=month, kind=scope, now=NOW)["total"]
            province = objections(records, hist, k=K, by="province", month=month, kind=scope, now=NOW)["total"]
            assert sector == province == {k: v for k, v in rows[month].items() if k not in ("key", "label")}


def test_a_small_segment_is_shown_as_hidden_with_its_partner(store):
    """One small sector beside a large one: its counts hide, and so does enough of the large one."""
    t0 = datetime(2025, 8, 4, tzinfo=UTC)
    segments = {f"M{i:03d}": ("retail" if i < 3 else "catering", "33") for i in range(40)}
    for i in range(40):
        file(store, f"M{i:03d}", t0, outcome="corrected" if i % 2 else None, after_days=4)
    out = objections(store.list(), history(segments), k=K, by="sector", month="2025-08", now=NOW)
    rows = {r["key"]: r for r in out["rows"]}
    assert rows["retail"]["cells"]["received"] == {"count": None, "suppressed": True}
    assert rows["catering"]["cells"]["received"]["suppressed"]  # else retail = total - catering
    assert out["total"]["cells"]["received"] == {"count": 40, "suppressed": False}
    assert out["suppressed_cells"] > 0 and out["min_cell_count"] == K
