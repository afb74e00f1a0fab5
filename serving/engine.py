"""What the service does, without BentoML: load and swap scorers, answer requests, audit them.

:class:`Engine` holds the current :class:`serving.scorer.Scorer` behind one reference. A
request reads the reference once and uses that scorer to the end, so a reload (which builds
a new scorer beside the old one and then swaps the reference) never mixes two models in one
answer, and a reload that fails leaves the old scorer serving.

An admin's reload is a background job (:mod:`serving.reload_jobs`): the answer store for the new
champion, snapshot and policy is opened (written first by a child process if missing) and
verified beside the old one, then swapped in; readiness never drops meanwhile.

Every scoring or decision answer is committed to the audit log before it is returned; when
the log cannot take the record the answer is a 503 and no decision exists (fail closed).
Responses are starlette ``Response`` objects with JSON bodies built from the answer store's
texts, so the hot path serialises almost nothing.

The module is over 400 lines because loading, swapping and answering share the one scorer
reference and the audit-before-answer rule; split, that invariant would span modules.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime
from pathlib import Path
from typing import Any

import polars as pl
from starlette.responses import Response

from core.audit import AuditLog, AuditRecord, AuditUnavailable, RawJSON, canonical_json
from core.files import write_text_atomic
from core.objections import ObjectionStore
from core.settings import RESOLVED_CHAMPION_ENV, Settings
from serving import archive, store_builder
from serving.keys import ApiKey
from serving.policy import DEFAULT_POLICY, OBJECTED_KEY
from serving.reload_jobs import Job, ReloadJobs
from serving.scorer import InputError, Scorer, ScorerError, Snapshot, StoreBuilder
from training.model_source import (
    ModelHandle,
    ModelUnavailable,
    from_bentoml,
    from_cache,
    from_mlflow,
)

logger = logging.getLogger("lifecredit.serving")
JSON = "application/json"
RELOAD_MARKER = "reload.json"
AUDIT_RETRY_SECONDS = 5.0


def feature_frame(schema: pl.Schema, row: dict[str, Any]) -> pl.DataFrame:
    """One stored feature row (JSON values) as a frame of the snapshot's columns and dtypes."""
    values = {}
    for name, dtype in schema.items():
        v = row.get(name)
        if isinstance(v, str) and dtype == pl.Date:
            v = date.fromisoformat(v)
        elif isinstance(v, str) and isinstance(dtype, pl.Datetime):
            v = datetime.fromisoformat(v)
        values[name] = [v]
    return pl.DataFrame(values, schema=schema)


def _freeze() -> None:
    """Collect once, then keep everything alive out of later collections (a long-lived heap, scanned for nothing)."""
    gc.collect()
    gc.freeze()


def json_response(status: int, body: Any) -> Response:
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"), default=str)
    return Response(text.encode(), status_code=status, media_type=JSON)


def error(status: int, message: str, **extra: Any) -> Response:
    return json_response(status, {"error": message, **extra})


class Engine:
    """The scoring service's state and request logic (the BentoML class is a thin shell around it)."""

    def __init__(self, settings: Settings, *, bento_model: str | None = None):
        self.settings = settings
        self.bento_model = bento_model
        self._scorer: Scorer | None = None
        self._state = "loading"
        self._problem: str | None = None
        self._reload_lock = threading.Lock()
        self._marker_mtime: float | None = None
        self._loaded = False
        self.audit: AuditLog | None = None
        self._audit_lock = threading.Lock()
        self._audit_tried = 0.0
        self._audit_problem = "not opened yet"
        self._open_audit()
        self.objections = ObjectionStore(settings.objections_file)
        self._rescores_seen: set[str] = set()
        self._seen_for: Scorer | None = None
        self._rescore_lock = threading.Lock()
        self.jobs = ReloadJobs(settings.var_dir / "reload-jobs")

    def _open_audit(self) -> bool:
        """Open the audit store if it is not open; while unreachable, retried at most every few seconds."""
        if self.audit is not None:
            return True
        if time.monotonic() - self._audit_tried < AUDIT_RETRY_SECONDS or not self._audit_lock.acquire(blocking=False):
            return False
        try:
            self._audit_tried = time.monotonic()
            self.audit = AuditLog(self.settings.audit_url)
        except AuditUnavailable as err:
            self._audit_problem = str(err)
            logger.error(
                "%s: scoring answers 503 until it is reachable (retried every %.0f s)", err, AUDIT_RETRY_SECONDS
            )
        finally:
            self._audit_lock.release()
        return self.audit is not None

    # -- loading ------------------------------------------------------------------------------
    def build_scorer(
        self,
        *,
        build_store: StoreBuilder | None = None,
        verify: str = "quick",
        model_later: bool = False,
        progress: Job | None = None,
    ) -> Scorer:
        """Resolve the champion, the newest snapshot and the policy, and open their answer store
        (written first by ``build_store`` when missing; by default in this process)."""
        s = self.settings
        with ThreadPoolExecutor(1) as pool:  # hash the snapshot while the registry answers
            hashed = pool.submit(Snapshot.load, s.serving_snapshot_dir / "latest.parquet")
            if self.bento_model:
                handle, policy_file = from_bentoml(s, self.bento_model)
            else:
                handle: ModelHandle = self._resolved_at_start() or from_mlflow(s)
                policy_file = Path(s.policy_file or DEFAULT_POLICY)
            snapshot = hashed.result()
        scorer = Scorer.build(
            handle,
            snapshot,
            policy_file,
            answers_dir=s.answers_root,
            pinned=s.answer_store,
            build_store=build_store or store_builder.in_process(s.answers_root),
            verify=verify,
            model_later=model_later,
            progress=progress.update if progress else None,
        )
        archive.keep_policy(s, policy_file, scorer.policy)  # the snapshot's rows are kept by the answer store
        self.apply_rescores(scorer)
        return scorer

    def _resolved_at_start(self) -> ModelHandle | None:
        """The champion `lifecredit serve` resolved just before starting this server (``RESOLVED_CHAMPION_ENV``), from the
        local model cache, for the first load only and only while no reload was announced since: the worker then
        need not load MLflow's client to ask the registry the same question a second time."""
        if self._loaded or self._scorer is not None:
            return None
        try:
            resolved = json.loads(os.environ[RESOLVED_CHAMPION_ENV])
        except (KeyError, ValueError):
            return None
        marker = self._marker()
        if resolved.get("model_name") != self.settings.model_name or (marker and marker > resolved["at"]):
            return None
        return from_cache(self.settings, resolved["model_name"], resolved["version"], resolved["run_id"])

    def apply_rescores(self, scorer: Scorer) -> int:
        """Serve the merchants re-scored on this snapshot (after a correction) with their newest feature rows,
        scored by this scorer's model; a later snapshot supersedes them. Returns how many were applied."""
        with self._rescore_lock:
            if self._seen_for is not scorer:
                self._seen_for, self._rescores_seen = scorer, set()
            newest: dict[str, dict] = {}
            for r in self.objections.rescores(snapshot_sha256=scorer.snapshot.sha256):
                if r["rescore_id"] not in self._rescores_seen:
                    newest[r["merchant_id"]] = r
                    self._rescores_seen.add(r["rescore_id"])
            for merchant_id, r in newest.items():
                i = scorer.find(merchant_id)
                if i is not None:
                    scorer.rescore(i, feature_frame(scorer.store.schema, r["features"]))
            return len(newest)

    def load(self, *, freeze_heap: bool = False) -> None:
        """First load (run in a background thread by the service): readiness follows its outcome.

        ``freeze_heap``: move everything alive after the load (imports, the scorer) out of the
        cyclic garbage collector's reach before reporting ready, and again once the model has loaded
        in the background; its full passes over that large, long-lived heap would otherwise pause
        requests now and then.
        """
        self._marker_mtime = self._marker() or 0.0  # reloads announced from now on are newer than this load
        try:
            self.reload(announce=False, model_later=True)  # by-id answers first, the model right after
        except (ModelUnavailable, ScorerError) as err:
            logger.error("not ready: %s", err)
        except Exception as err:  # noqa: BLE001 - keep the reason for /readyz and the API
            self._state, self._problem = "failed", f"unexpected error while loading: {err!r}"
            logger.exception("not ready")
        if freeze_heap:
            _freeze()
            if self._scorer is not None:
                self._scorer.model.add_done_callback(lambda _: _freeze())
        self._loaded = True

    def reload(
        self,
        *,
        announce: bool = True,
        build_store: StoreBuilder | None = None,
        verify: str = "quick",
        progress: Job | None = None,
        model_later: bool = False,
    ) -> dict:
        """Open the new answers beside the old ones and swap them in; on failure the old ones keep serving and
        this raises. Requests read the scorer reference once, so each is answered wholly by one of the two.

        ``announce``: write the reload marker so the server's other workers follow (an admin's
        reload does; a worker's first load and a reload that follows the marker do not).
        """
        with self._reload_lock:
            started = time.perf_counter()
            try:
                scorer = self.build_scorer(
                    build_store=build_store, verify=verify, model_later=model_later, progress=progress
                )
            except (ModelUnavailable, ScorerError) as err:
                if self._scorer is None:
                    self._state, self._problem = "failed", str(err)
                raise
            if progress is not None:
                progress.update(1.0, "switching to the new answers", force=True)
            old, self._scorer = self._scorer, scorer
            self._state, self._problem = "ready", None
            if announce:
                self._write_marker(scorer)
            seconds = round(time.perf_counter() - started, 3)
            logger.info(
                "serving %s version %s, snapshot %s (%d merchants), policy %s, answer store %s; opened in %.1f s",
                scorer.handle.name,
                scorer.handle.version,
                scorer.latest_as_of,
                len(scorer),
                scorer.policy.version,
                scorer.store.store_id,
                seconds,
            )
            return {
                "model_name": scorer.handle.name,
                "model_version": scorer.handle.version,
                "previous_version": old.handle.version if old else None,
                "features_as_of": scorer.latest_as_of,
                "merchants": len(scorer),
                "snapshot_sha256": scorer.snapshot.sha256,
                "policy_version": scorer.policy.version,
                "policy_hash": scorer.policy.sha256,
                "answer_store": scorer.store.store_id,
                "seconds": seconds,
            }

    def _reload_job(self, job: Job) -> dict:
        """An admin's reload: a missing store is written by a child process; the new store is verified in full
        (every part's SHA-256) before it is swapped in."""

        def say(fraction: float, message: str) -> None:
            job.update(0.05 + 0.9 * fraction, f"writing the answer store: {message}")

        job.update(0.01, "resolving the champion, the snapshot and the policy", force=True)
        try:
            return self.reload(
                build_store=store_builder.in_child(self.settings.answers_root, say), verify="full", progress=job
            )
        except Exception as err:
            current = self._scorer
            serving = f"version {current.handle.version} ({current.store.store_id})" if current else "nothing"
            raise RuntimeError(f"reload failed, still serving {serving}: {err}") from err

    def start_reload(self) -> tuple[dict, bool]:
        """Start an admin's reload in the background: (the job's state, whether it started now)."""
        return self.jobs.start(self._reload_job)

    def _write_marker(self, scorer: Scorer) -> None:
        """Tell the other workers of this server that a reload happened (they poll the marker)."""
        path = self.settings.var_dir / RELOAD_MARKER
        try:
            write_text_atomic(
                path,
                json.dumps(
                    {
                        "model_version": scorer.handle.version,
                        "run_id": scorer.handle.run_id,
                        "snapshot_sha256": scorer.snapshot.sha256,
                        "pid": os.getpid(),
                        "time": time.time(),
                    }
                ),
            )
            self._marker_mtime = path.stat().st_mtime
        except OSError as err:
            logger.warning("could not write reload marker %s: %s", path, err)

    def _marker(self) -> float | None:
        try:
            return (self.settings.var_dir / RELOAD_MARKER).stat().st_mtime
        except OSError:
            return None

    def seen_rescore(self, scorer: Scorer, rescore_id: str) -> None:
        """Note a re-score this worker made and serves already, so :meth:`apply_rescores` does not repeat it."""
        with self._rescore_lock:
            if self._seen_for is scorer:
                self._rescores_seen.add(rescore_id)

    def poll_marker(self) -> None:
        """Reload when another worker announced a reload after our last load, and serve the re-scores other
        workers made (called every few seconds)."""
        if self._scorer is not None:
            try:
                self.apply_rescores(self._scorer)
            except Exception as err:  # noqa: BLE001 - keep serving the answers we have
                logger.error("could not apply other workers' re-scores: %s", err)
        mtime = self._marker()
        if mtime is None or (self._marker_mtime is not None and mtime <= self._marker_mtime):
            return
        self._marker_mtime = mtime
        try:
            self.reload(announce=False, build_store=store_builder.in_child(self.settings.answers_root))
        except Exception as err:  # noqa: BLE001 - the worker keeps its old model
            logger.error("reload after another worker's reload failed: %s", err)

    @property
    def scorer(self) -> Scorer | None:
        return self._scorer

    def ready(self) -> bool:
        return self._loaded and self._scorer is not None and self._open_audit()

    def not_ready(self) -> Response:
        if not self._open_audit():
            return error(
                503, f"audit store unavailable ({self._audit_problem}): no score or decision without an audit record"
            )
        if self._state == "loading" or (self._state == "ready" and not self._loaded):
            return error(
                503, "not ready: the model and feature snapshot are still loading; retry shortly", retry_after_seconds=5
            )
        return error(503, f"not ready: {self._problem}")

    # -- audit --------------------------------------------------------------------------------
    def _record(
        self,
        endpoint: str,
        key: ApiKey,
        request: Any,
        outputs: Any,
        scorer: Scorer,
        *,
        merchant_id: str | None = None,
        features: Any = None,
        decided: bool = False,
        features_as_of: str | None = None,
        from_snapshot: bool = True,
    ) -> str:
        record = AuditRecord(
            endpoint=endpoint,
            key_name=key.name,
            request=request,
            outputs=outputs,
            merchant_id=merchant_id,
            model_name=scorer.handle.name,
            model_version=scorer.handle.version,
            features_as_of=features_as_of,
            policy_version=scorer.policy.version if decided else None,
            policy_hash=scorer.policy.sha256 if decided else None,
            model_run_id=scorer.handle.run_id,
            features_ref=scorer.snapshot.sha256 if from_snapshot else None,
            features=features,
        )
        return self.audit.append(record)

    def _audit_failed(self, err: AuditUnavailable) -> Response:
        logger.error("audit append failed, answering 503: %s", err)
        return error(503, "audit store unavailable: no score or decision without an audit record; retry later")

    # -- objections ---------------------------------------------------------------------------
    def under_objection(self, merchant_id: str) -> list[dict]:
        """The merchant's records under open objection, as a decision reads them."""
        return [
            {"table": o.table, "record_id": o.record_id, "record_type": o.record_type, "objection_id": o.objection_id}
            for o in self.objections.open_by_merchant().get(merchant_id, ())
        ]

    def _with_objections(self, fragment: str, merchant_id: str) -> str:
        """A precomputed answer with the count of the merchant's records under open objection."""
        n = len(self.objections.open_by_merchant().get(merchant_id, ()))
        return f'{{"records_under_objection":{n},{fragment[1:]}'

    # -- endpoints ----------------------------------------------------------------------------
    def score_id(self, key: ApiKey, merchant_id: str) -> Response:
        scorer = self._scorer
        if scorer is None or self.audit is None:
            return self.not_ready()
        i = scorer.find(merchant_id)
        if i is None:
            return self._unknown(scorer, merchant_id)
        fragment = self._with_objections(scorer.fragment(i), merchant_id)
        rescored = scorer.rescored.get(i)
        try:
            decision_id = self._record(
                "/score",
                key,
                {"merchant_id": merchant_id},
                RawJSON(fragment),
                scorer,
                merchant_id=merchant_id,
                features_as_of=scorer.as_of(i),
                features=rescored,
                from_snapshot=rescored is None,
            )
        except AuditUnavailable as err:
            return self._audit_failed(err)
        return Response(f'{{"decision_id":"{decision_id}",{fragment[1:]}'.encode(), media_type=JSON)

    def score_features(self, key: ApiKey, features: dict[str, Any]) -> Response:
        scorer = self._scorer
        if scorer is None or self.audit is None:
            return self.not_ready()
        try:
            result = scorer.score_row(features)
        except InputError as err:
            return error(422, str(err), detail=err.detail)
        except ScorerError as err:  # the model could not be loaded: answers by merchant id still serve
            logger.error("live row refused: %s", err)
            return error(503, f"live scoring unavailable: {err}")
        fragment = canonical_json(result)
        try:
            decision_id = self._record(
                "/score", key, {"features": features}, RawJSON(fragment), scorer, from_snapshot=False
            )
        except AuditUnavailable as err:
            return self._audit_failed(err)
        return Response(f'{{"decision_id":"{decision_id}",{fragment[1:]}'.encode(), media_type=JSON)

    def score_batch(self, key: ApiKey, merchant_ids: list[str]) -> Response:
        scorer = self._scorer
        if scorer is None or self.audit is None:
            return self.not_ready()
        parts, errors = [], 0
        for m in merchant_ids:
            i = scorer.find(m)
            if i is None:
                errors += 1
                parts.append(
                    canonical_json(
                        {
                            "merchant_id": m,
                            "error": {
                                "status": 404,
                                "code": "unknown_merchant",
                                "message": self._unknown_text(scorer, m),
                            },
                        }
                    )
                )
            else:
                parts.append(self._with_objections(scorer.fragment(i), m))
        results = "[" + ",".join(parts) + "]"
        as_of = scorer.latest_as_of
        try:
            decision_id = self._record(
                "/score_batch",
                key,
                {"merchant_ids": merchant_ids},
                RawJSON('{"results":' + results + "}"),
                scorer,
                features_as_of=as_of,
            )
        except AuditUnavailable as err:
            return self._audit_failed(err)
        head = canonical_json(
            {
                "count": len(merchant_ids),
                "decision_id": decision_id,
                "errors": errors,
                "features_as_of": as_of,
                "model_name": scorer.handle.name,
                "model_version": scorer.handle.version,
            }
        )
        return Response(f'{head[:-1]},"results":{results}}}'.encode(), media_type=JSON)

    def decide(
        self, key: ApiKey, merchant_id: str, requested_amount_fen: int, term_months: int, product: str
    ) -> Response:
        scorer = self._scorer
        if scorer is None or self.audit is None:
            return self.not_ready()
        problem = scorer.term_problem(product, term_months)
        if problem:
            return error(422, problem, detail=[{"loc": ["term_months"], "msg": problem, "type": "out_of_range"}])
        i = scorer.find(merchant_id)
        if i is None:
            return self._unknown(scorer, merchant_id)
        request = {
            "merchant_id": merchant_id,
            "requested_amount_fen": requested_amount_fen,
            "term_months": term_months,
            "product": product,
        }
        objected = self.under_objection(merchant_id)
        outputs, row = scorer.decide(i, requested_amount_fen, term_months, product, objected)
        outputs["records_under_objection"] = len(objected)
        row = {**row, OBJECTED_KEY: objected}  # what the decision saw, for replay
        try:
            decision_id = self._record(
                "/decide",
                key,
                request,
                outputs,
                scorer,
                merchant_id=merchant_id,
                features=row,
                decided=True,
                features_as_of=scorer.as_of(i),
            )
        except AuditUnavailable as err:
            return self._audit_failed(err)
        return json_response(200, {"decision_id": decision_id, **outputs})

    def decision(self, key: ApiKey, decision_id: str) -> Response:
        """One audit record. A bank sees the records its own key name made; an admin sees all."""
        if self.audit is None:
            return self.not_ready()
        try:
            record = self.audit.get(decision_id)
        except Exception as err:  # noqa: BLE001 - a broken store is a 503, not a 500
            logger.error("audit read failed: %s", err)
            return error(503, "audit store unavailable; retry later")
        if record is None or (key.role != "admin" and record["key_name"] != key.name):
            return error(404, f"no decision {decision_id!r} for this key")
        return json_response(200, record)

    def model_card(self) -> Response:
        scorer = self._scorer
        if scorer is None:
            return self.not_ready()
        return Response(scorer.card_json, media_type=JSON)

    def admin_reload(self) -> Response:
        """202 with the reload job (a new one, or the one already running); the old answers serve meanwhile."""
        state, started = self.start_reload()
        current = self._scorer
        return json_response(
            202,
            {
                **state,
                "poll": f"/admin/reload/{state['job_id']}",
                "already_running": not started,
                "serving_version": current.handle.version if current else None,
            },
        )

    def reload_status(self, job_id: str) -> Response:
        state = self.jobs.get(job_id)
        if state is None:
            return error(404, f"no reload job {job_id!r} on this server (ids look like RLD-20261206T101500-1a2b3c)")
        return json_response(200, state)

    def _unknown_text(self, scorer: Scorer, merchant_id: str) -> str:
        return f"unknown merchant_id {merchant_id!r}: not in the feature snapshot as of {scorer.latest_as_of}"

    def _unknown(self, scorer: Scorer, merchant_id: str) -> Response:
        return error(404, self._unknown_text(scorer, merchant_id), merchant_id=merchant_id)
