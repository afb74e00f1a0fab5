"""Audit log: append-only, read back exactly, fails loudly when it cannot write."""

import sqlite3
import threading
import time

import pytest

from core.audit import COLUMNS, AuditLog, AuditRecord, AuditUnavailable, RawJSON, request_hash
from core.settings import Settings


def test_record_round_trips_and_hash_is_canonical(tmp_path):
    log = AuditLog(f"sqlite:///{tmp_path}/audit.db")
    record = AuditRecord("decide", "bank-a", {"b": 1, "a": "x"}, {"decision": "approve"}, merchant_id="M00000001")
    decision_id = log.append(record)
    stored = log.get(decision_id)
    assert stored["request"] == {"a": "x", "b": 1}
    assert stored["outputs"] == {"decision": "approve"}
    assert stored["request_hash"] == request_hash({"a": "x", "b": 1})
    assert log.get("missing") is None
    assert log.count() == 1 and log.count("score") == 0


def test_every_field_is_stored_in_its_own_column(tmp_path):
    """``row()`` lists the values by hand (it runs on every request): each must land in its column."""
    record = AuditRecord(
        "/decide",
        "bank-a",
        {"merchant_id": "M1"},
        RawJSON('{"pd":0.1}'),
        merchant_id="M1",
        model_name="name",
        model_version="7",
        features_as_of="2025-01-01",
        policy_version="p1",
        policy_hash="ph",
        model_run_id="run",
        features_ref="ref",
        features={"x": 1},
    )
    row = dict(zip(COLUMNS, record.row(), strict=True))
    plain = {c: getattr(record, c) for c in COLUMNS if c not in ("request_hash", "request", "outputs", "features")}
    assert {c: row[c] for c in plain} == plain
    assert (row["request"], row["outputs"], row["features"]) == ('{"merchant_id":"M1"}', '{"pd":0.1}', '{"x":1}')
    assert row["request_hash"] == request_hash({"merchant_id": "M1"})
    log = AuditLog(f"sqlite:///{tmp_path}/audit.db")
    stored = log.get(log.append(record))
    assert {c: stored[c] for c in plain} == plain and stored["features"] == {"x": 1}


def test_the_wal_starts_over_while_appends_never_stop(tmp_path):
    """A checkpoint copied beside busy appends never catches up; its closing step lets the WAL restart."""
    log = AuditLog(f"sqlite:///{tmp_path}/audit.db", checkpoint_seconds=3600)  # checkpoints driven by hand
    stop, counts = threading.Event(), [0]

    def write() -> None:
        while not stop.is_set():
            log.append(AuditRecord("/score", "k", {"merchant_id": "M1"}, {"pd": 0.1}, merchant_id="M1"))
            counts[0] += 1

    writer = threading.Thread(target=write)
    writer.start()
    try:
        while counts[0] < 300:
            time.sleep(0.01)
        conn = sqlite3.connect(tmp_path / "audit.db", isolation_level=None)
        log._checkpoint(conn)
        after = counts[0]
        time.sleep(0.02)
    finally:
        stop.set()
        writer.join()
    frames = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1]
    assert frames <= 8 * (counts[0] - after + 2), (frames, after, counts[0])  # only what came after the restart
    log.close()


def test_updates_and_deletes_are_refused(tmp_path):
    log = AuditLog(f"sqlite:///{tmp_path}/audit.db")
    log.append(AuditRecord("score", "k", {}, {}))
    conn = sqlite3.connect(tmp_path / "audit.db")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("UPDATE audit_log SET outputs = '{}'")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("DELETE FROM audit_log")


def test_wal_mode(tmp_path):
    AuditLog(f"sqlite:///{tmp_path}/audit.db")
    assert sqlite3.connect(tmp_path / "audit.db").execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_opening_waits_out_another_worker_holding_the_file(tmp_path):
    """Server workers open one audit file together; one still creating it must not make another fail,
    even past SQLite's own 5-s busy timeout."""
    path = tmp_path / "audit.db"
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN EXCLUSIVE")
    release = threading.Timer(6.0, holder.rollback)
    release.start()
    try:
        log = AuditLog(f"sqlite:///{path}")
    finally:
        release.join()
    assert log.get(log.append(AuditRecord("score", "k", {}, {}))) is not None


def test_unwritable_store_raises_audit_unavailable(tmp_path):
    log = AuditLog(f"sqlite:///{tmp_path}/audit.db")
    log._conn.execute("PRAGMA query_only = ON")
    with pytest.raises(AuditUnavailable):
        log.append(AuditRecord("score", "k", {}, {}))


def test_postgres_url_without_a_server_raises_audit_unavailable_and_hides_the_password():
    with pytest.raises(
        AuditUnavailable, match=r"cannot connect to audit store postgresql://lc:\*\*\*@127\.0\.0\.1:1/x"
    ) as err:
        AuditLog("postgresql://lc:secret@127.0.0.1:1/x")
    assert "secret" not in str(err.value)


def test_settings_refuse_an_audit_url_of_another_kind(monkeypatch):
    monkeypatch.setenv("LIFECREDIT_AUDIT_URL", "mysql://db/audit")
    with pytest.raises(ValueError, match="sqlite:///PATH or postgresql://"):
        Settings()
