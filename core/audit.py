"""Append-only audit log of every scoring and decision request.

Each record is committed before the response leaves the service, so a response a bank holds
always has its record. ``AuditLog(url)`` opens the store the URL names:

* ``sqlite:///path`` (default): SQLite in WAL mode; UPDATE and DELETE are refused by triggers.
  ``synchronous=NORMAL``: a committed record survives a crash of the service process; only a
  power loss of the host can lose the last commits (FULL would cost an fsync per request).
* ``postgresql://user@host:port/db`` (or ``postgres://``): one table in PostgreSQL, created on
  first use, shared by every replica; a trigger refuses UPDATE, DELETE and TRUNCATE, and each
  record is its own committed transaction (``synchronous_commit`` as the server sets it).

Both store the same columns as text, so records read back identically. Any failure to store
raises :class:`AuditUnavailable`; the service then answers 503 (fail closed). The module is
over 400 lines because the record, its canonical JSON and the two stores must change together: one
store written differently from the other would break replay across them.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.settings import redacted

# The same table in SQLite and PostgreSQL; each adds its own guards against UPDATE and DELETE.
TABLE = """
CREATE TABLE IF NOT EXISTS audit_log (
    decision_id     TEXT PRIMARY KEY,
    created_at      TEXT NOT NULL,
    endpoint        TEXT NOT NULL,
    key_name        TEXT NOT NULL,
    merchant_id     TEXT,
    request_hash    TEXT NOT NULL,
    model_name      TEXT,
    model_version   TEXT,
    features_as_of  TEXT,
    policy_version  TEXT,
    policy_hash     TEXT,
    request         TEXT NOT NULL,
    outputs         TEXT NOT NULL,
    model_run_id    TEXT,
    features_ref    TEXT,
    features        TEXT
)"""
SCHEMA = (
    TABLE
    + """;
CREATE INDEX IF NOT EXISTS audit_log_merchant ON audit_log (merchant_id, created_at);
CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
"""
)
COLUMNS = (
    "decision_id",
    "created_at",
    "endpoint",
    "key_name",
    "merchant_id",
    "request_hash",
    "model_name",
    "model_version",
    "features_as_of",
    "policy_version",
    "policy_hash",
    "request",
    "outputs",
    "model_run_id",
    "features_ref",
    "features",
)
# Columns added after the first schema: an older database gets them with ALTER TABLE on open.
ADDED_COLUMNS = ("model_run_id", "features_ref", "features")
JSON_COLUMNS = ("request", "outputs", "features")


class AuditUnavailable(RuntimeError):
    """The audit store cannot take a record; callers must fail closed (no decision without a record)."""


class RawJSON(str):
    """Text that is canonical JSON already (built once, e.g. per merchant at model load): stored as is."""


# One encoder for every canonical text: json.dumps with these options would build a new one per call.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def canonical_json(obj: Any) -> str:
    """Stable JSON (sorted keys, no spaces) so equal requests hash equally."""
    if isinstance(obj, RawJSON):
        return obj
    return _CANONICAL.encode(obj)


def request_hash(body: Any) -> str:
    """SHA-256 of the canonical request body."""
    return hashlib.sha256(canonical_json(body).encode()).hexdigest()


@dataclass
class AuditRecord:
    """What was asked, by whom, of which model, features and policy, and what was answered.

    ``features`` is the feature row a decision used (JSON object), ``features_ref`` the
    SHA-256 of the snapshot file it came from (kept under ``<var_dir>/snapshots/``), so a
    record replays exactly after the snapshot moves on. ``request``, ``outputs`` and
    ``features`` may be :class:`RawJSON` (already canonical) to keep serialisation off the
    request path.
    """

    endpoint: str
    key_name: str
    request: dict
    outputs: Any
    merchant_id: str | None = None
    model_name: str | None = None
    model_version: str | None = None
    features_as_of: str | None = None
    policy_version: str | None = None
    policy_hash: str | None = None
    model_run_id: str | None = None
    features_ref: str | None = None
    features: Any = None
    decision_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="microseconds"))

    def row(self) -> tuple:
        """The stored values in :data:`COLUMNS` order (built field by field: it runs on every request)."""
        request = canonical_json(self.request)
        return (
            self.decision_id,
            self.created_at,
            self.endpoint,
            self.key_name,
            self.merchant_id,
            hashlib.sha256(request.encode()).hexdigest(),
            self.model_name,
            self.model_version,
            self.features_as_of,
            self.policy_version,
            self.policy_hash,
            request,
            canonical_json(self.outputs),
            self.model_run_id,
            self.features_ref,
            None if self.features is None else canonical_json(self.features),
        )


POSTGRES_SCHEMES = ("postgresql://", "postgres://", "postgresql+psycopg2://")


def sqlite_path(url: str) -> Path:
    """The file behind a ``sqlite:///`` URL."""
    if not url.startswith("sqlite:///"):
        raise ValueError(f"not a SQLite audit URL (sqlite:///path): {url!r}")
    return Path(url.removeprefix("sqlite:///"))


def is_postgres(url: str) -> bool:
    """True for a PostgreSQL URL (``postgresql://``, ``postgres://``, ``postgresql+psycopg2://``)."""
    return url.startswith(POSTGRES_SCHEMES)


def _one_line(err: Exception) -> str:
    return " ".join(str(err).split())


def _parsed(row: tuple) -> dict:
    """A stored row as a dict, JSON columns parsed back."""
    record = dict(zip(COLUMNS, row, strict=True))
    for column in JSON_COLUMNS:
        if record[column] is not None:
            record[column] = json.loads(record[column])
    return record


class AuditLog:
    """The audit store a URL names: ``AuditLog("sqlite:///…")`` or ``AuditLog("postgresql://…")``.

    Every store offers :meth:`append` (commit one record, return its decision_id), :meth:`get`
    (one record, JSON columns parsed) and :meth:`count`; each raises :class:`AuditUnavailable`
    when the store cannot answer.
    """

    url: str

    def __new__(cls, url: str, **kwargs):
        if cls is AuditLog:
            cls = PostgresAuditLog if is_postgres(url) else SqliteAuditLog
        return super().__new__(cls)

    def append(self, record: AuditRecord) -> str:
        """Commit one record; return its decision_id. Raises AuditUnavailable on any store error."""
        raise NotImplementedError

    def get(self, decision_id: str) -> dict | None:
        """The stored record, with request, outputs and features parsed back from JSON; None if absent."""
        raise NotImplementedError

    def count(self, endpoint: str | None = None) -> int:
        """Number of records, optionally for one endpoint."""
        raise NotImplementedError

    def outputs(self, endpoints: tuple[str, ...]) -> list[tuple[str, str, str]]:
        """(merchant_id, created_at, outputs JSON) of every record of these endpoints, oldest first."""
        raise NotImplementedError

    def queries(self, merchant_id: str, endpoints: tuple[str, ...], limit: int = 200) -> list[tuple[str, str, str]]:
        """(created_at, key_name, endpoint) of the newest ``limit`` records about one merchant: who looked it up."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the store's connections (and threads)."""


def _prepare_sqlite(conn: sqlite3.Connection) -> None:
    """WAL mode, the table, its triggers and any column added since the file was made."""
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.executescript(SCHEMA)
    present = {row[1] for row in conn.execute("PRAGMA table_info(audit_log)")}
    for column in ADDED_COLUMNS:
        if column not in present:
            conn.execute(f"ALTER TABLE audit_log ADD COLUMN {column} TEXT")


def _retry_while_locked(step, *, seconds: float = 10.0) -> None:
    """Run ``step``, again while SQLite says the file is locked: workers starting together race for
    the switch to WAL, which fails at once instead of waiting out the busy timeout."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return step()
        except sqlite3.OperationalError as err:
            if "locked" not in str(err) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


SQLITE_INSERT = f"INSERT INTO audit_log ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
# How long the checkpointer's closing step waits for other processes' readers and writers.
CHECKPOINT_WAIT_SECONDS = 0.05


class SqliteAuditLog(AuditLog):
    """SQLite (WAL): one connection shared by the service's threads, serialised by a lock.

    WAL checkpoints (copying the log into the database file, with an fsync) run in a background
    thread every ``checkpoint_seconds`` instead of inside whichever append crosses SQLite's
    1,000-page threshold, so appends wait for a checkpoint only in its short closing step, which
    lets the WAL start over (see :meth:`_checkpoint`). It runs rarely (every 10 s by default);
    the figures are in ``benchmarks/RESULTS.md`` (``bench_audit.py``, ``bench_serving.py``).
    ``None`` keeps SQLite's automatic checkpoints.
    """

    def __init__(self, url: str, *, checkpoint_seconds: float | None = 10.0):
        self.url = url
        path = sqlite_path(url)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=5.0)
            _retry_while_locked(lambda: _prepare_sqlite(self._conn))
        except (sqlite3.Error, OSError) as err:
            raise AuditUnavailable(f"cannot open audit store {url}: {err}") from err
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._checkpointer: threading.Thread | None = None
        if checkpoint_seconds:
            self._conn.execute("PRAGMA wal_autocheckpoint=0")
            self._checkpointer = threading.Thread(
                target=self._checkpoint_loop, args=(path, checkpoint_seconds), name="audit-checkpoint", daemon=True
            )
            self._checkpointer.start()

    def _checkpoint_loop(self, path: Path, every: float) -> None:
        conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=CHECKPOINT_WAIT_SECONDS)
        try:
            while not self._stop.wait(every):
                self._checkpoint(conn)
            self._checkpoint(conn)
        except sqlite3.Error:
            pass
        finally:
            conn.close()

    def _checkpoint(self, conn: sqlite3.Connection) -> None:
        """Copy the WAL into the database file, then let the next append start the WAL over.

        The bulk is copied beside the appends (PASSIVE). A WAL that appends never stop writing to
        is never wholly copied that way, so it would only grow; the few frames written meanwhile
        are therefore copied with this worker's appends held (and other processes' writers
        waited out for at most ``CHECKPOINT_WAIT_SECONDS``), after which the WAL restarts.
        """
        try:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
            with self._lock:  # cheap when nothing was appended meanwhile: nothing left to copy or sync
                conn.execute("PRAGMA wal_checkpoint(RESTART)")
        except sqlite3.Error:
            pass  # a busy or failing store shows up on the next append

    def append(self, record: AuditRecord) -> str:
        """Commit one record; return its decision_id. Raises AuditUnavailable on any store error."""
        row = record.row()
        try:
            with self._lock:
                self._conn.execute(SQLITE_INSERT, row)
        except sqlite3.Error as err:
            raise AuditUnavailable(f"audit store {self.url} refused the record: {err}") from err
        return record.decision_id

    def get(self, decision_id: str) -> dict | None:
        with self._lock:
            cur = self._conn.execute(
                f"SELECT {', '.join(COLUMNS)} FROM audit_log WHERE decision_id = ?", (decision_id,)
            )
            row = cur.fetchone()
        return None if row is None else _parsed(row)

    def count(self, endpoint: str | None = None) -> int:
        sql, args = "SELECT COUNT(*) FROM audit_log", ()
        if endpoint:
            sql, args = sql + " WHERE endpoint = ?", (endpoint,)
        with self._lock:
            return self._conn.execute(sql, args).fetchone()[0]

    def outputs(self, endpoints: tuple[str, ...]) -> list[tuple[str, str, str]]:
        marks = ", ".join("?" * len(endpoints))
        with self._lock:
            return self._conn.execute(f"{OUTPUTS_SQL} ({marks}) ORDER BY created_at", endpoints).fetchall()

    def queries(self, merchant_id: str, endpoints: tuple[str, ...], limit: int = 200) -> list[tuple[str, str, str]]:
        marks = ", ".join("?" * len(endpoints))
        sql = f"{QUERIES_SQL.format(mark='?')} ({marks}) ORDER BY created_at DESC LIMIT ?"
        with self._lock:
            return self._conn.execute(sql, (merchant_id, *endpoints, limit)).fetchall()

    def close(self) -> None:
        self._stop.set()
        if self._checkpointer is not None:
            self._checkpointer.join(timeout=10)
        self._conn.close()


PG_SCHEMA = (
    TABLE
    + """;
CREATE INDEX audit_log_merchant ON audit_log (merchant_id, created_at);
CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'audit_log is append-only'; END $$;
CREATE TRIGGER audit_log_no_update_delete BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
"""
)
# Serialises schema creation when several workers or replicas start at once (any constant).
PG_SCHEMA_LOCK = 7_245_361_309
OUTPUTS_SQL = "SELECT merchant_id, created_at, outputs FROM audit_log WHERE endpoint IN"
QUERIES_SQL = "SELECT created_at, key_name, endpoint FROM audit_log WHERE merchant_id = {mark} AND endpoint IN"
PG_INSERT = f"INSERT INTO audit_log ({', '.join(COLUMNS)}) VALUES ({', '.join(['%s'] * len(COLUMNS))})"


class PostgresAuditLog(AuditLog):
    """PostgreSQL: one autocommit connection per thread, opened on first use and reopened after a failure.

    A thread never waits for another's connection (the service's event loop and its worker threads
    each have their own), and commits of concurrent threads share the server's WAL flushes. A connection the server has
    dropped (restart, failover, ``pg_terminate_backend``) is replaced once per call; if the store
    is still unreachable the call raises :class:`AuditUnavailable`. Re-sending an insert whose
    commit may have landed is safe: the decision_id is the primary key, so a duplicate of the
    same record counts as stored.

    ``connect_timeout`` and ``statement_timeout`` (seconds) bound how long a request can wait on
    an unreachable or stuck server before it is answered 503.
    """

    def __init__(self, url: str, *, connect_timeout: int = 5, statement_timeout: float = 5.0):
        import psycopg2

        self._pg = psycopg2
        self.url = url
        self._shown = redacted(url)
        self._dsn = "postgresql://" + url.split("://", 1)[1]
        self._connect_args = {
            "connect_timeout": connect_timeout,
            "options": f"-c statement_timeout={int(statement_timeout * 1000)}",
            "application_name": "lifecredit-audit",
        }
        self._local = threading.local()
        self._all: list = []
        self._all_lock = threading.Lock()
        self._create_table()

    def _create_table(self) -> None:
        """Table, index and append-only triggers, in one transaction, once (an existing table is not locked)."""
        conn = self._connection()
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT to_regclass('audit_log') IS NULL")
                if not cur.fetchone()[0]:
                    return
                cur.execute("BEGIN")
                cur.execute("SELECT pg_advisory_xact_lock(%s)", (PG_SCHEMA_LOCK,))
                cur.execute("SELECT to_regclass('audit_log') IS NULL")
                if cur.fetchone()[0]:
                    cur.execute(PG_SCHEMA)
                cur.execute("COMMIT")
        except self._pg.Error as err:
            self._drop(conn)
            raise AuditUnavailable(f"cannot create the audit table in {self._shown}: {_one_line(err)}") from err

    def _connection(self):
        conn = getattr(self._local, "conn", None)
        if conn is not None and not conn.closed:
            return conn
        try:
            conn = self._pg.connect(self._dsn, **self._connect_args)
        except self._pg.Error as err:
            raise AuditUnavailable(f"cannot connect to audit store {self._shown}: {_one_line(err)}") from err
        conn.autocommit = True
        self._local.conn = conn
        with self._all_lock:
            self._all.append(conn)
        return conn

    def _drop(self, conn) -> None:
        self._local.conn = None
        with self._all_lock:
            if conn in self._all:
                self._all.remove(conn)
        try:
            conn.close()
        except self._pg.Error:
            pass

    def _run(self, what: str, sql: str, args: tuple, fetch: str | None, *, duplicate_ok: bool = False):
        """Execute one statement (``fetch``: "one", "all" or None), reconnecting once if the connection broke."""
        pg = self._pg
        for attempt in (1, 2):
            conn = self._connection()
            try:
                with conn.cursor() as cur:
                    cur.execute(sql, args)
                    return cur.fetchone() if fetch == "one" else cur.fetchall() if fetch == "all" else None
            except pg.errors.UniqueViolation as err:
                if duplicate_ok and attempt == 2:
                    return None  # the first attempt's commit landed before its connection broke
                raise AuditUnavailable(f"audit store {self._shown} refused to {what}: {_one_line(err)}") from err
            except pg.errors.QueryCanceled as err:  # statement_timeout: the server is stuck, do not wait twice
                raise AuditUnavailable(
                    f"audit store {self._shown} timed out trying to {what}: {_one_line(err)}"
                ) from err
            except (pg.OperationalError, pg.InterfaceError) as err:
                self._drop(conn)
                if attempt == 2:
                    raise AuditUnavailable(f"audit store {self._shown} failed to {what}: {_one_line(err)}") from err
            except pg.Error as err:
                raise AuditUnavailable(f"audit store {self._shown} refused to {what}: {_one_line(err)}") from err
        raise AssertionError("unreachable")

    def append(self, record: AuditRecord) -> str:
        self._run("store a record", PG_INSERT, record.row(), None, duplicate_ok=True)
        return record.decision_id

    def get(self, decision_id: str) -> dict | None:
        row = self._run(
            "read a record", f"SELECT {', '.join(COLUMNS)} FROM audit_log WHERE decision_id = %s", (decision_id,), "one"
        )
        return None if row is None else _parsed(row)

    def count(self, endpoint: str | None = None) -> int:
        sql, args = "SELECT COUNT(*) FROM audit_log", ()
        if endpoint:
            sql, args = sql + " WHERE endpoint = %s", (endpoint,)
        return self._run("count records", sql, args, "one")[0]

    def outputs(self, endpoints: tuple[str, ...]) -> list[tuple[str, str, str]]:
        return self._run("read records", f"{OUTPUTS_SQL} %s ORDER BY created_at", (tuple(endpoints),), "all")

    def queries(self, merchant_id: str, endpoints: tuple[str, ...], limit: int = 200) -> list[tuple[str, str, str]]:
        sql = f"{QUERIES_SQL.format(mark='%s')} %s ORDER BY created_at DESC LIMIT %s"
        return self._run("read records", sql, (merchant_id, tuple(endpoints), limit), "all")

    def close(self) -> None:
        with self._all_lock:
            conns, self._all = self._all, []
        for conn in conns:
            try:
                conn.close()
            except self._pg.Error:
                pass
