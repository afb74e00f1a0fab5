"""The supervisor's dashboard: ``/regulator/`` and its assets, served by the scoring service itself.

The page and its files (``static/``: the page script and style, and Chart.js, vendored with its
licence) are public: they hold no data. The page asks for a regulator key, keeps it in the
tab's ``sessionStorage`` and calls the ``/regulator/*`` JSON API with it, so every number it
shows passed the same key check and small-cell suppression as the API. The routes, headers and
Content-Security-Policy are the ones every page shares (:mod:`serving.static_pages`).
"""

from __future__ import annotations

from pathlib import Path

from serving.static_pages import static_page

STATIC = Path(__file__).resolve().parent / "static"

pages = static_page("/regulator", STATIC, "dashboard")
