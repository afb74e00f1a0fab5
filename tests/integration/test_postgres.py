"""The audit log on a real PostgreSQL server: same records as SQLite, append-only, survives lost connections.

Each test gets its own freshly created database (random name), dropped afterwards; without a
server the tests are skipped with how to start one (see ``helpers.pg_admin_url``).
"""

from __future__ import annotations

import threading
import time

import psycopg2
import pytest

from core.audit import AuditLog, AuditRecord, AuditUnavailable, PostgresAuditLog
from helpers import fresh_database, pg_execute, set_reachable

pytestmark = pytest.mark.slow  # the fast path (-m "not slow") skips it; the full suite runs it


@pytest.fixture
def pg_url():
    with fresh_database() as url:
        yield url


def _record(**kw) -> AuditRecord:
    return AuditRecord(
        "/decide",
        "bank-a",
        {"merchant_id": "M00000001", "term_months": 12},
        {"decision": "approve", "pd": 0.0123456789012345, "reasons": ["短"]},
        merchant_id="M00000001",
        model_name="m",
        model_version="3",
        policy_hash="ab",
        features={"sales_90d": 1.5, "tenure": None},
        **kw,
    )


def test_records_read_back_exactly_as_from_sqlite(pg_url, tmp_path):
    pg, lite = AuditLog(pg_url), AuditLog(f"sqlite:///{tmp_path}/audit.db")
    assert isinstance(pg, PostgresAuditLog)
    record = _record()
    assert pg.append(record) == lite.append(record) == record.decision_id
    assert pg.get(record.decision_id) == lite.get(record.decision_id)
    assert pg.get("missing") is None
    assert pg.count() == 1 and pg.count("/decide") == 1 and pg.count("/score") == 0
    AuditLog(pg_url).append(_record())  # a second opening finds the table and adds to it
    assert pg.count() == 2
    pg.close(), lite.close()


def test_regulator_reads_the_same_decisions_from_either_store(pg_url, tmp_path):
    from regulator.views import read_decisions

    lite_url = f"sqlite:///{tmp_path}/audit.db"
    pg, lite = AuditLog(pg_url), AuditLog(lite_url)
    for record in (_record(), AuditRecord("/score", "bank-a", {}, {"pd": 0.1}, merchant_id="M00000002")):
        pg.append(record), lite.append(record)
    pg.close(), lite.close()
    from_pg, from_lite = read_decisions(pg_url), read_decisions(lite_url)
    assert from_pg.to_dicts() == from_lite.to_dicts()
    assert from_pg.select("merchant_id", "decision").rows() == [("M00000001", "approve")]


def test_updates_deletes_and_truncate_are_refused(pg_url):
    log = AuditLog(pg_url)
    log.append(_record())
    for sql in ("UPDATE audit_log SET outputs = '{}'", "DELETE FROM audit_log", "TRUNCATE audit_log"):
        with pytest.raises(psycopg2.Error, match="append-only"):
            pg_execute(pg_url, sql)
    assert log.count() == 1


def test_reconnects_after_the_server_drops_its_connections(pg_url):
    log = AuditLog(pg_url)
    log.append(_record())
    dropped = pg_execute(
        pg_url,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    assert dropped and all(ok for (ok,) in dropped)
    log.append(_record())
    assert log.count() == 2


def test_concurrent_appends_each_get_their_own_connection(pg_url):
    log = AuditLog(pg_url)
    errors: list[Exception] = []

    def work():
        try:
            for _ in range(20):
                log.append(_record())
        except Exception as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and log.count() == 120
    log.close()


def test_an_outage_raises_audit_unavailable_and_the_log_recovers_after_it(pg_url):
    log = AuditLog(pg_url)
    set_reachable(pg_url, False)
    with pytest.raises(AuditUnavailable, match="cannot connect to audit store"):
        log.append(_record())
    with pytest.raises(AuditUnavailable):
        AuditLog(pg_url)
    set_reachable(pg_url, True)
    log.append(_record())  # the next call reconnects by itself
    assert log.count() == 1


def test_a_stuck_store_answers_within_the_statement_timeout(pg_url):
    log = AuditLog(pg_url, statement_timeout=0.3)
    blocker = psycopg2.connect(pg_url)
    try:
        blocker.cursor().execute("LOCK TABLE audit_log IN ACCESS EXCLUSIVE MODE")  # held until rollback
        started = time.perf_counter()
        with pytest.raises(AuditUnavailable, match="timed out"):
            log.append(_record())
        assert time.perf_counter() - started < 2.0
    finally:
        blocker.rollback()
        blocker.close()
    log.append(_record())
    assert log.count() == 1


def test_the_service_opens_an_audit_store_that_was_down_at_start(pg_url, monkeypatch):
    from core.settings import Settings
    from serving import engine

    set_reachable(pg_url, False)
    service = engine.Engine(Settings(audit_url=pg_url))
    assert not service.ready() and b"audit store unavailable" in service.not_ready().body
    set_reachable(pg_url, True)
    assert b"audit store unavailable" in service.not_ready().body  # retried at most every few seconds
    monkeypatch.setattr(engine, "AUDIT_RETRY_SECONDS", 0.0)
    assert b"still loading" in service.not_ready().body and service.audit.count() == 0


def test_a_merchants_lookups_read_the_same_from_either_store(pg_url, tmp_path):
    pg, lite = AuditLog(pg_url), AuditLog(f"sqlite:///{tmp_path}/audit.db")
    records = [
        _record(),
        AuditRecord("/score", "bank-b", {}, {"pd": 0.1}, merchant_id="M00000001"),
        AuditRecord("/score", "bank-b", {}, {"pd": 0.1}, merchant_id="M00000002"),
        AuditRecord("/regulator/x", "reg", {}, {}, merchant_id="M00000001"),
    ]
    for record in records:
        pg.append(record), lite.append(record)
    endpoints = ("/score", "/decide")
    assert pg.queries("M00000001", endpoints) == lite.queries("M00000001", endpoints)
    assert [(by, endpoint) for _, by, endpoint in pg.queries("M00000001", endpoints)] == [
        ("bank-b", "/score"),
        ("bank-a", "/decide"),
    ]
    assert len(pg.queries("M00000001", endpoints, limit=1)) == 1
    pg.close(), lite.close()
