"""The merchant's credit-report page: ``/merchant/`` and its assets, served by the scoring service itself.

Public like the regulator dashboard (:mod:`serving.static_pages`): the page holds no data until the owner
signs in with a merchant key; it then reads ``/merchant/report`` and files objections through
``/merchant/objections`` with that key. Built for older and disabled owners (policy measure 17): large
type, high contrast, keyboard alone, 200 % zoom, zh-CN / English.
"""

from __future__ import annotations

from pathlib import Path

from serving.static_pages import static_page

STATIC = Path(__file__).resolve().parent / "static"

pages = static_page("/merchant", STATIC, "merchant page")
