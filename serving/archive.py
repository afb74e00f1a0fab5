"""Content-addressed copies of every policy text a server has used (and the snapshots earlier releases kept).

Audit records name a policy and a snapshot by SHA-256; the policy copies (``<var_dir>/policies/``)
let ``lifecredit replay`` use exactly those bytes after the live file has moved on. A snapshot's
rows are kept by the answer stores computed from it (:mod:`answers.store`); the snapshot copies
under ``<var_dir>/snapshots/`` that servers before the answer stores wrote are still read.
Files are written once, atomically, and never changed.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from core.files import atomic_path
from core.settings import Settings
from serving.policy import Policy, load_policy


def _keep(source: Path, target: Path) -> Path:
    """Copy ``source`` to ``target`` atomically unless a copy is there already (same hash, same bytes)."""
    if target.exists():
        return target
    with atomic_path(target, mode=0o600) as tmp:  # private to the service's user, as ever
        shutil.copyfile(source, tmp)
    return target


def policy_path(settings: Settings, sha256: str) -> Path:
    return settings.var_dir / "policies" / f"{sha256}.yaml"


def snapshot_path(settings: Settings, sha256: str) -> Path:
    return settings.var_dir / "snapshots" / f"{sha256}.parquet"


def keep_policy(settings: Settings, source: Path, policy: Policy) -> Path:
    """Store the policy text under its hash (the hash ``load_policy`` computed from the same bytes)."""
    return _keep(Path(source), policy_path(settings, policy.sha256))


def archived_policy(settings: Settings, sha256: str) -> Policy:
    """The policy that carried this hash; FileNotFoundError names the missing copy."""
    path = policy_path(settings, sha256)
    if not path.exists():
        raise FileNotFoundError(f"no copy of policy {sha256} at {path}")
    policy = load_policy(path)
    if policy.sha256 != sha256:
        raise ValueError(f"{path} does not hash to {sha256} (found {policy.sha256}): the copy was altered")
    return policy


def archived_snapshot(settings: Settings, sha256: str) -> Path:
    path = snapshot_path(settings, sha256)
    if not path.exists():
        raise FileNotFoundError(f"no copy of feature snapshot {sha256} at {path}")
    return path
