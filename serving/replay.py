"""Replay an audited answer: the same model version, feature rows and policy give the same outputs.

The audit record (in the SQLite or PostgreSQL store ``audit_url`` names) names the model
(name, version, run id), the feature snapshot (SHA-256: its rows are read from the answer store
computed from it, the rows the server answered from) or the feature row itself, and the policy
(SHA-256, copy under ``<var_dir>/policies/``). :func:`replay` reloads exactly those and
recomputes through the same code the server uses (the bundle's one result,
:class:`training.result.Scores`, rendered by :func:`serving.scorer.results`; and
:func:`serving.policy.decide`), then compares field by field. PDs are compared to 1e-12
relative (vectorised and one-row NumPy can differ in the last bit); everything else exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from answers.render import results
from answers.store import StoreError, open_store, stores_of_snapshot
from core.audit import AuditLog, AuditUnavailable
from core.settings import Settings, redacted
from serving import archive
from serving.policy import OBJECTED_KEY, decide
from serving.scorer import ScorerError, Snapshot, row_frame
from training.bundle import ScoringBundle
from training.model_source import ModelHandle, from_cache, from_mlflow

PD_RTOL = 1e-12


class ReplayError(RuntimeError):
    """The record cannot be replayed (unknown id, missing model version, snapshot or policy copy)."""


@dataclass
class Replay:
    record: dict
    replayed: dict
    differences: list[str] = field(default_factory=list)

    @property
    def matches(self) -> bool:
        return not self.differences


def _model(settings: Settings, record: dict) -> ModelHandle:
    name, version, run_id = record["model_name"], record["model_version"], record.get("model_run_id")
    cached = from_cache(settings, name, version, run_id)
    if cached is not None:
        return cached
    try:
        handle = from_mlflow(settings, name, version)
    except Exception as err:
        raise ReplayError(
            f"model {name} version {version}: not cached under {settings.var_dir / 'models'} and "
            f"not loadable from the registry: {err}"
        ) from err
    if run_id and handle.run_id != run_id:
        raise ReplayError(f"registry's {name} version {version} is run {handle.run_id}, the record names {run_id}")
    return handle


def _snapshot_rows(settings: Settings, record: dict, merchant_ids: list[str]) -> tuple[pl.DataFrame, list[bool]]:
    """The merchants' rows of the snapshot the record names: from an answer store computed from it (the rows the
    server answered from), else from a copy archived by a server of an earlier release."""
    sha = record.get("features_ref")
    if not sha:
        raise ReplayError(f"record {record['decision_id']} names no feature snapshot")
    for path in stores_of_snapshot(settings.answers_root, sha):
        try:
            store = open_store(path)
        except StoreError:
            continue
        at = [store.find(m) for m in merchant_ids]
        return store.frame(rows=[i for i in at if i is not None]), [i is not None for i in at]
    try:
        snap = Snapshot.load(archive.archived_snapshot(settings, sha), sha256=sha)
    except (FileNotFoundError, ScorerError) as err:
        raise ReplayError(
            f"no answer store computed from snapshot {sha} under {settings.answers_root}, and no archived copy: {err}"
        ) from err
    found = [m in snap.index for m in merchant_ids]
    rows = [snap.index[m] for m, ok in zip(merchant_ids, found, strict=True) if ok]
    return snap.frame[rows], found


def _model_outputs(outputs: Any) -> Any:
    """An answer without the count of records under objection, which a score read from the objection store at
    the time, not from the model (a decision replays it: the objections it saw are in its feature row)."""
    if isinstance(outputs, dict):
        return {k: _model_outputs(v) for k, v in outputs.items() if k != OBJECTED_KEY or "decision" in outputs}
    if isinstance(outputs, list):
        return [_model_outputs(v) for v in outputs]
    return outputs


def _compare(stored, replayed, path: str, out: list[str]) -> None:
    if isinstance(stored, dict) and isinstance(replayed, dict):
        for k in sorted(set(stored) | set(replayed)):
            _compare(stored.get(k), replayed.get(k), f"{path}.{k}" if path else k, out)
    elif isinstance(stored, list) and isinstance(replayed, list) and len(stored) == len(replayed):
        for i, (a, b) in enumerate(zip(stored, replayed, strict=True)):
            _compare(a, b, f"{path}[{i}]", out)
    elif isinstance(stored, float) and isinstance(replayed, float) and path.endswith("pd"):
        if not math.isclose(stored, replayed, rel_tol=PD_RTOL, abs_tol=0.0):
            out.append(f"{path}: stored {stored!r}, replayed {replayed!r}")
    elif stored != replayed:
        out.append(f"{path}: stored {stored!r}, replayed {replayed!r}")


def replay(settings: Settings, decision_id: str) -> Replay:
    """Recompute the outputs of audit record ``decision_id`` and compare them with the stored ones."""
    try:
        log = AuditLog(settings.audit_url)
        try:
            record = log.get(decision_id)
        finally:
            log.close()
    except AuditUnavailable as err:
        raise ReplayError(f"{err}; check LIFECREDIT_AUDIT_URL and that the store is running") from err
    if record is None:
        raise ReplayError(f"no audit record {decision_id!r} in {redacted(settings.audit_url)}")
    handle = _model(settings, record)
    bundle = ScoringBundle.load(handle.bundle_dir)
    request, endpoint = record["request"], record["endpoint"]

    def score(frame, ids, as_of) -> list[dict]:
        return results(bundle, bundle.encode(frame), ids, as_of, handle.name, handle.version)

    if endpoint == "/score" and "features" in request:
        replayed = score(row_frame(bundle, request["features"]), [None], [None])[0]
    elif endpoint == "/score" and record.get("features"):  # a merchant re-scored after a correction
        row = record["features"]
        replayed = score(
            row_frame(bundle, row, ignore_extra=True), [request["merchant_id"]], [record["features_as_of"]]
        )[0]
    elif endpoint == "/score":
        frame, found = _snapshot_rows(settings, record, [request["merchant_id"]])
        if not found[0]:
            raise ReplayError(f"merchant {request['merchant_id']} is not in snapshot {record['features_ref']}")
        replayed = score(frame, [request["merchant_id"]], [record["features_as_of"]])[0]
    elif endpoint == "/score_batch":
        ids = request["merchant_ids"]
        frame, found = _snapshot_rows(settings, record, ids)
        as_of = frame["as_of"].cast(pl.String).to_list() if "as_of" in frame.columns else [None] * frame.height
        scored = iter(score(frame, [m for m, ok in zip(ids, found, strict=True) if ok], as_of))
        stored_items = record["outputs"]["results"]
        items = []
        for m, ok, stored_item in zip(ids, found, stored_items, strict=True):
            items.append(next(scored) if ok else {"merchant_id": m, "error": stored_item.get("error")})
        replayed = {"results": items}
    elif endpoint == "/decide":
        try:
            policy = archive.archived_policy(settings, record["policy_hash"])
        except (FileNotFoundError, ValueError) as err:
            raise ReplayError(str(err)) from err
        row = record.get("features")
        if row is None:
            raise ReplayError(f"record {decision_id} stores no feature row")
        risk = score(row_frame(bundle, row, ignore_extra=True), [request["merchant_id"]], [record["features_as_of"]])[0]
        objected = row.get(OBJECTED_KEY, [])
        decision = decide(
            policy,
            risk["class"],
            row,
            request["requested_amount_fen"],
            request["term_months"],
            request["product"],
            objected,
        )
        replayed = {**risk, **decision, OBJECTED_KEY: len(objected)}
    else:
        raise ReplayError(f"record {decision_id} is from {endpoint}, which has nothing to replay")
    out: list[str] = []
    _compare(_model_outputs(record["outputs"]), _model_outputs(replayed), "", out)
    return Replay(record, replayed, out)
