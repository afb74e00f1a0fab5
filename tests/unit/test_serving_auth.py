"""Route -> role table and the authentication middleware, on a stub app (no model needed)."""

from __future__ import annotations

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from serving.auth import AuthMiddleware, allowed_roles
from serving.keys import KeyStore


@pytest.mark.parametrize(
    ("path", "roles"),
    [
        ("/score", {"bank"}),
        ("/score_batch", {"bank"}),
        ("/decide", {"bank"}),
        ("/decisions/abc", {"bank", "admin"}),
        ("/admin/reload", {"admin"}),
        ("/model", {"bank", "regulator", "admin"}),
        ("/somewhere-else", {"bank", "regulator", "admin"}),
        ("/merchant/report", {"merchant"}),
        ("/merchant/objections", {"merchant"}),
        ("/admin/objections", {"admin"}),
        ("/admin/objections/OBJ-1/resolve", {"admin"}),
    ],
)
def test_roles_by_route(path, roles):
    assert allowed_roles(path) == roles


@pytest.mark.parametrize(
    "path",
    ["/livez", "/healthz", "/readyz", "/metrics", "/docs.json", "/", "/merchant/", "/merchant/static/merchant.js"],
)
def test_probes_metrics_and_docs_are_public(path):
    assert allowed_roles(path) is None


@pytest.fixture
def stub(tmp_path):
    store = KeyStore(tmp_path / "keys.json")
    keys = {role: store.create(role) for role in ("bank", "regulator", "admin")}

    async def echo(request: Request):
        key = request.state.api_key
        return JSONResponse({"name": key.name, "role": key.role})

    async def probe(request: Request):
        return JSONResponse({"ok": True})

    app = Starlette(
        routes=[
            Route("/score", echo, methods=["POST"]),
            Route("/admin/reload", echo, methods=["POST"]),
            Route("/readyz", probe),
        ]
    )
    app.add_middleware(AuthMiddleware, keys_file=str(tmp_path / "keys.json"), max_body_bytes=2048)
    return TestClient(app), keys, store


def test_missing_unknown_revoked_and_wrong_role(stub):
    client, keys, store = stub
    r = client.post("/score", json={})
    assert r.status_code == 401 and "Authorization: Bearer" in r.json()["error"]
    assert r.headers["www-authenticate"] == "Bearer"
    assert client.post("/score", headers={"Authorization": "Basic abc"}).status_code == 401
    forged = keys["bank"][:-4] + "AAAA"
    r = client.post("/score", json={}, headers={"Authorization": f"Bearer {forged}"})
    assert r.status_code == 401 and forged not in r.text
    r = client.post("/score", json={}, headers={"Authorization": f"Bearer {keys['regulator']}"})
    assert r.status_code == 403 and "allowed: bank" in r.json()["error"]
    r = client.post("/score", json={}, headers={"Authorization": f"bearer {keys['bank']}"})
    assert r.status_code == 200 and r.json()["role"] == "bank"
    store.revoke(r.json()["name"])
    assert client.post("/score", json={}, headers={"Authorization": f"Bearer {keys['bank']}"}).status_code == 401
    assert client.get("/readyz").status_code == 200


def test_content_type_and_body_size(stub):
    client, keys, _ = stub
    auth = {"Authorization": f"Bearer {keys['bank']}"}
    r = client.post(
        "/score", content=b"merchant_id=1", headers={**auth, "Content-Type": "application/x-www-form-urlencoded"}
    )
    assert r.status_code == 415
    r = client.post("/score", content=b"x" * 4096, headers={**auth, "Content-Type": "application/json"})
    assert r.status_code == 413
    r = client.post("/score", content=b"{}", headers={**auth, "Content-Type": "application/json; charset=utf-8"})
    assert r.status_code == 200


def test_the_service_settings_set_the_key_file_and_limits(tmp_path):
    """The middleware reads nothing itself: the settings it is given name the key file and the limits."""
    from core.settings import Settings

    settings = Settings(
        var_dir=tmp_path,
        api_keys_file=tmp_path / "keys.json",
        serve_max_body_bytes=1024,
        rate_limit_per_minute=60,
        rate_limit_burst=3,
    )
    key = KeyStore(settings.api_keys_file).create("bank")

    async def echo(request: Request):
        return JSONResponse({"role": request.state.api_key.role})

    app = Starlette(routes=[Route("/score", echo, methods=["POST"])])
    app.add_middleware(AuthMiddleware, settings=settings)
    client = TestClient(app)
    auth = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    assert client.post("/score", content=b"x" * 2000, headers=auth).status_code == 413  # one of the burst of 3
    assert [client.post("/score", content=b"{}", headers=auth).status_code for _ in range(3)] == [200, 200, 429]
    with pytest.raises(ValueError, match="settings or a keys_file"):
        AuthMiddleware(app)
