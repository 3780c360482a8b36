"""Where a request's time goes inside the app, without sockets or granian: µs per request, in-process.

Run from the repository root::

    .venv/bin/python loadtests/profile_app.py [--requests 20000] [--profile [--rsgi]] [--flags20]

It calls the ASGI apps directly (one request after another on one event loop) and times:

* the ceiling app's GET /hello and POST /echo (loadtests/ceiling_app.py), and Tailor's GET /healthz;
* a ladder from Litestar to Tailor's POST /v1/decide, one step at a time, all on the page-view
  mix of loadtests/pageview_mix.py:

  1. Litestar with Tailor's request and response types, answering one fixed decision;
  2. plus Tailor's app settings and timing middleware (service/http/app.py);
  3. plus the decision id (uuid4) and the decision counters of every request;
  4. plus the real decision: ``to_core``, ``decide``, ``decision_response``;
  5. Tailor's own ``create_app`` (the lean path in front of the router);
  6. Tailor's RSGI door (service/http/rsgi.py), as ``tailor serve`` runs it by default;

* the decisions without any framework: ``to_core``, ``decide`` and ``decision_response`` on
  requests decoded beforehand.

Metrics are file-backed as under ``tailor serve`` (PROMETHEUS_MULTIPROC_DIR in a temporary
folder). With --profile it also prints cProfile's top functions for /v1/decide (through the ASGI
app, or with --rsgi through the RSGI door). The figures
are medians of 5 rounds, the cases taking turns within each round; compare them with each
other, not across runs.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import functools
import os
import pstats
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
from litestar import Litestar, post
from litestar.openapi import OpenAPIConfig
from litestar.params import JSONBody

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from loadtests.ceiling_app import create_app as ceiling_app
from loadtests.ceiling_app import echo_body
from loadtests.compare_http import tailor_bodies as flags20_visitors
from loadtests.pageview_mix import page_views
from service.bundle.store import BundleStore
from service.core.decide import decide
from service.http import wire
from service.http.app import _timed, create_app  # the middleware itself, for step 2 of the ladder
from service.http.mapping import decision_response, to_core
from service.http.problems import problem_response
from service.http.rsgi import Door
from service.settings import Settings
from service.telemetry.metrics import Metrics
from tests.bench.workload import FLAGS20

ROUNDS = 5
Request = tuple[str, str, bytes]  # method, path, body


async def call(app: Any, method: str, path: str, body: bytes) -> int:
    """One HTTP request through the ASGI app, as granian would deliver it; returns the status."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8080),
    }
    delivered = False
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if delivered:
            return {"type": "http.disconnect"}
        delivered = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


def through_app(app: Any, requests: list[Request]) -> Callable[[], Coroutine[Any, Any, None]]:
    async def run_all() -> None:
        for method, path, body in requests:
            status = await call(app, method, path, body)
            if status != 200:
                raise RuntimeError(f"{method} {path} answered {status}")

    return run_all


class _Protocol:
    """The part of granian's RSGI protocol the door uses for ``POST /v1/decide``: the body, one answer."""

    __slots__ = ("body", "status")

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.status = 0

    async def __call__(self) -> bytes:
        return self.body

    def response_bytes(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.status = status


class _Scope:
    proto = "http"
    method = "POST"
    path = "/v1/decide"

    def __init__(self, body: bytes) -> None:
        self.headers = {"host": "127.0.0.1", "content-type": "application/json", "content-length": str(len(body))}


def through_door(door: Door, requests: list[Request]) -> Callable[[], Coroutine[Any, Any, None]]:
    """The requests through the RSGI door, as granian's RSGI interface would hand them over."""
    prepared = [(_Scope(body), body) for _, _, body in requests]

    async def run_all() -> None:
        for scope, body in prepared:
            protocol = _Protocol(body)
            await door.__rsgi__(scope, protocol)  # type: ignore[arg-type]
            if protocol.status != 200:
                raise RuntimeError(f"the RSGI door answered {protocol.status}")

    return run_all


Case = tuple[str, Callable[[], Coroutine[Any, Any, None]]]


def time_per_request(cases: list[Case], count: int) -> dict[str, float]:
    """Median over ROUNDS of µs per request; every round runs every case in turn, so that a noisy
    neighbour slows them alike."""
    rounds: dict[str, list[float]] = {name: [] for name, _ in cases}
    for _ in range(ROUNDS):
        for name, run_all in cases:
            start = time.perf_counter()
            asyncio.run(run_all())
            rounds[name].append((time.perf_counter() - start) / count * 1e6)
    return {name: statistics.median(times) for name, times in rounds.items()}


Handler = Callable[[wire.DecideRequest], wire.DecideResponse]


def litestar_with(handler: Handler, *, metrics: Metrics | None = None) -> Litestar:
    """POST /v1/decide with Tailor's types around ``handler``; with ``metrics``, also with Tailor's
    app settings and timing middleware, as ``create_app`` configures them."""

    @post("/v1/decide", status_code=200)
    async def decide_route(data: JSONBody[wire.DecideRequest]) -> wire.DecideResponse:
        return handler(data)

    if metrics is None:
        return Litestar(route_handlers=[decide_route], debug=False)
    return Litestar(
        route_handlers=[decide_route],
        middleware=[functools.partial(_timed, metrics=metrics)],
        exception_handlers={Exception: problem_response},
        request_max_body_size=Settings().max_body_bytes,
        openapi_config=OpenAPIConfig(title="Tailor decision API", version="1.0.0"),
        debug=False,
    )


def ladder(store: BundleStore, settings: Settings, bodies: list[bytes]) -> list[tuple[str, Litestar]]:
    """Steps 1 to 4 (see the module's docstring)."""
    metrics = Metrics()
    fixed = typical_response(store, settings, bodies)
    counted = [("home_hero", "hero_default", "default"), ("promo_banner", "banner_newsletter", "default")]

    def fixed_answer(data: wire.DecideRequest) -> wire.DecideResponse:
        return fixed

    def with_bookkeeping(data: wire.DecideRequest) -> wire.DecideResponse:
        metrics.count_decisions(counted)
        return msgspec.structs.replace(fixed, decision_id=uuid.uuid4().hex)

    def real(data: wire.DecideRequest) -> wire.DecideResponse:
        bundle = store.current.bundle
        decision = decide(bundle, to_core(data, settings, _now, client_time=False))
        metrics.count_decisions([(name, p.variant or "none", p.reason) for name, p in decision.placements.items()])
        return decision_response(bundle, decision, uuid.uuid4().hex)

    return [
        ("1. Litestar + Tailor's types, fixed answer", litestar_with(fixed_answer)),
        ("2. + Tailor's app settings and timing middleware", litestar_with(fixed_answer, metrics=metrics)),
        ("3. + decision id and decision counters", litestar_with(with_bookkeeping, metrics=metrics)),
        ("4. + the real decision", litestar_with(real, metrics=metrics)),
    ]


def _now() -> datetime:
    return datetime.now(UTC)


def typical_response(store: BundleStore, settings: Settings, bodies: list[bytes]) -> wire.DecideResponse:
    """The decision of the first page view that asks for two placements or more (none named: all of them)
    with consent: a full-size answer."""
    bundle = store.current.bundle
    for body in bodies:
        request = msgspec.json.decode(body, type=wire.DecideRequest)
        if len(request.placements or bundle.placements) >= 2 and request.visitor.consent.personalization:
            return decision_response(
                bundle, decide(bundle, to_core(request, settings, _now, client_time=False)), "0" * 32
            )
    raise SystemExit("no page view asks for two placements")


def decisions_only(store: BundleStore, settings: Settings, mix: list[bytes]) -> Case:
    """Tailor's decisions without any framework, on requests decoded beforehand."""
    decoded = [msgspec.json.decode(body, type=wire.DecideRequest) for body in mix]

    async def run_all() -> None:
        for request in decoded:
            bundle = store.current.bundle
            decision_response(bundle, decide(bundle, to_core(request, settings, _now, client_time=False)), "0" * 32)

    return ("to_core + decide + decision_response, no framework", run_all)


def example_bodies() -> list[bytes]:
    return [msgspec.json.encode(v.body) for v in page_views(1000, 2026, datetime.now(UTC))]


def flags20_bodies() -> list[bytes]:
    """The 1,000 visitors loadtests/compare_http.py sends to Tailor on flags20."""
    return [msgspec.json.encode(body) for body in flags20_visitors()]


def main() -> int:
    parser = argparse.ArgumentParser(description="µs per request inside the app, in-process")
    parser.add_argument("--requests", type=int, default=20000, help="requests per round (default 20000)")
    parser.add_argument("--profile", action="store_true", help="print cProfile's top functions for /v1/decide")
    parser.add_argument("--rsgi", action="store_true", help="profile the RSGI door instead of the ASGI app")
    parser.add_argument("--flags20", action="store_true", help="serve tests/bench/flags20 instead of the example")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="tailor-profile-") as metrics_dir:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir  # file-backed metrics, read when Metrics() is made
        root = FLAGS20 if args.flags20 else Path(__file__).resolve().parents[1]
        settings = Settings(bundle=root, reload_interval=0, log_level="WARNING")
        store = BundleStore()
        if not store.load(root).ok:
            raise SystemExit("the example bundle does not load")
        tailor = create_app(settings, store)
        door = Door(tailor)
        ceiling = ceiling_app()
        n = args.requests
        bodies = flags20_bodies() if args.flags20 else example_bodies()
        mix = [("POST", "/v1/decide", bodies[i % len(bodies)]) for i in range(n)]

        cases: list[Case] = [
            ("ceiling GET /hello", through_app(ceiling, [("GET", "/hello", b"")] * n)),
            ("ceiling POST /echo (1 KB)", through_app(ceiling, [("POST", "/echo", echo_body())] * n)),
            ("Tailor GET /healthz", through_app(tailor, [("GET", "/healthz", b"")] * n)),
            *((name, through_app(app, mix)) for name, app in ladder(store, settings, bodies)),
            ("5. Tailor's create_app, POST /v1/decide", through_app(tailor, mix)),
            ("6. Tailor's RSGI door, POST /v1/decide", through_door(door, mix)),
            decisions_only(store, settings, [body for _, _, body in mix]),
        ]
        print(f"| In-process, {n} requests a round, median of {ROUNDS} rounds | µs/request |")
        print("|---|---:|")
        for name, micros in time_per_request(cases, n).items():
            print(f"| {name} | {micros:.1f} |")

        if args.profile:
            profiler = cProfile.Profile()
            profiler.enable()
            asyncio.run((through_door(door, mix) if args.rsgi else through_app(tailor, mix))())
            profiler.disable()
            pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
    return 0


if __name__ == "__main__":
    sys.exit(main())
