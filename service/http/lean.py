"""``POST /v1/decide`` as a bare ASGI handler in front of Litestar's router (ADR 0005).

A page view is the request every visitor makes, so its path skips what it does not use:
routing, the per-request ``Request`` and dependency layers, signature validation and response
building. What it keeps is what the routed handler does, from the same parts: the headers and
body checks and limits of body.py, the wire structs, service/serving.py's decision (metrics,
decision event, render cache header), the one problems table, the latency histogram, and CORS
through Litestar's own middleware. Every other request, and every other method on this path,
goes to Litestar unchanged (405 with ``Allow``, CORS preflight).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from time import perf_counter
from typing import Any

import msgspec
from litestar.config.cors import CORSConfig
from litestar.enums import ScopeType
from litestar.middleware._internal.cors import CORSMiddleware  # the app's own CORS rules (litestar pinned)
from litestar.types import ASGIApp, HTTPResponseBodyEvent, HTTPResponseStartEvent, Receive, Scope, Send

from service import logs
from service.bundle.store import BundleStore
from service.http import wire
from service.http.body import check_headers, decode_off_the_loop, read_body
from service.http.fragments import Fragments
from service.http.problems import MEDIA_TYPE, problem
from service.serving import CACHE_HEADER, Serving
from service.settings import Settings
from service.telemetry.metrics import Metrics

PATH = "/v1/decide"
JSON_TYPE = [(b"content-type", b"application/json")]
PROBLEM_TYPE = [(b"content-type", MEDIA_TYPE.encode())]


class LeanDecide:
    """The ASGI callable that answers ``POST /v1/decide``."""

    def __init__(
        self,
        settings: Settings,
        store: BundleStore,
        serving: Serving,
        metrics: Metrics,
        client_time: Callable[[Mapping[str, str]], bool],
    ) -> None:
        self.settings = settings
        self.store = store
        self.serving = serving
        self.metrics = metrics
        self.client_time = client_time
        self.encode = msgspec.json.Encoder().encode
        self.fragments = Fragments()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        start = perf_counter()
        status = 500
        try:
            status, headers, body = await self._answer(scope, receive)
            await send(HTTPResponseStartEvent(type="http.response.start", status=status, headers=headers))
            await send(HTTPResponseBodyEvent(type="http.response.body", body=body, more_body=False))
        finally:
            self.metrics.observe_request(PATH, "POST", f"{status // 100}xx", perf_counter() - start)
            logs.decision_id.set(None)

    async def _answer(self, scope: Scope, receive: Receive) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        headers = _headers(scope)
        try:
            body, cache = await self._decide(headers, receive)
        except Exception as exc:  # noqa: BLE001 - every error becomes its problem, as Litestar's handler does
            status, problem_body, extra = problem(exc)
            return status, _framing(PROBLEM_TYPE, problem_body, extra), problem_body
        extra = {} if cache is None else {CACHE_HEADER: cache}
        return 200, _framing(JSON_TYPE, body, extra), body

    async def _decide(self, headers: Mapping[str, str], receive: Receive) -> tuple[bytes, str | None]:
        check_headers(headers)
        settings = self.settings
        raw = await read_body(
            receive, limit=settings.max_body_bytes, timeout_s=settings.body_timeout_s,
            declared=headers.get("content-length"),
        )  # fmt: skip
        data = await decode_off_the_loop(raw, wire.DecideRequest)
        bundle = self.store.current.bundle  # one bundle for the whole request
        decided = self.serving.decision(bundle, data, client_time=self.client_time(headers))
        if decided.rendered is None:
            fragments = self.fragments
            return fragments.encode(
                bundle, decided.decision, decided.decision_id, decided.token, decided.token_status
            ), None
        return self.encode(decided.response()), decided.cache


def _headers(scope: Scope) -> dict[str, str]:
    """The request's headers by lower-case name; of repeated ones the first, as Litestar's ``get`` gives."""
    return {name.decode("latin-1"): value.decode("latin-1") for name, value in reversed(list(scope["headers"]))}


def _framing(kind: list[tuple[bytes, bytes]], body: bytes, extra: Mapping[str, str]) -> list[tuple[bytes, bytes]]:
    headers = [*kind, (b"content-length", str(len(body)).encode())]
    headers += [(name.encode("latin-1"), value.encode("latin-1")) for name, value in extra.items()]
    return headers


def in_front(routed: ASGIApp, lean: LeanDecide, cors: CORSConfig | None) -> ASGIApp:
    """An ASGI app that sends ``POST /v1/decide`` to ``lean`` and everything else to ``routed``.

    CORS headers come from Litestar's own middleware, configured as the app's, so that both
    paths add the same ones (preflights are OPTIONS requests, which go to the router).
    """
    answer: Any = lean if cors is None else CORSMiddleware(app=lean, config=cors)

    async def front(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == ScopeType.HTTP and scope["method"] == "POST" and scope["path"] == PATH:
            await answer(scope, receive, send)
        else:
            await routed(scope, receive, send)

    return front
