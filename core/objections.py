"""Merchants' objections (异议) and repair requests, and the one-merchant re-scores they lead to.

A merchant objects to one of its records (or asks for credit repair, 信用修复); the data steward
resolves it: ``corrected`` (a correction is appended and the merchant re-scored) or ``upheld``
(the record stands). The store is append-only, like the audit log: an objection is one row when
received and one event row when resolved, so its whole path stays readable. SQLite, one file
(``<var_dir>/objections.db``), shared by the server's workers: each keeps its open-objection index
cached and refreshes it when SQLite's ``data_version`` says another connection committed.

The 20-day deadline (征信业管理条例, art. 25: verify and answer within 20 days of receipt)
counts calendar days from receipt; an objection still open after its ``due_by`` is overdue.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

DEADLINE_DAYS = 20
KINDS = ("objection", "repair")
OUTCOMES = ("corrected", "upheld")
STATUSES = ("received", "resolved", "overdue")
TABLES = ("complaints", "public_records", "loans", "loan_performance", "transactions", "merchants")

SCHEMA = """
CREATE TABLE IF NOT EXISTS objections (
    objection_id TEXT PRIMARY KEY,
    merchant_id  TEXT NOT NULL,
    kind         TEXT NOT NULL,
    table_name   TEXT NOT NULL,
    record_id    TEXT NOT NULL,
    record_type  TEXT,
    reason       TEXT NOT NULL,
    evidence     TEXT,
    received_at  TEXT NOT NULL,
    due_by       TEXT NOT NULL,
    filed_by     TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS objections_merchant ON objections (merchant_id);
CREATE TABLE IF NOT EXISTS objection_resolutions (
    objection_id  TEXT PRIMARY KEY REFERENCES objections (objection_id),
    resolved_at   TEXT NOT NULL,
    resolved_by   TEXT NOT NULL,
    outcome       TEXT NOT NULL,
    correction_id TEXT,
    note          TEXT
);
CREATE TABLE IF NOT EXISTS rescores (
    rescore_id      TEXT PRIMARY KEY,
    merchant_id     TEXT NOT NULL,
    rescored_at     TEXT NOT NULL,
    snapshot_sha256 TEXT NOT NULL,
    model_version   TEXT NOT NULL,
    features_as_of  TEXT,
    previous        TEXT,
    answer          TEXT NOT NULL,
    features        TEXT NOT NULL,
    reason_en       TEXT NOT NULL,
    reason_zh       TEXT NOT NULL,
    objection_id    TEXT,
    correction_id   TEXT
);
CREATE INDEX IF NOT EXISTS rescores_merchant ON rescores (merchant_id, rescored_at);
"""
_GUARDS = [
    f"CREATE TRIGGER IF NOT EXISTS {table}_no_{verb.lower()} BEFORE {verb} ON {table} "
    f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END;"
    for table in ("objections", "objection_resolutions", "rescores")
    for verb in ("UPDATE", "DELETE")
]


class ObjectionError(ValueError):
    """An objection step that cannot be taken; the message says why (unknown id, already resolved, bad value)."""


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Objection:
    """One objection as it stands now: what was objected to, by whom, and how (if yet) it was resolved."""

    objection_id: str
    merchant_id: str
    kind: str
    table: str
    record_id: str
    record_type: str | None
    reason: str
    evidence: str | None
    received_at: str
    due_by: str
    filed_by: str
    resolved_at: str | None = None
    resolved_by: str | None = None
    outcome: str | None = None
    correction_id: str | None = None
    note: str | None = None

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None

    def overdue(self, now: datetime | None = None) -> bool:
        """Open after its deadline, or resolved after it."""
        deadline = datetime.fromisoformat(self.due_by)
        if self.resolved_at is not None:
            return datetime.fromisoformat(self.resolved_at) > deadline
        return (now or _now()) > deadline

    def status(self, now: datetime | None = None) -> str:
        """``received`` while open and in time, ``overdue`` while open past its deadline, else ``resolved``."""
        if not self.is_open:
            return "resolved"
        return "overdue" if self.overdue(now) else "received"

    def to_json(self, now: datetime | None = None) -> dict[str, Any]:
        return {**asdict(self), "status": self.status(now), "overdue": self.overdue(now)}


_SELECT = """
SELECT o.objection_id, o.merchant_id, o.kind, o.table_name, o.record_id, o.record_type, o.reason, o.evidence,
       o.received_at, o.due_by, o.filed_by, r.resolved_at, r.resolved_by, r.outcome, r.correction_id, r.note
FROM objections o LEFT JOIN objection_resolutions r ON r.objection_id = o.objection_id
"""


class ObjectionStore:
    """The objections file: file, resolve, list; plus the re-scores of merchants after a correction."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=10)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.executescript(SCHEMA + "\n".join(_GUARDS))
        self._open_cache: tuple[int, dict[str, list[Objection]]] | None = None

    def close(self) -> None:
        self._conn.close()

    def _rows(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self._lock:
            return self._conn.execute(sql, args).fetchall()

    def _write(self, statements: list[tuple[str, tuple]]) -> None:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                for sql, args in statements:
                    self._conn.execute(sql, args)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
            self._open_cache = None

    # -- objections ---------------------------------------------------------------------------
    def file(
        self,
        *,
        merchant_id: str,
        kind: str,
        table: str,
        record_id: str,
        reason: str,
        filed_by: str,
        evidence: str | None = None,
        record_type: str | None = None,
        now: datetime | None = None,
    ) -> Objection:
        """Receive an objection; it is open (``received``) until the steward resolves it."""
        if kind not in KINDS:
            raise ObjectionError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
        if table not in TABLES:
            raise ObjectionError(f"table must be one of {', '.join(TABLES)}, got {table!r}")
        received = now or _now()
        objection = Objection(
            objection_id="OBJ-" + uuid.uuid4().hex[:12].upper(),
            merchant_id=merchant_id,
            kind=kind,
            table=table,
            record_id=record_id,
            record_type=record_type,
            reason=reason,
            evidence=evidence,
            received_at=_iso(received),
            due_by=_iso(received + timedelta(days=DEADLINE_DAYS)),
            filed_by=filed_by,
        )
        self._write(
            [
                (
                    "INSERT INTO objections VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        objection.objection_id,
                        merchant_id,
                        kind,
                        table,
                        record_id,
                        record_type,
                        reason,
                        evidence,
                        objection.received_at,
                        objection.due_by,
                        filed_by,
                    ),
                )
            ]
        )
        return objection

    def resolve(
        self,
        objection_id: str,
        *,
        outcome: str,
        resolved_by: str,
        note: str | None = None,
        correction_id: str | None = None,
        now: datetime | None = None,
    ) -> tuple[Objection, Objection]:
        """Close an open objection with its outcome; returns (before, after)."""
        if outcome not in OUTCOMES:
            raise ObjectionError(f"outcome must be one of {', '.join(OUTCOMES)}, got {outcome!r}")
        before = self.get(objection_id)
        if before is None:
            raise ObjectionError(f"no objection {objection_id!r}")
        if not before.is_open:
            raise ObjectionError(
                f"objection {objection_id} was resolved already ({before.outcome}, {before.resolved_at})"
            )
        at = _iso(now or _now())
        try:
            self._write(
                [
                    (
                        "INSERT INTO objection_resolutions VALUES (?,?,?,?,?,?)",
                        (objection_id, at, resolved_by, outcome, correction_id, note),
                    )
                ]
            )
        except sqlite3.IntegrityError as err:  # another worker resolved it meanwhile
            raise ObjectionError(f"objection {objection_id} was resolved already") from err
        return before, self.get(objection_id)

    def get(self, objection_id: str) -> Objection | None:
        rows = self._rows(_SELECT + " WHERE o.objection_id = ?", (objection_id,))
        return Objection(*rows[0]) if rows else None

    def list(
        self, *, merchant_id: str | None = None, status: str | None = None, now: datetime | None = None
    ) -> list[Objection]:
        """Objections, oldest first; ``status`` received (open, in time), overdue (open, late), resolved, or open."""
        if status is not None and status not in (*STATUSES, "open"):
            raise ObjectionError(f"status must be one of {', '.join((*STATUSES, 'open'))}, got {status!r}")
        sql, args = _SELECT, ()
        if merchant_id is not None:
            sql, args = sql + " WHERE o.merchant_id = ?", (merchant_id,)
        found = [Objection(*r) for r in self._rows(sql + " ORDER BY o.received_at, o.objection_id", args)]
        if status == "open":
            return [o for o in found if o.is_open]
        return [o for o in found if status is None or o.status(now) == status]

    def open_by_merchant(self) -> dict[str, list[Objection]]:
        """Open objections by merchant, cached until this or another connection commits."""
        stamp = self._rows("PRAGMA data_version")[0][0]
        cached = self._open_cache
        if cached is not None and cached[0] == stamp:
            return cached[1]
        index: dict[str, list[Objection]] = {}
        for o in self.list(status="open"):
            index.setdefault(o.merchant_id, []).append(o)
        self._open_cache = (stamp, index)
        return index

    # -- re-scores ----------------------------------------------------------------------------
    def add_rescore(
        self,
        *,
        merchant_id: str,
        snapshot_sha256: str,
        model_version: str,
        features_as_of: str | None,
        previous: dict | None,
        answer: dict,
        features: dict,
        reason_en: str,
        reason_zh: str,
        objection_id: str | None = None,
        correction_id: str | None = None,
        now: datetime | None = None,
    ) -> dict:
        """Record one merchant's new answer (and the feature row it came from) after a correction or repair."""
        row = {
            "rescore_id": "RS-" + uuid.uuid4().hex[:12].upper(),
            "merchant_id": merchant_id,
            "rescored_at": _iso(now or _now()),
            "snapshot_sha256": snapshot_sha256,
            "model_version": model_version,
            "features_as_of": features_as_of,
            "previous": previous,
            "answer": answer,
            "features": features,
            "reason_en": reason_en,
            "reason_zh": reason_zh,
            "objection_id": objection_id,
            "correction_id": correction_id,
        }
        stored = tuple(json.dumps(v, default=str) if isinstance(v, dict) else v for v in row.values())
        self._write([(f"INSERT INTO rescores VALUES ({','.join('?' * len(row))})", stored)])
        return row

    def rescores(self, merchant_id: str | None = None, *, snapshot_sha256: str | None = None) -> list[dict]:
        """Re-scores, oldest first, of one merchant or of every merchant; optionally of one snapshot only."""
        clauses, args = [], []
        if merchant_id is not None:
            clauses.append("merchant_id = ?")
            args.append(merchant_id)
        if snapshot_sha256 is not None:
            clauses.append("snapshot_sha256 = ?")
            args.append(snapshot_sha256)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        cur = self._rows(f"SELECT * FROM rescores{where} ORDER BY rescored_at, rowid", tuple(args))
        names = [
            "rescore_id",
            "merchant_id",
            "rescored_at",
            "snapshot_sha256",
            "model_version",
            "features_as_of",
            "previous",
            "answer",
            "features",
            "reason_en",
            "reason_zh",
            "objection_id",
            "correction_id",
        ]
        out = []
        for r in cur:
            row = dict(zip(names, r))
            for k in ("previous", "answer", "features"):
                row[k] = json.loads(row[k]) if row[k] else None
            out.append(row)
        return out
