"""The supervisor's dashboard: ``/regulator/`` and its assets, served by the scoring service itself.

The page and its files (``static/``: the page script and style, and Chart.js, vendored with its
licence) are public: they hold no data. The page asks for a regulator key, keeps it in the
tab's ``sessionStorage`` and calls the ``/regulator/*`` JSON API with it, so every number it
shows passed the same key check and small-cell suppression as the API. Nothing is fetched from
outside the service: the page works offline, and a Content-Security-Policy of ``'self'`` makes
the browser refuse anything else.
"""

from __future__ import annotations

import re
from pathlib import Path

from fastapi import APIRouter
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response

STATIC = Path(__file__).resolve().parent / "static"
ASSET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,80}")
MEDIA_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".svg": "image/svg+xml",
    ".txt": "text/plain; charset=utf-8",
    ".md": "text/plain; charset=utf-8",
}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

pages = APIRouter()


@pages.get("/regulator", include_in_schema=False)
def to_dashboard() -> Response:
    return RedirectResponse("/regulator/", status_code=307)


@pages.get("/regulator/", include_in_schema=False)
def dashboard() -> Response:
    """The dashboard page (public: it carries no data until a regulator key signs in)."""
    return FileResponse(STATIC / "index.html", media_type=MEDIA_TYPES[".html"], headers=SECURITY_HEADERS)


@pages.get("/regulator/static/{name}", include_in_schema=False)
def asset(name: str) -> Response:
    """One file of the dashboard's static folder, by plain name (no sub-folders, nothing outside it)."""
    path = STATIC / name
    if not ASSET_NAME.fullmatch(name) or ".." in name or not path.is_file():
        return JSONResponse({"error": f"no dashboard asset {name!r}"}, status_code=404)
    return FileResponse(
        path, media_type=MEDIA_TYPES.get(path.suffix, "application/octet-stream"), headers=SECURITY_HEADERS
    )
