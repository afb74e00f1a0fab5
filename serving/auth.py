"""Authentication and request gatekeeping for the whole service, in one ASGI middleware.

Every path needs a valid key except the probes, metrics and API docs (``PUBLIC``). Which
role may call what is one table, :data:`ROLES_BY_PATH`. The middleware also turns away
bodies the API cannot read (wrong content type, too large) before anything parses them.
The verified key travels to the handlers in the ASGI scope (``request.state.api_key``);
the key text itself is never stored, logged or echoed. The service gives the middleware its
settings (key file, limits); nothing here reads the environment.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from core.settings import Settings
from serving.keys import ROLES, KeyStore
from serving.ratelimit import RateLimiter

PUBLIC = frozenset(
    {
        *("/livez", "/healthz", "/readyz", "/metrics", "/", "/docs.json", "/schema.json"),
        *("/regulator", "/regulator/", "/merchant", "/merchant/"),  # the pages: no data until a key signs in
    }
)
PUBLIC_PREFIXES = ("/static_content/", "/assets/", "/regulator/static/", "/merchant/static/")
STAFF = frozenset(ROLES) - {"merchant"}  # a merchant key reaches its own /merchant/* routes only
ROLES_BY_PATH: dict[str, frozenset[str]] = {
    "/score": frozenset({"bank"}),
    "/score_batch": frozenset({"bank"}),
    "/decide": frozenset({"bank"}),
    "/admin/reload": frozenset({"admin"}),
    "/model": STAFF,
}
ROLES_BY_PREFIX: tuple[tuple[str, frozenset[str]], ...] = (
    ("/decisions/", frozenset({"bank", "admin"})),
    ("/admin/", frozenset({"admin"})),
    ("/regulator/", frozenset({"regulator"})),
    ("/merchant/", frozenset({"merchant"})),
)
JSON_ROUTES = frozenset(
    {"/score", "/score_batch", "/decide", "/admin/reload", "/merchant/objections", "/regulator/inspections"}
)
JSON_PREFIXES = ("/admin/objections/",)  # POST /admin/objections/{id}/resolve

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]


def allowed_roles(path: str) -> frozenset[str] | None:
    """Roles that may call ``path``; None for public paths. Unlisted paths take any staff key (not a merchant's)."""
    if path in PUBLIC or path.startswith(PUBLIC_PREFIXES):
        return None
    roles = ROLES_BY_PATH.get(path)
    if roles is not None:
        return roles
    for prefix, roles in ROLES_BY_PREFIX:
        if path.startswith(prefix):
            return roles
    return STAFF


async def _reply(send: Send, status: int, body: dict, headers: list[tuple[bytes, bytes]] = ()) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


class AuthMiddleware:
    """Bearer key by route (401 no or bad key, 403 wrong role), rate (429), content type (415), body size (413)."""

    def __init__(
        self,
        app: Callable,
        settings: Settings | None = None,
        *,
        keys_file: str | None = None,
        max_body_bytes: int | None = None,
    ):
        """``settings``: the service's own (it passes them); they name the key file and set the body and rate
        limits. A bare app (tests) may give ``keys_file`` alone: the limits are then the settings' declared
        defaults, read from no environment."""
        if settings is None:
            if keys_file is None:
                raise ValueError("AuthMiddleware needs the service's settings or a keys_file")
            settings = Settings.model_construct()  # the declared defaults, no environment read
        self.app = app
        self.keys = KeyStore(keys_file or settings.api_keys_file)
        self.max_body = max_body_bytes or settings.serve_max_body_bytes
        self.limiter = RateLimiter(settings.rate_limit_per_minute, settings.rate_limit_burst)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"]
        roles = allowed_roles(path)
        if roles is None:
            return await self.app(scope, receive, send)
        authorization = content_type = content_length = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value
            elif name == b"content-type":
                content_type = value
            elif name == b"content-length":
                content_length = value
        if not authorization:
            return await _reply(
                send,
                401,
                {"error": "missing API key: send the header 'Authorization: Bearer <key>'"},
                [(b"www-authenticate", b"Bearer")],
            )
        scheme, _, presented = authorization.decode("latin-1").partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            return await _reply(
                send,
                401,
                {"error": "malformed Authorization header: expected 'Bearer <key>'"},
                [(b"www-authenticate", b"Bearer")],
            )
        key = self.keys.authenticate(presented.strip())
        if key is None:
            return await _reply(send, 401, {"error": "unknown or revoked API key"}, [(b"www-authenticate", b"Bearer")])
        if key.role not in roles:
            return await _reply(
                send,
                403,
                {
                    "error": f"role '{key.role}' may not call {scope['method']} {path}; allowed: {', '.join(sorted(roles))}"
                },
            )
        wait = self.limiter.check(key.key_id)
        if wait:
            return await _reply(
                send,
                429,
                {
                    "error": f"rate limit exceeded for key '{key.name}': "
                    f"{self.limiter.rate * 60:g} requests a minute; retry in {wait} s",
                    "retry_after_seconds": wait,
                },
                [(b"retry-after", str(wait).encode())],
            )
        if scope["method"] == "POST" and (path in JSON_ROUTES or path.startswith(JSON_PREFIXES)):
            if content_type is not None and content_type.split(b";")[0].strip().lower() != b"application/json":
                return await _reply(
                    send,
                    415,
                    {"error": f"Content-Type must be application/json, got {content_type.decode('latin-1')[:80]!r}"},
                )
            if content_length is not None:
                try:
                    too_big = int(content_length) > self.max_body
                except ValueError:
                    return await _reply(send, 400, {"error": "malformed Content-Length header"})
                if too_big:
                    return await _reply(send, 413, {"error": f"request body over {self.max_body:,} bytes"})
            else:
                receive = await _read_limited(receive, self.max_body)
                if receive is None:
                    return await _reply(send, 413, {"error": f"request body over {self.max_body:,} bytes"})
        scope.setdefault("state", {})["api_key"] = key
        return await self.app(scope, receive, send)


async def _read_limited(receive: Receive, limit: int) -> Receive | None:
    """Read a body without Content-Length (chunked) up to ``limit`` bytes; None when it is longer.

    Returns a receive that replays what was read, then passes on to the connection.
    """
    messages, seen = [], 0
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            break
        seen += len(message.get("body", b""))
        if seen > limit:
            return None
        if not message.get("more_body", False):
            break

    async def replay() -> dict:
        return messages.pop(0) if messages else await receive()

    return replay
