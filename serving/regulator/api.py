"""The regulator JSON API: ``GET /regulator/...`` routes of the scoring service (role ``regulator``).

A FastAPI router included into the service's read API (:data:`serving.service.read_api`), so
the routes share the service's key check (:mod:`serving.auth` lets only ``regulator`` keys
through) and appear in its OpenAPI document. Each route validates its query, then calls one
:class:`~regulator.views.RegulatorViews` method: the same numbers, with the same
small-cell suppression, as the dashboard and the report.

Errors are JSON ``{"error": ..., "parameter": ..., "expected": ...}``: 400 for a malformed or
unknown query parameter, 404 for a month, sector or province the class history does not
hold, 503 when the history (``lifecredit score-all``) or the champion is missing. Handlers
are plain ``def``: FastAPI runs them in its thread pool, off the event loop that serves scoring.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from regulator.aggregates import (
    DIMENSIONS,
    INCLUSION_DIMENSIONS,
    UnknownValue,
    ViewError,
)
from regulator.history import HistoryError
from regulator.objections import KINDS, OBJECTION_DIMENSIONS
from regulator.views import RegulatorViews
from serving.engine import error, json_response
from serving.regulator.consumption_api import router as consumption_router
from serving.regulator.dashboard import pages
from serving.regulator.inspections_api import router as inspections_router
from serving.regulator.map_api import router as map_router

logger = logging.getLogger("lifecredit.serving")
MONTH = re.compile(r"\d{4}-(0[1-9]|1[0-2])")
MONTH_EXPECTED = "a month YYYY-MM, e.g. 2025-07"

data = APIRouter(prefix="/regulator", tags=["regulator"])
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "A query parameter is malformed or unknown; `parameter` names it, `expected` says what fits."},
    401: {"description": "No or unknown API key."},
    403: {"description": "The key's role is not `regulator`."},
    404: {"description": "The class history holds no such month, sector or province."},
    503: {"description": "No class history yet (run `lifecredit score-all`), or no champion (validation)."},
}


class ParamError(ValueError):
    """A query parameter the route cannot use."""

    def __init__(self, parameter: str, expected: str, got: str | None = None):
        self.parameter, self.expected, self.got = parameter, expected, got
        shown = "" if got is None else f", got {got!r}"
        super().__init__(f"query parameter '{parameter}': expected {expected}{shown}")


def views(request: Request) -> RegulatorViews:
    """The views over the stores of the app's settings (cheap: they read the history on each call).

    The service puts its settings on the app (``app.state.settings``, see :mod:`serving.service`);
    routes check their query first, so a malformed one is answered without them.
    """
    settings = getattr(request.app.state, "settings", None)
    if settings is None:
        raise RuntimeError("the app carries no settings (app.state.settings): serving.service puts them there")
    return RegulatorViews(settings)


def _only(request: Request, *allowed: str) -> None:
    """Refuse query parameters the route does not know (a typo such as ``form=`` would otherwise be ignored)."""
    for name in request.query_params:
        if name not in allowed:
            raise ParamError(
                name, f"one of: {', '.join(allowed)}" if allowed else "no query parameters", request.query_params[name]
            )


def _month(name: str, value: str | None) -> str | None:
    if value is not None and not MONTH.fullmatch(value):
        raise ParamError(name, MONTH_EXPECTED, value)
    return value


def _choice(name: str, value: str, options: tuple[str, ...]) -> str:
    if value not in options:
        raise ParamError(name, f"one of {'|'.join(options)}", value)
    return value


def _range(from_month: str | None, to_month: str | None) -> tuple[str | None, str | None]:
    lo, hi = _month("from", from_month), _month("to", to_month)
    if lo and hi and lo > hi:
        raise ParamError("from", f"a month no later than to ({hi})", lo)
    return lo, hi


def answer(build: Callable[[], dict]) -> Response:
    """Run one view and turn its outcome into a JSON response (errors as described in the module docstring)."""
    try:
        return json_response(200, build())
    except ParamError as err:
        return error(400, str(err), parameter=err.parameter, expected=err.expected)
    except UnknownValue as err:
        return error(404, str(err))
    except ViewError as err:
        return error(400, str(err))
    except HistoryError as err:
        return error(503, str(err))


def _over_months(
    request: Request,
    view: str,
    from_month: str | None,
    to_month: str | None,
    *,
    by: tuple[str, tuple[str, ...]] | None = None,
) -> Response:
    """A route over a month range (and a ``by`` choice): check the query, then ``RegulatorViews.<view>``."""

    def build() -> dict:
        _only(request, *(("by",) if by else ()), "from", "to")
        head = (_choice("by", *by),) if by else ()
        lo, hi = _range(from_month, to_month)
        return getattr(views(request), view)(*head, lo, hi)

    return answer(build)


FromQ = Annotated[
    str | None, Query(alias="from", description="First month, YYYY-MM (default: the oldest).", examples=["2024-07"])
]
ToQ = Annotated[
    str | None, Query(alias="to", description="Last month, YYYY-MM (default: the latest).", examples=["2025-06"])
]


@data.get("/months", responses=ERRORS, summary="Months in the class history, the segments and the minimum cell")
def months(request: Request) -> Response:
    """What the other routes can be asked: the months scored, the sectors and provinces, ``min_cell_count``."""

    def build() -> dict:
        _only(request)
        v = views(request)
        latest = v.distribution("sector")
        provinces = v.distribution("province", latest["month"])
        return {
            "months": v.months(),
            "min_cell_count": v.k,
            "dimensions": list(DIMENSIONS),
            "inclusion_dimensions": list(INCLUSION_DIMENSIONS),
            "sectors": [{"key": r["key"], "label": r["label"]} for r in latest["rows"]],
            "provinces": [{"key": r["key"], "label": r["label"]} for r in provinces["rows"]],
        }

    return answer(build)


@data.get(
    "/distribution",
    responses=ERRORS,
    summary="Merchants per credit-risk class by sector, province, city, business form, urban/rural or month",
)
def distribution(
    request: Request,
    by: Annotated[
        str,
        Query(
            description="sector | province | city | business_form | urban_rural | month",
            json_schema_extra={"enum": [*DIMENSIONS, "month"]},
        ),
    ] = "sector",
    month: Annotated[
        str | None, Query(description="Month YYYY-MM (default: the latest; not with by=month).", examples=["2025-06"])
    ] = None,
    sector: Annotated[str | None, Query(description="Keep one sector (by=sector or by=month).")] = None,
    province: Annotated[
        str | None, Query(description="Keep one province code, e.g. 44 (by=province, city or month).")
    ] = None,
    from_month: FromQ = None,
    to_month: ToQ = None,
) -> Response:
    """Count and share of each class per segment for one month, or per month (``by=month``, ``from``/``to``).

    Suppressed cells read ``{"count": null, "suppressed": true, "share": null}``.
    """

    def build() -> dict:
        _only(request, "by", "month", "sector", "province", "from", "to")
        _choice("by", by, (*DIMENSIONS, "month"))
        if by == "month":
            if month is not None:
                raise ParamError("month", "no month with by=month (give from and to)", month)
            lo, hi = _range(from_month, to_month)
            return views(request).distribution("month", sector=sector, province=province, from_month=lo, to_month=hi)
        for name, value in (("from", from_month), ("to", to_month)):
            if value is not None:
                raise ParamError(name, "from/to only with by=month (use month=YYYY-MM)", value)
        if sector is not None and by not in ("sector",):
            raise ParamError("sector", "sector filter only with by=sector or by=month", sector)
        if province is not None and by not in ("province", "city"):
            raise ParamError("province", "province filter only with by=province, by=city or by=month", province)
        month_ = _month("month", month)
        return views(request).distribution(by, month_, sector=sector, province=province)

    return answer(build)


@data.get(
    "/stability",
    responses=ERRORS,
    summary="PSI of the class and score distributions month over month, with the 0.10 / 0.25 bands",
)
def stability(request: Request, from_month: FromQ = None, to_month: ToQ = None) -> Response:
    """One row per month: class PSI and score PSI against the month before, and their bands."""

    return _over_months(request, "stability", from_month, to_month)


@data.get(
    "/migration",
    responses=ERRORS,
    summary="Class migration matrix between two months: counts, row shares, upgrades and downgrades",
)
def migration(request: Request, from_month: FromQ = None, to_month: ToQ = None) -> Response:
    """Rows: class in ``from`` (and new merchants); columns: class in ``to`` (and merchants that left).

    Defaults: ``to`` the latest month, ``from`` the month before ``to``.
    """

    def build() -> dict:
        _only(request, "from", "to")
        lo, hi = _range(from_month, to_month)
        if lo is not None and lo == hi:
            raise ParamError("from", f"a month before to ({hi})", lo)
        return views(request).migration(lo, hi)

    return answer(build)


@data.get(
    "/outcomes",
    responses=ERRORS,
    summary="Observed 12-month default rate per class or grade, with 95% Jeffreys intervals",
)
def outcomes(
    request: Request,
    by: Annotated[str, Query(description="class | grade", json_schema_extra={"enum": ["class", "grade"]})] = "class",
    from_month: FromQ = None,
    to_month: ToQ = None,
) -> Response:
    """Months with fully observed 12-month outcomes pooled; mean PD and the one-sided Jeffreys p-value beside."""

    return _over_months(request, "outcomes", from_month, to_month, by=(by, ("class", "grade")))


@data.get("/concentration", responses=ERRORS, summary="Herfindahl index of the grade distribution per month")
def concentration(request: Request, from_month: FromQ = None, to_month: ToQ = None) -> Response:
    return _over_months(request, "concentration", from_month, to_month)


@data.get(
    "/inclusion",
    responses=ERRORS,
    summary="Inclusive finance: decision rates, relative approval and calibration by segment",
)
def inclusion(
    request: Request,
    by: Annotated[
        str,
        Query(
            description="urban_rural | business_form | sector | province",
            json_schema_extra={"enum": list(INCLUSION_DIMENSIONS)},
        ),
    ] = "urban_rural",
    from_month: FromQ = None,
    to_month: ToQ = None,
) -> Response:
    """Approval / referral / decline rates and average approved limit of the service's decisions per segment,
    each segment's approval rate over the overall rate, and mean PD against the observed default rate."""

    return _over_months(request, "inclusion", from_month, to_month, by=(by, INCLUSION_DIMENSIONS))


@data.get(
    "/objections",
    responses=ERRORS,
    summary="Merchants' objections and credit-repair requests: received, resolved, corrected, upheld, open, overdue",
)
def objections(
    request: Request,
    by: Annotated[
        str,
        Query(
            description="month (of receipt) | sector | province",
            json_schema_extra={"enum": list(OBJECTION_DIMENSIONS)},
        ),
    ] = "month",
    month: Annotated[
        str | None,
        Query(
            description="Month of receipt YYYY-MM of a sector or province table (default: the latest with objections; "
            "not with by=month).",
            examples=["2025-07"],
        ),
    ] = None,
    kind: Annotated[
        str | None,
        Query(description="objection | repair (default: both)", json_schema_extra={"enum": list(KINDS)}),
    ] = None,
) -> Response:
    """Per month of receipt, or per sector or province in one month: objections received, resolved, corrected,
    upheld, open and overdue (open past the 20-day deadline, or resolved after it), the median days to resolve
    and the share resolved within the deadline. No objections yet is a table of zeros, not an error."""

    def build() -> dict:
        _only(request, "by", "month", "kind")
        _choice("by", by, OBJECTION_DIMENSIONS)
        if kind is not None:
            _choice("kind", kind, KINDS)
        if by == "month" and month is not None:
            raise ParamError("month", "no month with by=month (every month of receipt is a row)", month)
        return views(request).objections(by, _month("month", month), kind)

    return answer(build)


@data.get(
    "/validation",
    responses=ERRORS,
    summary="The champion's validation evidence from MLflow: discrimination, calibration, stability",
)
def validation(request: Request) -> Response:
    """AUC / Gini / KS, calibration per grade and class with one-sided Jeffreys p-values, score PSI and feature CSI,
    as training recorded them for the current champion."""
    from training.model_source import ModelUnavailable

    def build() -> dict:
        _only(request)
        return views(request).validation()

    try:
        return answer(build)
    except ModelUnavailable as err:
        return error(503, str(err))
    except (FileNotFoundError, OSError) as err:
        logger.warning("validation evidence unreadable: %s", err)
        return error(503, f"the champion's validation evidence could not be read from MLflow: {err}")


router = APIRouter()
"""What the service includes: the JSON routes and the dashboard's pages."""
router.include_router(data)
router.include_router(inspections_router)  # /regulator/inspections: plans, their findings (own prefix)
router.include_router(map_router)  # /regulator/map: the life-service dynamic map
router.include_router(consumption_router)  # /regulator/consumption-index: the digital consumption index
router.include_router(pages)
