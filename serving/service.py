"""The BentoML service banks call: score, score in batch, decide, read an audit record, read the model card.

Run it with ``lifecredit serve`` (or ``bentoml serve serving.service:LifeCredit``; both read
the ``LIFECREDIT_*`` settings). This module is the entry point: it alone reads the settings and
passes them down (to the engine, the key middleware and the regulator routes). The class is a thin shell: :class:`serving.engine.Engine`
holds the model and answers, :class:`serving.auth.AuthMiddleware` checks keys and roles for
every route in one place, and the two GET routes (``/model``, ``/decisions/{decision_id}``)
live in a small FastAPI router mounted into the same service (BentoML API methods are
POST-only), so they share the middleware and appear in the same OpenAPI document.

Speed: handlers are ``async`` and return ready JSON bytes; answers by merchant id come from the
memory-mapped answer store ``lifecredit score-all`` wrote (see :mod:`serving.scorer`). BentoML's access log is off by
default (the audit log records every call), tracing is excluded for the API routes (its
sample rate is 0 anyway) and metrics can be turned off (``LIFECREDIT_SERVE_METRICS=false``);
``benchmarks/bench_serving.py`` measures what each costs. BentoML's request timeout is
replaced by :class:`PromptTimeout`, which leaves no timer behind per request.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from types import SimpleNamespace
from typing import Any

import anyio.to_thread
import attrs
import bentoml
from bentoml._internal.server.http import traffic as bentoml_traffic
from fastapi import FastAPI
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from core.audit import is_postgres
from core.settings import Settings, get_settings
from serving.auth import AuthMiddleware
from serving.engine import Engine, error
from serving.merchant.api import router as merchant_router
from serving.merchant.desk import MerchantDesk
from serving.regulator.api import router as regulator_router
from serving.schemas import (
    BatchRequest,
    BatchResponse,
    DecideRequest,
    DecideResponse,
    ModelCard,
    ScoreRequest,
    ScoreResponse,
)

logger = logging.getLogger("lifecredit.serving")
API_ROUTES = ("/score", "/score_batch", "/decide", "/admin", "/model", "/decisions", "/regulator", "/merchant")
MARKER_POLL_SECONDS = 2.0


def bentoml_config(settings: Settings) -> dict[str, Any]:
    """BentoML service options from the lifecredit settings (what each costs: benchmarks/bench_serving.py)."""
    return {
        "workers": settings.serve_workers,
        "logging": {"access": {"enabled": settings.serve_access_log}},
        "metrics": {"enabled": settings.serve_metrics},
        "tracing": {"excluded_urls": list(API_ROUTES)},
        "traffic": {"timeout": 60},
        "http": {"host": settings.host, "port": settings.port},
    }


class PromptTimeout(bentoml_traffic.TimeoutMiddleware):
    """BentoML's request timeout (504 when no response has started in time), its timer dropped when the response starts.

    BentoML's own never cancels its timer: every request leaves a timer handle, a future and a
    context alive for the whole timeout (a minute), so under load the garbage collector's oldest
    generation fills with them and its full passes stall the event loop, which is what made the
    by-id p99 (``benchmarks/bench_serving.py --tail``). This one also runs the app in the
    request's own task instead of a new one.
    """

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        started = False

        async def relay(message: dict) -> None:
            nonlocal started
            if not started:
                started = True
                deadline.reschedule(None)
            await send(message)

        try:
            async with asyncio.timeout(self.timeout) as deadline:
                await self.app(scope, receive, relay)
        except TimeoutError:
            if not deadline.expired() or started:
                raise
            message = f"Not able to process the request in {self.timeout} seconds"
            await JSONResponse({"error": message}, status_code=504)(scope, receive, send)


# BentoML builds its middleware stack from this module attribute when the worker starts the app.
bentoml_traffic.TimeoutMiddleware = PromptTimeout


read_api = FastAPI(title="lifecredit read API", docs_url=None, redoc_url=None, openapi_url=None)


def _engine() -> Engine:
    return bentoml.get_current_service()._engine


def _key(ctx: Any):
    state = getattr(getattr(ctx, "request", None), "state", None)
    return getattr(state, "api_key", None)


def _reply(ctx: Any, response: Response) -> Response:
    """Return ``response`` with its status: BentoML copies ``ctx.response.status_code`` over it otherwise."""
    if ctx is not None and hasattr(ctx, "response"):
        ctx.response.status_code = response.status_code
    return response


@read_api.get(
    "/model",
    response_model=ModelCard,
    tags=["lifecredit"],
    summary="Model card: version, windows, test metrics, feature set, policy (any valid key)",
)
async def model_card() -> Response:
    return _engine().model_card()


@read_api.get(
    "/admin/reload/{job_id}",
    tags=["lifecredit"],
    summary="A reload job: running, succeeded or failed, its stage and progress (role: admin)",
)
async def reload_status(job_id: str) -> Response:
    return _engine().reload_status(job_id)


@read_api.get(
    "/decisions/{decision_id}", tags=["lifecredit"], summary="One audit record (bank: its own records; admin: any)"
)
async def decision(decision_id: str, request: Request) -> Response:
    return _engine().decision(request.state.api_key, decision_id)


read_api.include_router(regulator_router)  # /regulator/* JSON (role regulator) and the dashboard page
read_api.include_router(merchant_router)  # /merchant/* (role merchant), /admin/objections (admin), the merchant page


@bentoml.service(name="lifecredit", **bentoml_config(get_settings()))
@bentoml.asgi_app(read_api, path="/")
class LifeCredit:
    """Credit-risk scores and micro-loan decisions for small life-service merchants.

    Authenticate with `Authorization: Bearer <key>`. Every score and decision is audited and
    carries a `decision_id`. See docs/api.md for the guide.
    """

    def __init__(self) -> None:
        settings = get_settings()
        bento_model = _packed_model()
        self._engine = Engine(settings, bento_model=bento_model)
        read_api.state.merchant_desk = MerchantDesk(self._engine)
        # A PostgreSQL commit is a network round trip: off the event loop, or one worker serves one
        # request at a time. A local SQLite append is cheaper inline than a hop to a thread.
        self._offload = is_postgres(settings.audit_url)
        self._loader = threading.Thread(target=self._load, name="lifecredit-load", daemon=True)
        self._loader.start()
        # BentoML resolves `instance.<api>.local` per request through a descriptor that runs
        # inspect.signature each time; an instance attribute of the same name is found first.
        for name in type(self).__dict__:
            if name in LifeCredit.apis:
                setattr(self, name, getattr(self, name))
        if settings.serve_workers > 1:
            threading.Thread(target=self._watch_reloads, name="lifecredit-reload-watch", daemon=True).start()

    def _load(self) -> None:
        self._engine.load(freeze_heap=True)

    def _watch_reloads(self) -> None:
        while True:
            time.sleep(MARKER_POLL_SECONDS)
            if self._engine.scorer is not None:
                self._engine.poll_marker()

    async def _audited(self, answer, *args) -> Response:
        """Run an answer that appends to the audit log: inline for SQLite, in a thread for PostgreSQL."""
        if self._offload:
            return await anyio.to_thread.run_sync(answer, *args)
        return answer(*args)

    def __is_ready__(self) -> bool:
        """Ready once model, snapshot and audit store are; otherwise /readyz answers 503 naming the cause."""
        if self._engine.ready():
            return True
        raise HTTPException(503, detail=self._engine.not_ready().body.decode())

    @bentoml.api(route="/score", input_spec=ScoreRequest, output_spec=ScoreResponse)
    async def score(
        self, merchant_id: str | None = None, features: dict | None = None, ctx: bentoml.Context = None
    ) -> Response:
        """Score one merchant by `merchant_id` (latest snapshot) or from a full `features` row (role: bank)."""
        key = _key(ctx)
        if key is None:
            return _reply(ctx, error(401, "missing API key"))
        if merchant_id is not None:
            return _reply(ctx, await self._audited(self._engine.score_id, key, merchant_id))
        return _reply(ctx, await anyio.to_thread.run_sync(self._engine.score_features, key, features))

    @bentoml.api(route="/score_batch", input_spec=BatchRequest, output_spec=BatchResponse)
    async def score_batch(self, merchant_ids: list[str], ctx: bentoml.Context = None) -> Response:
        """Score up to 10,000 merchants by id, results in request order; unknown ids get an error item (role: bank)."""
        key = _key(ctx)
        if key is None:
            return _reply(ctx, error(401, "missing API key"))
        return _reply(ctx, await anyio.to_thread.run_sync(self._engine.score_batch, key, merchant_ids))

    @bentoml.api(route="/decide", input_spec=DecideRequest, output_spec=DecideResponse)
    async def decide(
        self, merchant_id: str, requested_amount_fen: int, term_months: int, product: str, ctx: bentoml.Context = None
    ) -> Response:
        """Micro-loan decision: approve / refer / decline, limit, price and the policy rules that fired (role: bank)."""
        key = _key(ctx)
        if key is None:
            return _reply(ctx, error(401, "missing API key"))
        return _reply(
            ctx, await self._audited(self._engine.decide, key, merchant_id, requested_amount_fen, term_months, product)
        )

    @bentoml.api(route="/admin/reload")
    async def admin_reload(self, ctx: bentoml.Context = None) -> dict:
        """Start loading the current champion and the newest snapshot without a restart (role: admin).

        Answers 202 at once with a job id; `GET /admin/reload/{job_id}` follows its progress. The
        old answers keep serving until the new answer store is complete and verified, then the
        switch is atomic; a failed reload leaves the old answers serving and says why.
        """
        key = _key(ctx)
        if key is None:
            return _reply(ctx, error(401, "missing API key"))
        return _reply(ctx, self._engine.admin_reload())


def _gatekeeper(app: Any) -> AuthMiddleware:
    """The key middleware, and the read API's settings, from the settings this process runs with.

    BentoML builds the middleware with the ASGI app, before the service instance exists; the
    regulator routes read the settings from ``read_api.state`` (lower layers never read them).
    """
    settings = get_settings()
    read_api.state.settings = settings
    return AuthMiddleware(app, settings)


LifeCredit.add_asgi_middleware(_gatekeeper)


class _Service(type(LifeCredit)):
    """BentoML's service with its OpenAPI document labelled 3.1.0, the version its schemas follow.

    BentoML 1.4 labels /docs.json "3.0.2" but writes JSON Schema 2020-12 forms (as FastAPI's 3.1
    generator does for the mounted read API), which OpenAPI 3.0 tools such as schemathesis reject.
    """

    __slots__ = ()

    @property
    def openapi_spec(self):
        return attrs.evolve(super().openapi_spec, openapi="3.1.0")


LifeCredit.__class__ = _Service


def _packed_model() -> str | None:
    """The lifecredit model packed in the Bento this service was loaded from (None outside a Bento)."""
    bento = LifeCredit.bento
    if bento is None:
        return None
    for info in bento.info.models:
        return str(info.tag)
    raise RuntimeError(f"Bento {bento.tag} packs no model; rebuild it with `lifecredit bento build`")


def direct_context(key) -> SimpleNamespace:
    """A stand-in for ``bentoml.Context`` to call the API methods directly (tests, notebooks)."""
    return SimpleNamespace(request=SimpleNamespace(state=SimpleNamespace(api_key=key)))
