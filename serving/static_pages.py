"""One browser page and its static folder, served by the scoring service itself (the regulator dashboard, the
merchant's credit report).

Such a page and its files are public: they hold no data. The page asks for a key, keeps it in the tab's
``sessionStorage`` and calls the service's JSON API with it, so every number it shows passed the same key
check as the API. Nothing is fetched from outside the service: the page works offline, and a
Content-Security-Policy of ``'self'`` makes the browser refuse anything else (no inline script or style).
"""

from __future__ import annotations

import re
from pathlib import Path

from fastapi import APIRouter
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response

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


def static_page(prefix: str, folder: Path, what: str) -> APIRouter:
    """Routes for one page: ``GET {prefix}`` (307 to ``{prefix}/``), ``GET {prefix}/`` (``folder/index.html``)
    and ``GET {prefix}/static/{name}`` (one file of ``folder`` by plain name: no sub-folders, nothing outside it).

    ``what`` names the page in the 404 answer for a missing asset.
    """
    pages = APIRouter()

    @pages.get(prefix, include_in_schema=False)
    def to_page() -> Response:
        return RedirectResponse(f"{prefix}/", status_code=307)

    @pages.get(f"{prefix}/", include_in_schema=False)
    def page() -> Response:
        """The page (public: it carries no data until a key signs in)."""
        return FileResponse(folder / "index.html", media_type=MEDIA_TYPES[".html"], headers=SECURITY_HEADERS)

    @pages.get(f"{prefix}/static/{{name}}", include_in_schema=False)
    def asset(name: str) -> Response:
        """One file of the page's static folder."""
        path = folder / name
        if not ASSET_NAME.fullmatch(name) or ".." in name or not path.is_file():
            return JSONResponse({"error": f"no {what} asset {name!r}"}, status_code=404)
        return FileResponse(
            path, media_type=MEDIA_TYPES.get(path.suffix, "application/octet-stream"), headers=SECURITY_HEADERS
        )

    return pages
