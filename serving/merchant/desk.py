"""The merchant desk: a merchant's report and objections, and the data steward's resolutions, over the engine.

Every step that changes a merchant's record is audited before its answer leaves (fail closed,
like scoring): filing an objection, resolving it, the correction appended and the re-score it
led to, each with who, when, before and after. A merchant key reaches its own merchant only;
asking for any other merchant (or a record that is not its own) answers 404, so existence is
never disclosed.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.responses import Response

from answers.render import results
from core.audit import AuditLog, AuditRecord, AuditUnavailable
from core.objections import DEADLINE_DAYS, ObjectionError, ObjectionStore
from core.settings import Settings
from data_contracts.corrections import append_correction, correction_problem
from features.catalog import load_catalog
from merchant.report import QUERY_PURPOSE, build_report, class_history, record_exists
from merchant.rescore import RescoreError, merchant_tables, rescore_features
from serving.engine import Engine, error, feature_frame, json_response
from serving.keys import ApiKey
from serving.scorer import Snapshot
from training.bundle import ScoringBundle
from training.master_scale import MasterScale
from training.model_source import from_mlflow

logger = logging.getLogger("lifecredit.serving")
TABLE_ZH = {"complaints": "投诉", "public_records": "公示", "loans": "贷款", "loan_performance": "还款"}


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ObjectionRequest(_Body):
    """A merchant's objection (异议) to one of its records, or its request for credit repair (信用修复)."""

    table: Literal["complaints", "public_records", "loans", "loan_performance"]
    record_id: str = Field(min_length=1, max_length=200)
    reason: str = Field(min_length=1, max_length=2000)
    evidence: str | None = Field(None, max_length=20_000)
    kind: Literal["objection", "repair"] = "objection"


class Correction(_Body):
    action: Literal["delete", "update"]
    corrected_fields: dict[str, Any] | None = None


class Resolution(_Body):
    """The data steward's answer: the record corrected (with the correction) or upheld as it stands."""

    outcome: Literal["corrected", "upheld"]
    correction: Correction | None = None
    note: str | None = Field(None, max_length=2000)


def invalid(err: ValidationError) -> Response:
    """422 naming every field that does not fit and what was expected."""
    detail = [{"loc": ["body", *e["loc"]], "msg": e["msg"], "type": e["type"]} for e in err.errors()]
    where = ", ".join(".".join(str(p) for p in d["loc"][1:]) or "body" for d in detail)
    return error(422, f"request body does not fit: {where}", detail=detail)


def assemble(
    settings: Settings,
    store: ObjectionStore,
    *,
    merchant_id: str,
    answer: dict,
    features: dict,
    snapshot: Snapshot,
    rescored: bool,
    audit: AuditLog | None,
) -> dict:
    """The merchant's report from its served answer and feature row (the server's and the CLI's one path)."""
    rescores = store.rescores(merchant_id)
    try:
        queries = audit.queries(merchant_id, tuple(QUERY_PURPOSE)) if audit is not None else []
    except AuditUnavailable as err:
        logger.error("report of %s without its lookups: %s", merchant_id, err)
        queries = []
    current = [r for r in rescores if r["snapshot_sha256"] == snapshot.sha256]
    return build_report(
        merchant_id=merchant_id,
        answer=answer,
        features=features,
        snapshot=snapshot.peers(features.get("sector"), features.get("province")),
        tables=merchant_tables(settings.validated_dir, merchant_id, settings.corrections_folder),
        history=class_history(settings.class_history_dir, merchant_id, rescores),
        objections=store.list(merchant_id=merchant_id),
        catalog=load_catalog(),
        scale=MasterScale.load(),
        min_cell_count=settings.min_cell_count,
        rescored_at=current[-1]["rescored_at"] if current and rescored else None,
        queries=queries,
    )


def offline_report(settings: Settings, merchant_id: str) -> dict:
    """The report as the server would answer it, without a server: the champion scores the merchant's snapshot
    row (its re-scored row where a correction re-scored it on this snapshot)."""
    handle = from_mlflow(settings)
    snapshot = Snapshot.load(settings.serving_snapshot_dir)
    i = snapshot.index.get(merchant_id)
    if i is None:
        raise LookupError(f"merchant {merchant_id!r} is not in the feature snapshot {snapshot.path}")
    store = ObjectionStore(settings.objections_file)
    audit = None
    try:
        try:
            audit = AuditLog(settings.audit_url)
        except AuditUnavailable as err:
            logger.error("report of %s without its lookups: %s", merchant_id, err)
        current = store.rescores(merchant_id, snapshot_sha256=snapshot.sha256)
        row = snapshot.frame[i] if not current else feature_frame(snapshot.frame.schema, current[-1]["features"])
        bundle = ScoringBundle.load(handle.bundle_dir)
        answer = results(bundle, bundle.encode(row), [merchant_id], [snapshot.as_of[i]], handle.name, handle.version)
        features = {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in row.row(0, named=True).items()}
        return assemble(
            settings,
            store,
            merchant_id=merchant_id,
            answer=answer[0],
            features=features,
            snapshot=snapshot,
            rescored=bool(current),
            audit=audit,
        )
    finally:
        store.close()
        if audit is not None:
            audit.close()


class MerchantDesk:
    """Merchant and data-steward requests over the engine's scorer, audit log and objection store."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.settings = engine.settings
        self.catalog = load_catalog()

    # -- helpers ------------------------------------------------------------------------------
    def _not_found(self, merchant_id: str) -> Response:
        return error(404, f"no merchant {merchant_id!r} for this key")

    def _own(self, key: ApiKey, merchant_id: str | None) -> str | None:
        """The merchant a merchant key may read: its own, whatever it asks (None: another merchant's id)."""
        if merchant_id is not None and merchant_id != key.merchant_id:
            return None
        return key.merchant_id

    def _audit(self, endpoint: str, key: ApiKey, request: dict, outputs: dict, merchant_id: str, **extra) -> str:
        scorer = self.engine.scorer
        record = AuditRecord(
            endpoint=endpoint,
            key_name=key.name,
            request=request,
            outputs=outputs,
            merchant_id=merchant_id,
            model_name=scorer.handle.name if scorer else None,
            model_version=scorer.handle.version if scorer else None,
            model_run_id=scorer.handle.run_id if scorer else None,
            **extra,
        )
        return self.engine.audit.append(record)

    def _tables(self, merchant_id: str):
        return merchant_tables(self.settings.validated_dir, merchant_id, self.settings.corrections_folder)

    # -- merchant routes ----------------------------------------------------------------------
    def report(self, key: ApiKey, merchant_id: str | None = None) -> Response:
        scorer = self.engine.scorer
        if scorer is None:
            return self.engine.not_ready()
        own = self._own(key, merchant_id)
        i = scorer.find(own) if own else None
        if i is None:
            return self._not_found(merchant_id or key.merchant_id)
        report = assemble(
            self.settings,
            self.engine.objections,
            merchant_id=own,
            answer=scorer.result(i),
            features=scorer.row(i),
            snapshot=scorer.snapshot,
            rescored=i in scorer.rescored,
            audit=self.engine.audit,
        )
        return json_response(200, report)

    def objections(self, key: ApiKey) -> Response:
        found = self.engine.objections.list(merchant_id=key.merchant_id)
        return json_response(200, {"objections": [o.to_json() for o in found]})

    def file(self, key: ApiKey, body: Any) -> Response:
        """Receive an objection to one of the key's merchant's records: it is open and marked until resolved."""
        if self.engine.audit is None:
            return self.engine.not_ready()
        try:
            req = ObjectionRequest.model_validate(body)
        except ValidationError as err:
            return invalid(err)
        if req.kind == "repair" and req.table != "public_records":
            return error(
                422,
                "credit repair (kind 'repair') applies to public records; object to other records with kind 'objection'",
                detail=[{"loc": ["body", "kind"], "msg": "repair needs table public_records", "type": "value_error"}],
            )
        merchant_id = key.merchant_id
        for o in self.engine.objections.list(merchant_id=merchant_id, status="open"):
            if (o.table, o.record_id) == (req.table, req.record_id):
                return error(
                    409,
                    f"{req.table} record {req.record_id} is under objection already ({o.objection_id}, due by "
                    f"{o.due_by}); add to it through the data steward or wait for the answer",
                    objection_id=o.objection_id,
                )
        record = record_exists(self._tables(merchant_id), req.table, req.record_id)
        if record is None:
            return error(404, f"no {req.table} record {req.record_id!r} of merchant {merchant_id}")
        objection = self.engine.objections.file(
            merchant_id=merchant_id,
            kind=req.kind,
            table=req.table,
            record_id=req.record_id,
            record_type=record.get("record_type"),
            reason=req.reason,
            evidence=req.evidence,
            filed_by=key.name,
        )
        out = objection.to_json()
        try:
            self._audit("/merchant/objections", key, req.model_dump(), {"before": None, "after": out}, merchant_id)
        except AuditUnavailable as err:
            logger.error("objection %s received but not audited: %s", objection.objection_id, err)
            return error(503, "audit store unavailable; the objection was received, retry to see it audited")
        return json_response(201, out)

    # -- data steward (admin) routes ----------------------------------------------------------
    def list_all(self, status: str | None) -> Response:
        store = self.engine.objections
        try:
            found = store.list(status=status)
        except ObjectionError as err:
            return error(400, str(err), parameter="status", expected="received, overdue, resolved or open")
        everything = store.list()
        counts = {s: sum(o.status() == s for o in everything) for s in ("received", "overdue", "resolved")}
        counts["open"] = counts["received"] + counts["overdue"]
        return json_response(
            200, {"objections": [o.to_json() for o in found], "counts": counts, "deadline_days": DEADLINE_DAYS}
        )

    def resolve(self, key: ApiKey, objection_id: str, body: Any) -> Response:
        """Close an objection: ``corrected`` appends the correction and re-scores the merchant; ``upheld`` keeps
        the record. The objection, the correction and the re-score are audited as one record."""
        if self.engine.audit is None:
            return self.engine.not_ready()
        try:
            req = Resolution.model_validate(body)
        except ValidationError as err:
            return invalid(err)
        store = self.engine.objections
        objection = store.get(objection_id)
        if objection is None:
            return error(404, f"no objection {objection_id!r}")
        if not objection.is_open:
            return error(409, f"objection {objection_id} was resolved already ({objection.outcome})")
        if (req.outcome == "corrected") != (req.correction is not None):
            msg = "a corrected outcome needs its correction" if req.correction is None else "upheld takes no correction"
            return error(422, msg, detail=[{"loc": ["body", "correction"], "msg": msg, "type": "value_error"}])
        correction = None
        if req.correction is not None:
            c = req.correction
            problem = correction_problem(objection.table, objection.record_id, c.action, c.corrected_fields)
            if problem:
                return error(
                    422,
                    f"the correction would be rejected by validate ({problem}); the objection stays open",
                    detail=[
                        {"loc": ["body", "correction", *problem.split(":")[:1]], "msg": problem, "type": "value_error"}
                    ],
                )
            correction = append_correction(
                self.settings.corrections_folder,
                table=objection.table,
                record_id=objection.record_id,
                action=c.action,
                decided_by=key.name,
                corrected_fields=c.corrected_fields,
                objection_id=objection_id,
            )
        try:
            before, after = store.resolve(
                objection_id,
                outcome=req.outcome,
                resolved_by=key.name,
                note=req.note,
                correction_id=correction["correction_id"] if correction else None,
            )
        except ObjectionError as err:
            return error(409, str(err))
        rescore = self._rescore(objection.merchant_id, after, correction) if correction else None
        outputs = {
            "before": before.to_json(),
            "after": after.to_json(),
            "correction": correction,
            "rescore": rescore,
        }
        try:
            self._audit(
                "/admin/objections/resolve",
                key,
                {"objection_id": objection_id, **req.model_dump()},
                outputs,
                objection.merchant_id,
                features=(rescore or {}).get("features"),
            )
        except AuditUnavailable as err:
            logger.error("objection %s resolved but not audited: %s", objection_id, err)
            return error(503, "audit store unavailable; the resolution is stored, retry to see it audited")
        return json_response(200, {"objection": after.to_json(), "correction": correction, "rescore": rescore})

    def _rescore(self, merchant_id: str, objection, correction: dict) -> dict | None:
        """Recompute the merchant's features from its own rows and serve its new answer (no full rebuild)."""
        scorer = self.engine.scorer
        i = scorer.find(merchant_id) if scorer else None
        if i is None:
            return None
        started = time.perf_counter()
        try:
            frame = rescore_features(
                self.settings.validated_dir,
                self.settings.corrections_folder,
                scorer.snapshot.read(),
                merchant_id,
                self.catalog,
            )
        except (RescoreError, OSError) as err:
            logger.error("re-score of %s after %s failed: %s", merchant_id, correction["correction_id"], err)
            return {"error": str(err)}
        previous = scorer.result(i)
        answer = scorer.rescore(i, frame)
        action_en = "deleted" if correction["action"] == "delete" else "corrected"
        action_zh = "已删除" if correction["action"] == "delete" else "已更正"
        table, rid = objection.table, objection.record_id
        stored = self.engine.objections.add_rescore(
            merchant_id=merchant_id,
            snapshot_sha256=scorer.snapshot.sha256,
            model_version=scorer.handle.version,
            features_as_of=scorer.as_of(i),
            previous=previous,
            answer=answer,
            features=scorer.rescored[i],
            reason_en=f"Re-scored after correction {correction['correction_id']} (objection "
            f"{objection.objection_id}): {table} record {rid} {action_en}",
            reason_zh=f"因更正 {correction['correction_id']}（异议 {objection.objection_id}）重新评分："
            f"{TABLE_ZH.get(table, table)}记录 {rid} {action_zh}",
            objection_id=objection.objection_id,
            correction_id=correction["correction_id"],
        )
        self.engine.seen_rescore(scorer, stored["rescore_id"])  # already served: no worker of ours scores it again
        return {
            "before": previous,
            "after": answer,
            "features": scorer.rescored[i],
            "seconds": round(time.perf_counter() - started, 3),
        }
