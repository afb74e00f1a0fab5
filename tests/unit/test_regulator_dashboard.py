"""The dashboard's routes and roles, on a bare FastAPI app with the real router and key middleware (no model)."""

from __future__ import annotations

import re

import pytest
from fastapi import FastAPI
from starlette.testclient import TestClient

from serving.auth import AuthMiddleware, allowed_roles
from serving.keys import KeyStore
from serving.regulator.api import router
from serving.regulator.dashboard import STATIC

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.mark.parametrize(
    ("path", "roles"),
    [
        ("/regulator", None),
        ("/regulator/", None),
        ("/regulator/static/dashboard.js", None),
        ("/regulator/distribution", {"regulator"}),
        ("/regulator/validation", {"regulator"}),
        ("/regulator/anything", {"regulator"}),
    ],
)
def test_page_is_public_data_is_for_regulators(path, roles):
    assert allowed_roles(path) == (None if roles is None else frozenset(roles))


@pytest.fixture
def client(tmp_path):
    store = KeyStore(tmp_path / "keys.json")
    keys = {role: store.create(role) for role in ("bank", "regulator")}
    app = FastAPI()
    app.include_router(router)
    app.add_middleware(AuthMiddleware, keys_file=str(tmp_path / "keys.json"))
    return TestClient(app), keys


def test_page_and_assets_are_served_offline_with_a_strict_policy(client):
    c, _ = client
    page = c.get("/regulator/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp
    # every script and stylesheet the page names is served here; nothing from another host
    refs = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert refs and not [r for r in refs if r.startswith(("http:", "https:", "//"))]
    for ref in refs:
        if ref.startswith("/"):
            r = c.get(ref)
            assert r.status_code == 200 and len(r.content) > 500, ref
    assert c.get("/regulator/static/chart.umd.min.js").headers["content-type"].startswith("text/javascript")
    assert (STATIC / "chart.js-LICENSE.md").read_text().startswith("The MIT License")
    assert c.get("/regulator", follow_redirects=False).headers["location"] == "/regulator/"


@pytest.mark.parametrize("name", ["..%2Fapi.py", "%2E%2E%2Fdashboard.py", ".hidden", "nope.js", "a%00b.js"])
def test_nothing_outside_the_static_folder(client, name):
    c, _ = client
    assert c.get(f"/regulator/static/{name}").status_code == 404


def test_data_needs_a_regulator_key(client):
    c, keys = client
    assert c.get("/regulator/stability").status_code == 401
    r = c.get("/regulator/stability", headers={"Authorization": f"Bearer {keys['bank']}"})
    assert r.status_code == 403 and "allowed: regulator" in r.json()["error"]
    r = c.get(
        "/regulator/stability", params={"from": "2025-13"}, headers={"Authorization": f"Bearer {keys['regulator']}"}
    )
    assert r.status_code == 400 and r.json()["parameter"] == "from"
