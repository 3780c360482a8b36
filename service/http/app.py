"""The app factory: thin routes that decode, call the core and encode.

``create_app()`` with no arguments reads Settings from the environment; that is
how ``tailor serve`` starts it in every granian worker (each worker loads and
compiles the bundle once, at start-up).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from litestar import Litestar, Response, get, post
from litestar.openapi import OpenAPIConfig
from litestar.params import JSONBody

from service.bundle.store import BundleStore
from service.core.decide import decide
from service.http import wire
from service.http.mapping import bundle_info, decision_response, to_core
from service.http.problems import problem_response
from service.settings import Settings

log = logging.getLogger("tailor.http")

API_VERSION = "1.0.0"


def create_app(
    settings: Settings | None = None,
    store: BundleStore | None = None,
    clock: Callable[[], datetime] | None = None,
) -> Litestar:
    """Build the ASGI app. Tests pass their own store or clock; the server passes nothing."""
    settings = settings or Settings.from_env()
    store = store or BundleStore()
    now = clock or (lambda: datetime.now(UTC))
    logging.getLogger("tailor").setLevel(settings.log_level)

    def load_bundle_once(_: Litestar) -> None:
        if store.ready:
            return
        report = store.load(settings.bundle)
        if report.ok:
            log.info("bundle %s loaded from %s", report.revision, settings.bundle)
            return
        for problem in report.problems:
            log.error("bundle problem: %s", problem.render())

    @post("/v1/decide", status_code=200, summary="Decide the variants of placements for one visitor")
    async def decide_placements(data: JSONBody[wire.DecideRequest]) -> wire.DecideResponse:
        bundle = store.current.bundle  # one bundle for the whole request, whatever swaps meanwhile
        decision = decide(bundle, to_core(data, settings, now))
        return decision_response(bundle, decision, uuid.uuid4().hex)

    @get("/v1/bundle", summary="The bundle being served: revision, placements, segments, experiments")
    async def describe_bundle() -> wire.BundleInfo:
        return bundle_info(store.current, store.last_problems)

    @get("/healthz", summary="The process is alive")
    async def healthz() -> wire.Health:
        return wire.Health("ok")

    @get("/readyz", summary="A bundle is loaded and decisions can be made")
    async def readyz() -> Response[wire.Health]:
        if not store.ready:
            return Response(wire.Health("not_ready"), status_code=503)
        return Response(wire.Health("ready", store.current.bundle.revision))

    return Litestar(
        route_handlers=[decide_placements, describe_bundle, healthz, readyz],
        on_startup=[load_bundle_once],
        exception_handlers={Exception: problem_response},
        request_max_body_size=settings.max_body_bytes,
        openapi_config=OpenAPIConfig(title="Tailor decision API", version=API_VERSION),
        debug=False,
    )
