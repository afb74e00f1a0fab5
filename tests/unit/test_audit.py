"""Audit log: append-only, read back exactly, fails loudly when it cannot write."""

import sqlite3
import threading

import pytest

from core.audit import AuditLog, AuditRecord, AuditUnavailable, request_hash
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
