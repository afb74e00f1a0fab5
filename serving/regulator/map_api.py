"""``GET /regulator/map``: the life-service dynamic map's numbers (role ``regulator``).

A FastAPI router under ``/regulator`` (the key check of :mod:`serving.auth` lets only ``regulator``
keys through every ``/regulator/*`` path); the work is :mod:`regulator.map`'s, through
:meth:`regulator.views.RegulatorViews.map_view`, which answers from aggregates it keeps in memory
once computed. Without ``measure`` the route lists the measures (zh/en labels, units, whether a
sector applies, which sources are built). Errors are JSON ``{"error", "parameter"?, "expected"?}``
like the other regulator routes: 400 for a malformed or unknown parameter, 404 for a month or
sector the stores do not hold, 503 before ``lifecredit score-all`` (or, for consumption measures,
``lifecredit consumption-index``) has built its store.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from regulator.common import UnknownValue, ViewError
from regulator.history import HistoryError
from regulator.map import LEVELS, MEASURES, SourceMissing
from regulator.views import RegulatorViews
from serving.engine import error, json_response

router = APIRouter(prefix="/regulator", tags=["regulator"])
MONTH = re.compile(r"\d{4}-(0[1-9]|1[0-2])")
SECTOR = re.compile(r"[a-z][a-z_]{0,39}")
ALLOWED = ("measure", "month", "sector", "level")
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "A query parameter is malformed or unknown; `parameter` names it, `expected` says what fits."},
    401: {"description": "No or unknown API key."},
    403: {"description": "The key's role is not `regulator`."},
    404: {"description": "No such month in the class history, or no such sector in the consumption aggregates."},
    503: {
        "description": "No class history yet (`lifecredit score-all`), or no consumption aggregates "
        "(`lifecredit consumption-index`) for a consumption measure."
    },
}


def _refuse(name: str, expected: str, got: str | None) -> Response:
    return error(400, f"query parameter '{name}': expected {expected}, got {got!r}", parameter=name, expected=expected)


@router.get(
    "/map",
    responses=ERRORS,
    summary="The life-service dynamic map (生活服务动态地图): one measure per province or prefecture in a month",
)
def life_map(
    request: Request,
    measure: Annotated[
        str | None,
        Query(
            description="What colours the regions (omit to list the measures).",
            json_schema_extra={"enum": list(MEASURES)},
        ),
    ] = None,
    month: Annotated[
        str | None, Query(description="Month YYYY-MM (default: the latest of the class history).", examples=["2025-06"])
    ] = None,
    sector: Annotated[
        str | None, Query(description="One sector, for the consumption measures (default: all sectors).")
    ] = None,
    level: Annotated[
        str, Query(description="province | prefecture", json_schema_extra={"enum": list(LEVELS)})
    ] = "province",
) -> Response:
    """Per region: GB/T 2260 ``code``, ``label``, ``value``, ``status`` (shown | suppressed | no_data) and the
    ``merchants`` behind the value; a region of fewer than ``min_cell_count`` merchants (or hidden to protect
    one) reads ``{"value": null, "status": "suppressed"}``."""
    for name in request.query_params:
        if name not in ALLOWED:
            return _refuse(name, f"one of: {', '.join(ALLOWED)}", request.query_params[name])
    if measure is not None and measure not in MEASURES:
        return _refuse("measure", f"one of {'|'.join(MEASURES)}", measure)
    if level not in LEVELS:
        return _refuse("level", f"one of {'|'.join(LEVELS)}", level)
    if month is not None and not MONTH.fullmatch(month):
        return _refuse("month", "a month YYYY-MM, e.g. 2025-07", month)
    if sector is not None and not SECTOR.fullmatch(sector):
        return _refuse("sector", "a sector key such as catering", sector)
    settings = getattr(request.app.state, "settings", None)
    if settings is None:
        raise RuntimeError("the app carries no settings (app.state.settings): serving.service puts them there")
    try:
        return json_response(200, RegulatorViews(settings).map_view(measure, month, sector=sector, level=level))
    except UnknownValue as err:
        return error(404, str(err))
    except ViewError as err:
        return error(400, str(err))
    except (HistoryError, SourceMissing) as err:
        return error(503, str(err))
