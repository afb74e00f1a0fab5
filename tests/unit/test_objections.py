"""The objection store: filing, the 20-day deadline, overdue, resolution once, append-only, the open index."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

import pytest

from core.objections import DEADLINE_DAYS, ObjectionError, ObjectionStore

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def store(tmp_path):
    s = ObjectionStore(tmp_path / "objections.db")
    yield s
    s.close()


def _file(store, merchant="M1", record="C1", now=T0, **kw):
    return store.file(
        merchant_id=merchant,
        kind="objection",
        table="complaints",
        record_id=record,
        reason="not ours",
        filed_by="m",
        now=now,
        **kw,
    )


def test_deadline_and_overdue(store):
    o = _file(store)
    assert datetime.fromisoformat(o.due_by) - datetime.fromisoformat(o.received_at) == timedelta(days=DEADLINE_DAYS)
    assert o.status(T0 + timedelta(days=19)) == "received"
    assert o.status(T0 + timedelta(days=20, seconds=1)) == "overdue"
    assert [x.objection_id for x in store.list(status="overdue", now=T0 + timedelta(days=21))] == [o.objection_id]
    assert store.list(status="received", now=T0 + timedelta(days=21)) == []
    _, late = store.resolve(o.objection_id, outcome="upheld", resolved_by="steward", now=T0 + timedelta(days=25))
    assert late.status() == "resolved" and late.overdue()  # answered late: still counted as overdue


def test_resolved_once_and_only_with_a_known_outcome(store):
    o = _file(store)
    with pytest.raises(ObjectionError, match="outcome"):
        store.resolve(o.objection_id, outcome="maybe", resolved_by="s")
    before, after = store.resolve(o.objection_id, outcome="corrected", resolved_by="s", correction_id="K1", note="n")
    assert before.is_open and not after.is_open and after.correction_id == "K1"
    with pytest.raises(ObjectionError, match="resolved already"):
        store.resolve(o.objection_id, outcome="upheld", resolved_by="s")
    with pytest.raises(ObjectionError, match="no objection"):
        store.resolve("OBJ-NOPE", outcome="upheld", resolved_by="s")


def test_bad_kind_or_table_is_refused(store):
    with pytest.raises(ObjectionError, match="kind"):
        store.file(merchant_id="M1", kind="appeal", table="complaints", record_id="C", reason="r", filed_by="m")
    with pytest.raises(ObjectionError, match="table"):
        store.file(merchant_id="M1", kind="objection", table="truth", record_id="C", reason="r", filed_by="m")


def test_append_only(store, tmp_path):
    _file(store)
    conn = sqlite3.connect(tmp_path / "objections.db")
    for sql in ("UPDATE objections SET reason = 'x'", "DELETE FROM objections"):
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute(sql)
    conn.close()


def test_open_index_follows_other_connections(store, tmp_path):
    other = ObjectionStore(tmp_path / "objections.db")  # another worker of the same server
    assert store.open_by_merchant() == {}
    o = _file(other, merchant="M7")
    assert [x.objection_id for x in store.open_by_merchant()["M7"]] == [o.objection_id]
    other.resolve(o.objection_id, outcome="upheld", resolved_by="s")
    assert store.open_by_merchant() == {}
    other.close()


def test_rescores_in_order(store):
    for n in (1, 2):
        store.add_rescore(
            merchant_id="M1",
            snapshot_sha256="abc",
            model_version="3",
            features_as_of="2025-07-01",
            previous={"pd": 0.1},
            answer={"pd": 0.1 / n},
            features={"x": n},
            reason_en="e",
            reason_zh="z",
            now=T0 + timedelta(hours=n),
        )
    got = store.rescores("M1", snapshot_sha256="abc")
    assert [r["features"]["x"] for r in got] == [1, 2] and store.rescores("M1", snapshot_sha256="other") == []
