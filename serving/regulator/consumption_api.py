"""``GET /regulator/consumption-index``: the digital consumption index from the precomputed files (role ``regulator``).

A FastAPI router under ``/regulator`` (the key check of :mod:`serving.auth` lets only ``regulator``
keys through every ``/regulator/*`` path). It answers from ``index.parquet`` and ``metadata.json``
that ``lifecredit consumption-index`` writes into settings' ``consumption_folder``: read once into
memory, grouped by cell, and read again when either file changes (a rebuild replaces them
atomically). Errors are JSON ``{"error", "parameter"?, "expected"?}`` like the other regulator
routes: 400 for a malformed or unknown parameter, 404 for a sector or province the index does not
hold, 503 when the index has not been built.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import polars as pl
from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from regulator.common import rounded, suppression_note
from regulator.consumption import ALL, BUILD_COMMAND, INDEX_FILE, METADATA_FILE
from regulator.labels import label
from serving.engine import error, json_response

router = APIRouter(prefix="/regulator", tags=["regulator"])
MONTH = re.compile(r"\d{4}-(0[1-9]|1[0-2])")
SECTOR = re.compile(r"[a-z][a-z_]{0,39}")
PROVINCE = re.compile(r"\d{2}|unknown")
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "A query parameter is malformed or unknown; `parameter` names it, `expected` says what fits."},
    401: {"description": "No or unknown API key."},
    403: {"description": "The key's role is not `regulator`."},
    404: {"description": "The index holds no such sector or province."},
    503: {"description": f"The index has not been built (run `{BUILD_COMMAND}`)."},
}
_FLOATS = ("index", "index_mom", "index_yoy", "consumption_yoy", "digital_share")


class _Refused(Exception):
    def __init__(self, status: int, message: str, **extra: str):
        super().__init__(message)
        self.status, self.extra = status, extra


@dataclass(frozen=True)
class _Loaded:
    stamp: tuple
    meta: dict
    cells: dict[tuple[str, str], list[dict]]
    sectors: list[str]
    provinces: list[str]


_cache: dict[Path, _Loaded] = {}
_lock = threading.Lock()


def _stamp(folder: Path) -> tuple:
    try:
        return tuple((s.st_mtime_ns, s.st_size) for s in ((folder / n).stat() for n in (INDEX_FILE, METADATA_FILE)))
    except FileNotFoundError:
        raise _Refused(
            503, f"no consumption index in {folder}: run `{BUILD_COMMAND}` (after `lifecredit validate`)"
        ) from None


def _load(folder: Path) -> _Loaded:
    """The index of ``folder``, from memory unless its files changed since they were read."""
    stamp = _stamp(folder)
    loaded = _cache.get(folder)
    if loaded is not None and loaded.stamp == stamp:
        return loaded
    with _lock:
        loaded = _cache.get(folder)
        if loaded is not None and loaded.stamp == stamp:
            return loaded
        meta = json.loads((folder / METADATA_FILE).read_text(encoding="utf-8"))
        frame = pl.read_parquet(folder / INDEX_FILE)
        cells: dict[tuple[str, str], list[dict]] = {}
        for row in frame.sort("month").iter_rows(named=True):
            out = {
                "month": row["month"],
                **{c: rounded(row[c]) for c in _FLOATS},
                "merchants": row["merchants"],
                "consumption_fen": row["consumption_fen"],
                "consumption_count": row["consumption_count"],
                "suppressed": row["suppressed"],
            }
            cells.setdefault((row["sector"], row["province"]), []).append(out)
        loaded = _Loaded(
            stamp=stamp,
            meta=meta,
            cells=cells,
            sectors=sorted({s for s, _ in cells if s != ALL}),
            provinces=sorted({p for _, p in cells if p != ALL}),
        )
        _cache[folder] = loaded
        return loaded


def _check(name: str, value: str | None, pattern: re.Pattern, expected: str) -> str:
    if value is None or value == ALL:
        return ALL
    if not pattern.fullmatch(value):
        raise _Refused(
            400, f"query parameter '{name}': expected {expected}, got {value!r}", parameter=name, expected=expected
        )
    return value


@router.get(
    "/consumption-index",
    responses=ERRORS,
    summary="The digital consumption index (base month = 100) by sector and province, with year-on-year change and digital-payment share",
)
def consumption_index(
    request: Request,
    sector: Annotated[str | None, Query(description="A sector key, e.g. catering (default: all sectors).")] = None,
    province: Annotated[
        str | None, Query(description="A province code, e.g. 44 (default: the whole country).", examples=["44"])
    ] = None,
    from_month: Annotated[
        str | None, Query(alias="from", description="First month, YYYY-MM (default: the oldest).")
    ] = None,
    to_month: Annotated[str | None, Query(alias="to", description="Last month, YYYY-MM (default: the latest).")] = None,
) -> Response:
    """The index series of one cell: sector x province, a sector nationally, a province over all sectors, or overall.

    Suppressed months read ``{"suppressed": true}`` with every number null (``min_cell_count`` merchants).
    """
    try:
        allowed = ("sector", "province", "from", "to")
        for name in request.query_params:
            if name not in allowed:
                raise _Refused(
                    400,
                    f"query parameter '{name}': expected one of: {', '.join(allowed)}",
                    parameter=name,
                    expected=f"one of: {', '.join(allowed)}",
                )
        s = _check("sector", sector, SECTOR, "a sector key such as catering, or all")
        p = _check("province", province, PROVINCE, "a two-digit province code such as 44, or all")
        lo = _check("from", from_month, MONTH, "a month YYYY-MM, e.g. 2025-07")
        hi = _check("to", to_month, MONTH, "a month YYYY-MM, e.g. 2025-07")
        if lo != ALL and hi != ALL and lo > hi:
            raise _Refused(400, f"from {lo} is after to {hi}", parameter="from", expected=f"a month no later than {hi}")
        settings = getattr(request.app.state, "settings", None)
        if settings is None:
            raise RuntimeError("the app carries no settings (app.state.settings): serving.service puts them there")
        loaded = _load(Path(settings.consumption_folder))
        if s != ALL and s not in loaded.sectors:
            raise _Refused(404, f"no sector {s!r} in the consumption index; known: {', '.join(loaded.sectors)}")
        if p != ALL and p not in loaded.provinces:
            raise _Refused(404, f"no province {p!r} in the consumption index; known: {', '.join(loaded.provinces)}")
        rows = [
            r
            for r in loaded.cells.get((s, p), [])
            if (lo == ALL or r["month"] >= lo) and (hi == ALL or r["month"] <= hi)
        ]
        meta = loaded.meta
        level = {(False, False): "overall", (True, False): "sector", (False, True): "province"}.get(
            (s != ALL, p != ALL), "sector_province"
        )
        return json_response(
            200,
            {
                "level": level,
                "sector": {
                    "key": s,
                    "label": label("sector", s) if s != ALL else {"en": "All sectors", "zh": "全部行业"},
                },
                "province": {
                    "key": p,
                    "label": label("province", p) if p != ALL else {"en": "Whole country", "zh": "全国"},
                },
                "base_month": meta["base_month"],
                "months": meta["months"],
                "digital_channels": meta["digital_channels"],
                "built_at": meta["built_at"],
                "sectors": loaded.sectors,
                "provinces": loaded.provinces,
                "rows": rows,
                **suppression_note(int(meta["min_cell_count"])),
            },
        )
    except _Refused as err:
        return error(err.status, str(err), **err.extra)
