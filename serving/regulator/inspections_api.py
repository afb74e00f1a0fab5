"""The regulator's inspection routes (双随机、一公开): draw a plan, list plans, read one, the finding rate.

A FastAPI router under ``/regulator/inspections`` (role ``regulator``, enforced by :mod:`serving.auth`
for every ``/regulator/*`` path); the work is :mod:`regulator.inspections`'. A drawn plan is audited
with the caller's key name before it is answered (no record, no plan: 503), and kept under
``<var_dir>/inspections/plans/``. Errors are JSON ``{"error", "parameter"?, "expected"?}`` like the
other regulator routes: 400 malformed, 404 unknown month, policy or plan, 413/415 for a body the
route cannot read, 503 when the class history, the validated tables or the audit store are missing.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError
from starlette.responses import Response

from regulator import inspections as ins
from regulator.common import UnknownValue, ViewError
from regulator.history import HistoryError
from serving.engine import JSON, error, json_response

logger = logging.getLogger("lifecredit.serving")
MAX_BODY_BYTES = 4096
MONTH_EXPECTED = "a month YYYY-MM, e.g. 2025-07"

router = APIRouter(prefix="/regulator/inspections", tags=["regulator"])
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "A parameter is malformed or unknown; `parameter` names it, `expected` says what fits."},
    401: {"description": "No or unknown API key."},
    403: {"description": "The key's role is not `regulator`."},
    404: {"description": "No such month in the class history, policy version or plan."},
    503: {"description": "No class history or validated tables yet, or the audit store is unavailable."},
}
_audit_lock = threading.Lock()


class PlanRequest(BaseModel):
    """``POST /regulator/inspections``: the month to plan, an optional published seed, an optional policy version."""

    model_config = ConfigDict(extra="forbid")

    month: str = Field(pattern=ins.MONTH.pattern, description=MONTH_EXPECTED)
    seed: StrictInt | None = Field(None, ge=0, le=2**63 - 1, description="Default: the month as YYYYMM.")
    policy: str | None = Field(
        None, pattern=ins.POLICY_NAME.pattern, description="A shipped or local policy's version (never a path)."
    )


def _settings(request: Request):
    settings = getattr(request.app.state, "settings", None)
    if settings is None:
        raise RuntimeError("the app carries no settings (app.state.settings): serving.service puts them there")
    return settings


def _audit_log(request: Request):
    """One audit store per app, opened on first use (the settings' ``audit_url``)."""
    from core.audit import AuditLog, is_postgres

    state = request.app.state
    with _audit_lock:
        log = getattr(state, "inspections_audit", None)
        if log is None:
            url = _settings(request).audit_url
            log = AuditLog(url) if is_postgres(url) else AuditLog(url, checkpoint_seconds=None)
            state.inspections_audit = log
    return log


def _only(request: Request, *allowed: str) -> Response | None:
    for name in request.query_params:
        if name not in allowed:
            expected = f"one of: {', '.join(allowed)}" if allowed else "no query parameters"
            return error(400, f"query parameter '{name}': expected {expected}", parameter=name, expected=expected)
    return None


def _month(name: str, value: str | None) -> Response | None:
    if value is not None and not ins.MONTH.fullmatch(value):
        return error(
            400,
            f"query parameter '{name}': expected {MONTH_EXPECTED}, got {value!r}",
            parameter=name,
            expected=MONTH_EXPECTED,
        )
    return None


def _draw(request: Request, body: PlanRequest) -> Response:
    from core.audit import AuditUnavailable

    settings = _settings(request)
    try:
        policy = ins.find_policy(settings, body.policy)
        plan = ins.make_plan(settings, body.month, policy, body.seed)
    except UnknownValue as err:
        return error(404, str(err))
    except (HistoryError, ins.MissingInput) as err:
        return error(503, str(err))
    except (ViewError, ins.InspectionError) as err:
        return error(400, str(err))
    request_body = {
        "month": body.month,
        "seed": plan["seed"],
        "seed_given": body.seed is not None,
        "policy": policy.version,
    }
    record = ins.plan_audit_record(
        plan, endpoint=ins.PLAN_ENDPOINT, key_name=request.state.api_key.name, request=request_body
    )
    try:
        audit_id = _audit_log(request).append(record)
    except AuditUnavailable as err:
        logger.error("inspection plan %s not audited: %s", plan["plan_id"], err)
        return error(503, "audit store unavailable: no plan is drawn without its audit record; retry later")
    _, created = ins.store_plan(settings, plan)
    return Response(
        ins.plan_bytes(plan),
        status_code=201 if created else 200,
        media_type=JSON,
        headers={"X-Audit-Id": audit_id, "X-Plan-Id": plan["plan_id"]},
    )


@router.post(
    "",
    responses={
        200: {"description": "The same plan was drawn before: the stored file, unchanged (audited again)."},
        **ERRORS,
        413: {"description": "Body over 4 KiB."},
        415: {"description": "Not application/json."},
    },
    status_code=201,
    summary="Draw an inspection plan: a random sample stratified by credit-risk class x province (双随机、一公开)",
    description="Body: `{month, seed?, policy?}`. Answers the plan file itself (canonical JSON: the same month, "
    "seed, policy and stores give the same bytes); 201 when new, 200 when the same plan was drawn before. "
    "Audited with the caller's key name, the seed and the policy's SHA-256 (docs/inspections.md).",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": PlanRequest.model_json_schema()}},
        }
    },
)
async def draw(request: Request) -> Response:
    kind = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if kind != "application/json":
        return error(415, f"Content-Type must be application/json, got {kind[:80]!r}")
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY_BYTES:
            return error(413, f"request body over {MAX_BODY_BYTES:,} bytes")
    if bad := _only(request):
        return bad
    try:
        data = json.loads(raw or b"null")
    except ValueError as err:
        return error(400, f"request body is not JSON: {err}", expected="a JSON object {month, seed?, policy?}")
    try:
        body = PlanRequest.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        return error(
            400,
            f"{where}: {first['msg']}",
            parameter=where,
            expected="{month: YYYY-MM, seed?: int >= 0, policy?: version}",
        )
    return await anyio.to_thread.run_sync(_draw, request, body)


@router.get("", responses=ERRORS, summary="The stored inspection plans (of one month): id, seed, policy, counts")
def plans(
    request: Request,
    month: Annotated[str | None, Query(description="Only plans of this month, YYYY-MM.", examples=["2025-07"])] = None,
) -> Response:
    if bad := _only(request, "month") or _month("month", month):
        return bad
    return json_response(200, {"month": month, "plans": ins.list_plans(_settings(request), month)})


@router.get("/plans/{plan_id}", responses=ERRORS, summary="One stored plan, the file as drawn")
def plan(request: Request, plan_id: str) -> Response:
    if bad := _only(request):
        return bad
    found = ins.read_plan(_settings(request), plan_id)
    if found is None:
        return error(404, f"no stored inspection plan {plan_id!r}")
    return Response(ins.plan_bytes(found), media_type=JSON)


@router.get(
    "/findings",
    responses=ERRORS,
    summary="Inspection finding rate per credit-risk class (none / minor / serious; any) with 95% Jeffreys intervals",
)
def findings(
    request: Request,
    from_month: Annotated[str | None, Query(alias="from", description="First month of inspections, YYYY-MM.")] = None,
    to_month: Annotated[str | None, Query(alias="to", description="Last month of inspections, YYYY-MM.")] = None,
) -> Response:
    """Recorded inspections by the merchant's class in the month inspected; small cells suppressed."""
    if bad := _only(request, "from", "to") or _month("from", from_month) or _month("to", to_month):
        return bad
    if from_month and to_month and from_month > to_month:
        return error(
            400,
            f"from {from_month} is after to {to_month}",
            parameter="from",
            expected=f"a month no later than {to_month}",
        )
    try:
        return json_response(200, ins.findings_view(_settings(request), from_month, to_month))
    except ViewError as err:
        return error(400, str(err))
    except HistoryError as err:
        return error(503, str(err))
