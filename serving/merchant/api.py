"""The merchant routes (role ``merchant``: its own report and objections) and the data steward's (role ``admin``).

A FastAPI router included into the service's read API, behind the same key middleware
(:mod:`serving.auth`: ``/merchant/*`` lets only merchant keys through, ``/admin/*`` only admin
keys). Handlers are plain ``def`` (FastAPI runs them in its thread pool, off the scoring event
loop); the work is :class:`serving.merchant.desk.MerchantDesk`'s. The page ``/merchant/`` and its
assets come from :mod:`serving.merchant.page`.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from serving.engine import error
from serving.merchant.desk import MerchantDesk
from serving.merchant.page import pages

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "No or unknown API key."},
    403: {"description": "The key's role may not call this route."},
    404: {"description": "No such merchant, record or objection for this key (existence is not disclosed)."},
    422: {"description": "The body does not fit: `detail` names each field and what was expected."},
    503: {"description": "The model, snapshot or audit store is not ready; nothing was changed."},
}

merchant = APIRouter(prefix="/merchant", tags=["merchant"], responses=ERRORS)
steward = APIRouter(prefix="/admin/objections", tags=["admin"], responses=ERRORS)


def desk(request: Request) -> MerchantDesk:
    """The service's desk (set up with its engine when the service starts)."""
    return request.app.state.merchant_desk


def _body(raw: bytes) -> Any:
    try:
        return json.loads(raw or b"null")
    except ValueError as err:
        raise _BadJSON(str(err)) from err


class _BadJSON(ValueError):
    pass


async def _json(request: Request) -> Any | Response:
    try:
        return _body(await request.body())
    except _BadJSON as err:
        return error(400, f"request body is not JSON: {err}", expected="a JSON object")


@merchant.get("/report", summary="The merchant's own credit report: answer, history, reasons, records, objections")
def report(request: Request, merchant_id: Annotated[str | None, Query(max_length=64)] = None) -> Response:
    return desk(request).report(request.state.api_key, merchant_id)


@merchant.get("/objections", summary="The merchant's objections and their status")
def own_objections(request: Request) -> Response:
    return desk(request).objections(request.state.api_key)


@merchant.post(
    "/objections",
    status_code=201,
    summary="Object to one of the merchant's records (异议), or ask for credit repair (信用修复) of a public record",
    description="Body: `{table, record_id, reason, evidence?, kind: objection|repair}` (docs/merchants.md).",
)
async def file_objection(request: Request) -> Response:
    body = await _json(request)
    if isinstance(body, Response):
        return body
    return await anyio.to_thread.run_sync(desk(request).file, request.state.api_key, body)


@steward.get("", summary="Objections by status (received, overdue, resolved, open), with counts (data steward)")
def list_objections(
    request: Request,
    status: Annotated[str | None, Query(description="received | overdue | resolved | open")] = None,
) -> Response:
    return desk(request).list_all(status)


@steward.post(
    "/{objection_id}/resolve",
    summary="Resolve an objection: corrected (with the correction; the merchant is re-scored) or upheld",
    description="Body: `{outcome: corrected|upheld, correction?: {action: delete|update, corrected_fields?}, note?}`.",
)
async def resolve(request: Request, objection_id: str) -> Response:
    body = await _json(request)
    if isinstance(body, Response):
        return body
    return await anyio.to_thread.run_sync(desk(request).resolve, request.state.api_key, objection_id, body)


router = APIRouter()
router.include_router(merchant)
router.include_router(steward)
router.include_router(pages)
