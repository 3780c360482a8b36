"""The app factory: thin routes that decode, call the core and encode.

``create_app()`` with no arguments reads Settings from the environment; that is
how ``tailor serve`` starts it in every granian worker. Each worker loads and
compiles the bundle at start-up and then follows its source (service/bundle/source.py).
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import logging
import os
import sys
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from time import perf_counter, time
from typing import Any, TypeVar

import msgspec
from litestar import Litestar, Request, Response, get, head, post
from litestar.config.cors import CORSConfig
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from service import logs
from service.bundle.loader import Reuse, load_snapshot
from service.bundle.source import open_source
from service.bundle.store import BundleStore, LoadReport
from service.http import ofrep, openapi, preview, wire
from service.http.body import check_headers, decode_off_the_loop, read_body
from service.http.decisions import NDJSON, Decisions
from service.http.docs import swagger_asset, swagger_page
from service.http.events import Outcomes, body_limit
from service.http.lean import LeanDecide, LeanRender, in_front
from service.http.mapping import bundle_info, problem_out
from service.http.problems import AdminDisabledError, UnauthorizedError, problem_response
from service.render.cache import RenderCache
from service.runtime import freeze_heap
from service.segments.onnx import OnnxScorer
from service.settings import Settings
from service.telemetry.metrics import CONTENT_TYPE, Metrics
from service.telemetry.recorder import DecisionRecorder, open_recorder

log = logging.getLogger("tailor.http")

T = TypeVar("T")

# granian's I/O thread needs the GIL to hand each request, body and response to the event loop;
# while a render batch holds it, every hand-over waited CPython's default 5 ms.
GIL_SWITCH_S = 0.0005
ENDPOINTS = frozenset(
    {"/v1/decide", "/v1/render", "/v1/events", "/v1/bundle", "/healthz", "/readyz", "/metrics", "/admin/reload"}
)
ENDPOINTS |= ofrep.ENDPOINTS
LEAN_STATE = "lean_decide"
LEAN_RENDER_STATE = "lean_render"


def create_app(  # noqa: PLR0915 - one closure per route over this worker's store, metrics and log
    settings: Settings | None = None,
    store: BundleStore | None = None,
    clock: Callable[[], datetime] | None = None,
    *,
    lean_decide: bool = True,
) -> Litestar:
    """Build the ASGI app. Tests pass their own store or clock; the server passes nothing.

    ``lean_decide``: answer ``POST /v1/decide`` on the lean path (service/http/lean.py); the
    tests that pin it to the routed handler build the app without it.
    """
    settings = settings or Settings.from_env()
    sys.setswitchinterval(GIL_SWITCH_S)
    logs.configure(settings.log_level, settings.log_format)
    metrics = Metrics()
    opened = metrics.timed_scorer(OnnxScorer)
    store = store or BundleStore(functools.partial(load_snapshot, open_model=opened, reuse=Reuse()))
    now = clock or (lambda: datetime.now(UTC))

    def reloaded(report: LoadReport) -> None:
        metrics.reloads.labels("ok" if report.ok else "error").inc()
        if store.ready:
            metrics.serving(store.current.bundle.revision)

    if settings.bundle_url:
        metrics.watch_origin()
    source = open_source(settings, store, reloaded, lambda outcome: metrics.origin_polled(outcome, time()))
    recorder = _recorder(settings)
    if recorder is not None:
        metrics.watch_decision_log(recorder.log)

    def stop(_: Litestar) -> None:
        notifier.close()
        source.stop()
        if recorder is not None and not recorder.close(timeout=5):
            log.warning("decision log closed with %d decisions not written", recorder.log.pending)

    decisions = Decisions(settings, metrics, recorder, now, RenderCache(int(settings.render_cache_mb * 1024 * 1024)))

    async def decoded(request: Request[Any, Any, Any], kind: type[T], limit: int) -> T:
        check_headers(request.headers)
        declared = request.headers.get("content-length")
        raw = await read_body(request.receive, limit=limit, timeout_s=settings.body_timeout_s, declared=declared)
        return await decode_off_the_loop(raw, kind)

    ofrep_routes, notifier = ofrep.routes(settings, store, decisions, decoded)

    client_time = functools.partial(_client_time, settings)

    @post("/v1/decide", status_code=200)
    async def decide_placements(request: Request[Any, Any, Any]) -> Response[wire.DecideResponse]:
        data = await decoded(request, wire.DecideRequest, settings.max_body_bytes)
        bundle = store.current.bundle  # one bundle for the whole request
        return decisions.decide(bundle, data, client_time=client_time(request.headers))

    @post("/v1/render", status_code=200)
    async def render_batch(request: Request[Any, Any, Any]) -> Response[Any]:
        data = await decoded(request, wire.RenderRequest, settings.max_render_body_bytes)
        bundle = store.current.bundle  # one bundle for the whole batch, whatever swaps meanwhile
        stream = NDJSON in request.headers.get("accept", "")
        return await decisions.render_batch(bundle, data, stream=stream, client_time=client_time(request.headers))

    outcomes = Outcomes(settings, metrics, recorder, now)

    @post("/v1/events", status_code=202)
    async def record_events(request: Request[Any, Any, Any]) -> wire.EventsAccepted:
        data = await decoded(request, wire.EventsRequest, body_limit(settings))
        return outcomes.accept(data, client_time=client_time(request.headers))

    @get("/schema/openapi.json", include_in_schema=False)
    async def openapi_document() -> Response[bytes]:
        return Response(msgspec.json.encode(api_document()), media_type="application/json")

    @get("/schema/swagger", include_in_schema=False)
    async def openapi_page(request: Request[Any, Any, Any]) -> Response[bytes]:
        return Response(swagger_page(request, api_document()), media_type="text/html")

    api_document = functools.partial(_api_document, settings, store)

    @get("/v1/bundle", summary="The bundle being served: revision, placements, segments, experiments, models")
    async def describe_bundle() -> wire.BundleInfo:
        return bundle_info(store.current, store.last_problems)

    @get("/readyz", summary="A bundle is loaded and decisions can be made")
    async def readyz() -> Response[wire.Health]:
        if not store.ready:
            return Response(wire.Health("not_ready"), status_code=503)
        return Response(wire.Health("ready", store.current.bundle.revision))

    @head("/readyz", summary="As GET /readyz, without a body: load balancers that check with HEAD")
    async def readyz_head() -> Response[None]:
        return Response(None, status_code=200 if store.ready else 503)

    @get("/metrics", summary="Prometheus metrics", include_in_schema=False)
    async def metrics_endpoint() -> Response[bytes]:
        return Response(metrics.exposition(), media_type=CONTENT_TYPE)

    @post("/admin/reload", status_code=200, summary="Reload the bundle in every worker (bearer token)")
    async def admin_reload(request: Request[Any, Any, Any]) -> wire.ReloadOut:
        _authorize(request, settings.admin_token)
        report = await asyncio.to_thread(source.reload)  # compiling is not the event loop's work
        return wire.ReloadOut(report.ok, report.revision, [problem_out(p) for p in report.problems])

    app = Litestar(
        route_handlers=[
            decide_placements,
            render_batch,
            record_events,
            describe_bundle,
            healthz,
            healthz_head,
            readyz,
            readyz_head,
            metrics_endpoint,
            admin_reload,
            openapi_document,
            openapi_page,
            swagger_asset,
            *ofrep_routes,
            *preview.routes(settings, _authorize, decoded),
        ],
        on_startup=[lambda _: freeze_heap(), lambda _: source.start(), lambda _: _started()],
        on_shutdown=[stop],
        middleware=[functools.partial(_timed, metrics=metrics)],
        exception_handlers={Exception: problem_response},
        request_max_body_size=settings.max_render_body_bytes,  # each route reads its body with its own limit
        cors_config=_cors(settings.cors_origins),
        openapi_config=None,  # the document is service/http/openapi.py's, served above
        logging_config=None,  # logs.configure has set up every logger; Litestar's own would replace the root's
        debug=False,
    )
    lean = LeanDecide(settings, store, decisions, metrics, client_time, cors=app.cors_config)
    app.state[LEAN_STATE] = lean  # what the RSGI door (service/http/rsgi.py) answers POST /v1/decide with
    app.state[LEAN_RENDER_STATE] = LeanRender(settings, store, decisions, metrics, client_time, cors=app.cors_config)
    if lean_decide:  # in front of the router, behind what Litestar's __call__ sets up (lifespan, scope["app"])
        app.asgi_handler = in_front(app.asgi_handler, lean)
    return app


def _started() -> None:
    """Say which event loop the worker runs on: granian picks it (ADR 0014), and a worker that fell
    back to asyncio's own loop costs a third more CPU a request."""
    loop = asyncio.get_running_loop()
    log.info("worker %d serving on the %s event loop", os.getpid(), f"{type(loop).__module__}.{type(loop).__name__}")


@get("/healthz", summary="The process is alive")
async def healthz() -> wire.Health:
    return wire.Health("ok")


@head("/healthz", summary="As GET /healthz, without a body: load balancers that check with HEAD")
async def healthz_head() -> None:
    return None


def _client_time(settings: Settings, headers: Mapping[str, str]) -> bool:
    """May this request name the time of its decision? Previews and tests may (ADR 0008)."""
    return settings.allow_client_time or is_admin(headers, settings.admin_token)


def _api_document(settings: Settings, store: BundleStore) -> dict[str, Any]:
    """The OpenAPI document with the limits of these settings and the blocks of the bundle served."""
    if not store.ready:
        return openapi.document(settings, None)
    bundle = store.current.bundle
    return openapi.document(settings, [v for v in bundle.variants if bundle.blocks.has_block(v)])


def _authorize(request: Request[Any, Any, Any], token: str | None) -> None:
    """Admin endpoints exist only with a token, and compare it in constant time."""
    if not token:
        raise AdminDisabledError("admin endpoints are off: no TAILOR_ADMIN_TOKEN is set")
    if not is_admin(request.headers, token):
        raise UnauthorizedError("a valid bearer token is required")


def _recorder(settings: Settings) -> DecisionRecorder | None:
    return open_recorder(
        path=None if settings.decision_log == "off" else Path(settings.decision_log),
        url=settings.decision_log_url or None,
        key=settings.pseudonym_key.encode(),
        queue_size=settings.decision_log_queue,
        max_bytes=settings.decision_log_max_bytes,
        backups=settings.decision_log_backups,
        per_process=settings.workers > 1,
    )


def is_admin(headers: Mapping[str, str], token: str | None) -> bool:
    """Does the request carry the admin bearer token? (compared in constant time)"""
    scheme, _, given = headers.get("authorization", "").partition(" ")
    return bool(token) and scheme.lower() == "bearer" and hmac.compare_digest(given.encode(), str(token).encode())


def _cors(origins: str) -> CORSConfig | None:
    allowed = [origin.strip() for origin in origins.split(",") if origin.strip()]
    if not allowed:
        return None
    # OFREP's web provider sends If-None-Match and its key, and reads the ETag.
    headers = ["content-type", "authorization", "x-api-key", "if-none-match"]
    return CORSConfig(
        allow_origins=allowed, allow_methods=["GET", "POST"], allow_headers=headers, expose_headers=["etag"]
    )


def _timed(app: ASGIApp, metrics: Metrics) -> ASGIApp:
    """Time every HTTP request into the latency histogram, labelled by endpoint, method and status class."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        start = perf_counter()
        status = 500

        async def remember_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await app(scope, receive, remember_status)
        finally:
            path = scope["path"]
            endpoint = path if path in ENDPOINTS else "other"  # unknown paths must not grow the label set
            method = str(scope.get("method", "GET"))
            metrics.observe_request(endpoint, method, f"{status // 100}xx", perf_counter() - start)
            logs.decision_id.set(None)

    return middleware
