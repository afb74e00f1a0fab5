"""API keys with roles: only a salted hash is stored; the key itself is shown once.

A key reads ``lck_<key_id>_<secret>``: the id finds the record without scanning, the secret
(32 random bytes, URL-safe) is checked against ``sha256(salt + secret)`` in constant time.
Secrets carry 256 bits of entropy, so a fast hash is enough (no password stretching needed),
which keeps authentication off the scoring latency budget.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from core.files import write_text_atomic

ROLES = ("bank", "regulator", "admin", "merchant")
PREFIX = "lck"


class UnknownKey(LookupError):
    """A key operation named a key that does not exist."""


@dataclass(frozen=True)
class ApiKey:
    """One stored key: who holds it and in what role; never the key itself."""

    key_id: str
    name: str
    role: str
    salt: str
    hash: str
    created_at: str
    revoked_at: str | None = None
    merchant_id: str | None = None  # role merchant: the one merchant whose data the key reaches

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def _digest(salt: str, secret: str) -> str:
    return hashlib.sha256(bytes.fromhex(salt) + secret.encode()).hexdigest()


class KeyStore:
    """The key file (JSON); every change is written to a temporary file and renamed into place."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._keys: dict[str, ApiKey] = {}
        self._mtime: float | None = None
        self.reload()

    def reload(self) -> None:
        """Re-read the file if it changed since the last read (revocations take effect live)."""
        try:
            mtime = self.path.stat().st_mtime
        except FileNotFoundError:
            self._keys, self._mtime = {}, None
            return
        if mtime == self._mtime:
            return
        records = json.loads(self.path.read_text(encoding="utf-8"))
        self._keys = {r["key_id"]: ApiKey(**r) for r in records}
        self._mtime = mtime

    def _save(self) -> None:
        write_text_atomic(self.path, json.dumps([asdict(k) for k in self._keys.values()], indent=1), mode=0o600)
        self._mtime = self.path.stat().st_mtime

    def create(self, role: str, name: str | None = None, *, merchant_id: str | None = None) -> str:
        """Store a new key for ``role`` and return the plaintext key (the only time it exists).

        A ``merchant`` key is bound to one merchant (``merchant_id``); no other role takes one."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
        if (role == "merchant") != bool(merchant_id):
            raise ValueError(
                "a merchant key needs --merchant <merchant id>"
                if role == "merchant"
                else f"--merchant binds merchant keys only, not role {role!r}"
            )
        self.reload()
        key_id = secrets.token_hex(6)
        name = name or f"{role}-{key_id}"
        if any(k.name == name and k.active for k in self._keys.values()):
            raise ValueError(f"an active key named {name!r} exists already; revoke it or pick another name")
        secret = secrets.token_urlsafe(32)
        salt = secrets.token_hex(16)
        created = datetime.now(UTC).isoformat(timespec="seconds")
        self._keys[key_id] = ApiKey(key_id, name, role, salt, _digest(salt, secret), created, merchant_id=merchant_id)
        self._save()
        return f"{PREFIX}_{key_id}_{secret}"

    def list(self) -> list[ApiKey]:
        """All keys, revoked ones included, oldest first."""
        self.reload()
        return sorted(self._keys.values(), key=lambda k: k.created_at)

    def revoke(self, name_or_id: str) -> ApiKey:
        """Revoke the active key with this name or id."""
        self.reload()
        for key in self._keys.values():
            if key.active and name_or_id in (key.name, key.key_id):
                revoked = ApiKey(**{**asdict(key), "revoked_at": datetime.now(UTC).isoformat(timespec="seconds")})
                self._keys[key.key_id] = revoked
                self._save()
                return revoked
        raise UnknownKey(f"no active key named or with id {name_or_id!r}; see `lifecredit keys list`")

    def authenticate(self, presented: str) -> ApiKey | None:
        """The active key matching ``presented``, or None. Constant-time in the secret.

        Re-reads the key file when it changed, so a revocation takes effect without a restart.
        """
        self.reload()
        parts = presented.split("_", 2)
        if len(parts) != 3 or parts[0] != PREFIX:
            return None
        key = self._keys.get(parts[1])
        if key is None or not key.active:
            return None
        return key if hmac.compare_digest(_digest(key.salt, parts[2]), key.hash) else None
