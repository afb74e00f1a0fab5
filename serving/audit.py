"""Append-only audit log of every scoring and decision request.

Each record is committed before the response leaves the service, so a response a bank holds
always has its record. SQLite in WAL mode by default (``sqlite:///path``); UPDATE and DELETE
are refused by triggers. ``synchronous=NORMAL``: a committed record survives a crash of the
service process; only a power loss of the host can lose the last commits (FULL would cost an
fsync per request).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import uuid
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

SCHEMA = """
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
);
CREATE INDEX IF NOT EXISTS audit_log_merchant ON audit_log (merchant_id, created_at);
CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
"""
COLUMNS = (
    "decision_id", "created_at", "endpoint", "key_name", "merchant_id", "request_hash", "model_name",
    "model_version", "features_as_of", "policy_version", "policy_hash", "request", "outputs",
    "model_run_id", "features_ref", "features",
)
# Columns added after the first schema: an older database gets them with ALTER TABLE on open.
ADDED_COLUMNS = ("model_run_id", "features_ref", "features")
JSON_COLUMNS = ("request", "outputs", "features")


class AuditUnavailable(RuntimeError):
    """The audit store cannot take a record; callers must fail closed (no decision without a record)."""


class RawJSON(str):
    """Text that is canonical JSON already (built once, e.g. per merchant at model load): stored as is."""


def canonical_json(obj: Any) -> str:
    """Stable JSON (sorted keys, no spaces) so equal requests hash equally."""
    if isinstance(obj, RawJSON):
        return obj
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


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
        # a shallow copy: dataclasses.asdict deep-copies request and outputs (~10x the cost)
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values["request"] = canonical_json(self.request)
        values["request_hash"] = hashlib.sha256(values["request"].encode()).hexdigest()
        values["outputs"] = canonical_json(self.outputs)
        values["features"] = None if self.features is None else canonical_json(self.features)
        return tuple(values[c] for c in COLUMNS)


def sqlite_path(url: str) -> Path:
    """The file behind a ``sqlite:///`` URL."""
    if not url.startswith("sqlite:///"):
        raise ValueError(f"audit URL must start with sqlite:/// (PostgreSQL: see docs/scaling.md), got {url!r}")
    return Path(url.removeprefix("sqlite:///"))


class AuditLog:
    """One connection shared by the service's threads, serialised by a lock.

    WAL checkpoints (copying the log into the database file, with an fsync) run in a background
    thread every ``checkpoint_seconds`` instead of inside whichever append crosses SQLite's
    1,000-page threshold: that append would otherwise wait ~20-30 ms, every ~250 records. The
    fsync still slows the appends around it a little (journal contention on ext4), so it runs
    rarely: every 10 s the WAL holds at most a few tens of MB at full load. ``None`` keeps
    SQLite's automatic checkpoints.
    """

    def __init__(self, url: str, *, checkpoint_seconds: float | None = 10.0):
        self.url = url
        path = sqlite_path(url)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=5.0)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.executescript(SCHEMA)
            present = {row[1] for row in self._conn.execute("PRAGMA table_info(audit_log)")}
            for column in ADDED_COLUMNS:
                if column not in present:
                    self._conn.execute(f"ALTER TABLE audit_log ADD COLUMN {column} TEXT")
        except (sqlite3.Error, OSError) as err:
            raise AuditUnavailable(f"cannot open audit store {url}: {err}") from err
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._checkpointer: threading.Thread | None = None
        if checkpoint_seconds:
            self._conn.execute("PRAGMA wal_autocheckpoint=0")
            self._checkpointer = threading.Thread(target=self._checkpoint_loop, args=(path, checkpoint_seconds),
                                                  name="audit-checkpoint", daemon=True)
            self._checkpointer.start()

    def _checkpoint_loop(self, path: Path, every: float) -> None:
        conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=5.0)
        try:
            while not self._stop.wait(every):
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except sqlite3.Error:
                    pass  # a busy or failing store shows up on the next append
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error:
            pass
        finally:
            conn.close()

    def append(self, record: AuditRecord) -> str:
        """Commit one record; return its decision_id. Raises AuditUnavailable on any store error."""
        sql = f"INSERT INTO audit_log ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
        try:
            with self._lock:
                self._conn.execute(sql, record.row())
        except sqlite3.Error as err:
            raise AuditUnavailable(f"audit store {self.url} refused the record: {err}") from err
        return record.decision_id

    def get(self, decision_id: str) -> dict | None:
        """The stored record, with request and outputs parsed back from JSON."""
        with self._lock:
            cur = self._conn.execute(f"SELECT {', '.join(COLUMNS)} FROM audit_log WHERE decision_id = ?", (decision_id,))
            row = cur.fetchone()
        if row is None:
            return None
        record = dict(zip(COLUMNS, row, strict=True))
        for column in JSON_COLUMNS:
            if record[column] is not None:
                record[column] = json.loads(record[column])
        return record

    def count(self, endpoint: str | None = None) -> int:
        """Number of records, optionally for one endpoint."""
        sql, args = "SELECT COUNT(*) FROM audit_log", ()
        if endpoint:
            sql, args = sql + " WHERE endpoint = ?", (endpoint,)
        with self._lock:
            return self._conn.execute(sql, args).fetchone()[0]

    def close(self) -> None:
        self._stop.set()
        if self._checkpointer is not None:
            self._checkpointer.join(timeout=10)
        self._conn.close()
