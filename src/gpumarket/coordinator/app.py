"""The FastAPI application: wiring, lifespan (migrations, background loops) and error bodies."""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from gpumarket import __version__
from gpumarket.coordinator.api import (
    admin,
    auth,
    chain,
    dashboard,
    docs_ui,
    health,
    jobs,
    offers,
    provider,
    providers,
)
from gpumarket.coordinator.background.notifier import Notifier, wake_followers_on_commit
from gpumarket.coordinator.background.pipelines import Pipelines
from gpumarket.coordinator.db import migrate
from gpumarket.coordinator.db.engine import (
    make_engine,
    make_read_session_factory,
    make_session_factory,
)
from gpumarket.coordinator.http.body_guard import BodyGuard, BodyLimits, RouteBody
from gpumarket.coordinator.http.rate_limit import RateLimiter, RateLimitGuard
from gpumarket.coordinator.openapi import coordinator_openapi
from gpumarket.coordinator.services import lifecycle
from gpumarket.coordinator.services.artifacts import ContentStore
from gpumarket.coordinator.services.auth import CredentialCache
from gpumarket.coordinator.services.chain_backend import ChainSettlement
from gpumarket.coordinator.services.offchain import OffchainSettlement
from gpumarket.coordinator.services.settlement import SettlementBackend
from gpumarket.coordinator.settings import CoordinatorSettings, load_settings
from gpumarket.errors import GpumarketError, RateLimited, error_from_response

log = logging.getLogger(__name__)


def _location(loc: tuple[object, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body",)]
    return ".".join(parts) or "body"


def validation_message(exc: RequestValidationError) -> tuple[str, list[dict[str, object]]]:
    """One readable line naming each bad field and why, plus the structured list."""
    details: list[dict[str, object]] = []
    lines: list[str] = []
    for error in exc.errors():
        where = _location(tuple(error.get("loc", ())))
        msg = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        if error.get("type") == "extra_forbidden":
            msg = "unknown field (check the spelling; see /openapi.json)"
        lines.append(f"{where}: {msg}")
        details.append({"field": where, "message": msg, "type": error.get("type")})
    return "invalid request: " + "; ".join(lines), details


_OUTPUT_UPLOAD = re.compile(r"^/v1/provider/jobs/[^/]+/outputs$")
_LOG_APPEND = re.compile(r"^/v1/provider/jobs/[^/]+/logs$")


def body_limits(settings: CoordinatorSettings) -> BodyLimits:
    """The request-body caps of this coordinator: output archives stream in under their own
    cap, log batches are larger than other JSON bodies, everything else is a small JSON body."""

    def route_body(method: str, path: str) -> RouteBody | None:
        if method == "PUT" and _OUTPUT_UPLOAD.match(path):
            return RouteBody(cap=settings.max_output_bytes, streamed=True)
        if method == "POST" and _LOG_APPEND.match(path):
            return RouteBody(cap=settings.max_log_batch_bytes)
        return None

    return BodyLimits(
        max_body_bytes=settings.max_request_bytes,
        max_json_depth=settings.max_json_depth,
        read_timeout_seconds=settings.body_timeout_seconds,
        route_body=route_body,
    )


def create_app(
    settings: CoordinatorSettings | None = None, settlement: SettlementBackend | None = None
) -> FastAPI:
    """Build the coordinator app; ``settlement`` defaults to off-chain accounting."""
    settings = settings or load_settings()  # a wrong setting: a ConfigurationError
    engine = make_engine(settings.db_url)
    notifier = Notifier()
    session_factory = make_session_factory(engine)
    # the one place that chooses the ledger: nothing else asks which one it got
    backend = settlement or (
        ChainSettlement(settings, session_factory)
        if settings.chain_configured
        else OffchainSettlement()
    )
    # on-chain, the contract's terms decide what a result locks and what a sampled job pays:
    # matching and pricing follow them (a provider without the stake a result locks would run
    # jobs it cannot be paid for)
    terms = backend.market_terms()
    update: dict[str, int] = {"stake_multiple": terms.stake_multiple}
    if settings.min_stake_micros == 0:
        update["min_stake_micros"] = terms.min_stake_micros
    if terms.premium_bps is not None:
        update["verification_premium_bps"] = terms.premium_bps
    settings = settings.model_copy(update=update)
    pipelines = Pipelines(session_factory, settings, backend, notifier)
    wake_followers_on_commit(session_factory, notifier, lifecycle.CHANGED_JOBS)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.auto_migrate:
            await asyncio.to_thread(migrate.upgrade, settings.db_url)
        if isinstance(backend, ChainSettlement):
            await asyncio.to_thread(backend.adopt_file_outbox)
        settings.outputs_dir.mkdir(parents=True, exist_ok=True)
        notifier.bind(asyncio.get_running_loop())
        if settings.background:
            pipelines.start()
        log.info(
            "coordinator ready (db=%s, settlement=%s)",
            engine.url.render_as_string(hide_password=True),
            backend.name,
        )
        try:
            yield
        finally:
            await pipelines.stop()
            engine.dispose()

    app = FastAPI(
        title="gpumarket coordinator",
        version=__version__,
        description="Submit containerized GPU jobs, match them to providers, settle payments.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.session_factory = session_factory
    app.state.read_session_factory = make_read_session_factory(engine)
    app.state.credentials = CredentialCache()
    app.state.settlement = backend
    app.state.notifier = notifier
    app.state.pipelines = pipelines
    app.state.store = ContentStore(settings.outputs_dir)
    app.state.rate_limiter = RateLimiter()
    app.add_middleware(BodyGuard, limits=body_limits(settings))
    # outermost: a request over its budget is refused before its body is even read
    app.add_middleware(RateLimitGuard, limiter=app.state.rate_limiter, settings=settings)
    # set when the server is asked to stop: long-polls and log streams end at once, cleanly
    # (clients poll again or resume), instead of holding the shutdown until they are cut
    app.state.shutting_down = threading.Event()

    @app.exception_handler(GpumarketError)
    async def _domain_error(_: Request, exc: GpumarketError) -> JSONResponse:
        headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, RateLimited) else None
        return JSONResponse(exc.to_dict(), status_code=exc.status_code, headers=headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        # the framework's own answers (a body that is not JSON, an unknown route, a wrong
        # method) get the one error body too, with the code the SDK maps the status to
        code = error_from_response(exc.status_code, None).code
        return JSONResponse(
            {"detail": str(exc.detail), "code": code},
            status_code=exc.status_code,
            headers=exc.headers,
        )

    @app.exception_handler(ClientDisconnect)
    async def _client_gone(request: Request, _: ClientDisconnect) -> Response:
        # nobody reads this answer; what was half-received is discarded by the route
        log.info("client left during %s %s", request.method, request.url.path)
        return Response(status_code=499)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        message, details = validation_message(exc)
        return JSONResponse(
            {"detail": message, "code": "invalid_request", "errors": details}, status_code=422
        )

    @app.exception_handler(Exception)
    async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(
            {
                "detail": "internal error in the coordinator; the operator's log has the details",
                "code": "internal",
            },
            status_code=500,
        )

    for module in (auth, jobs, offers, provider, providers, admin, chain, health, dashboard):
        app.include_router(module.router)
    docs_ui.install(app)
    app.openapi = lambda: coordinator_openapi(app)  # type: ignore[method-assign]
    return app
