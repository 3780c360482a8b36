"""``POST /v1/decide`` as a bare handler in front of Litestar's router (ADR 0005, ADR 0011).

A page view is the request every visitor makes, so its path skips what it does not use:
routing, the per-request ``Request`` and dependency layers, signature validation, response
building and the middleware stack. What it keeps is what the routed handler does, from the same
parts: the headers and body checks and limits of body.py, the wire structs, service/serving.py's
decision (metrics, decision event, render cache header), the one problems table, the latency
histogram, and the CORS headers of the app's own ``CORSConfig``. Every other request, and every
other method on this path, goes to Litestar unchanged (405 with ``Allow``, CORS preflight).

It answers through either of granian's interfaces: ``__call__`` is an ASGI app (the ASGI door,
``in_front``), ``rsgi`` answers an RSGI request (the RSGI door, service/http/rsgi.py). Both
call ``answer``, so the two doors differ only in how bytes come in and go out.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator, Mapping
from time import perf_counter
from typing import Any, Protocol

import msgspec
from litestar.config.cors import CORSConfig
from litestar.enums import ScopeType
from litestar.types import ASGIApp, HTTPResponseBodyEvent, HTTPResponseStartEvent, Receive, Scope, Send

from service import logs
from service.bundle.store import BundleStore
from service.http import wire
from service.http.body import LARGE_BODY_BYTES, Headers, check_headers, decode, decode_off_the_loop, read_body
from service.http.bridge import CLOSED_ERRORS
from service.http.decisions import NDJSON, Decisions, in_turns
from service.http.fragments import Fragments
from service.http.problems import MEDIA_TYPE, problem
from service.serving import CACHE_HEADER
from service.settings import Settings
from service.telemetry.metrics import Metrics

PATH = "/v1/decide"
RENDER_PATH = "/v1/render"
JSON_TYPE = ("content-type", "application/json")
NDJSON_TYPE = ("content-type", NDJSON)
PROBLEM_TYPE = ("content-type", MEDIA_TYPE)
STATUS_CLASSES = {status: f"{status // 100}xx" for status in range(100, 600)}

log = logging.getLogger("tailor.http")

Header = tuple[str, str]
Extra = Mapping[str, str] | None  # a problem's own headers
# Reads the whole body: (limit, timeout_s, declared length) → bytes; body.py's errors on failure.
ReadBody = Callable[..., Awaitable[bytes]]


class _Lean:
    """What both lean handlers hold: the worker's settings, bundle, decisions, metrics and CORS."""

    path: str  # the route, for the latency histogram

    def __init__(
        self,
        settings: Settings,
        store: BundleStore,
        decisions: Decisions,
        metrics: Metrics,
        client_time: Callable[[Any], bool],  # of the request's Headers
        *,
        cors: CORSConfig | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.decisions = decisions
        self.metrics = metrics
        self.client_time = client_time
        self.cors = None if cors is None else Cors(cors)

    def _framing(self, request: Headers, kind: Header, body: bytes, extra: Extra) -> list[Header]:
        return framing(self.cors, request, [kind, ("content-length", str(len(body)))], extra)

    def _observe(self, status: int, start: float) -> None:
        """The end of a request, as the app's middleware ends it: its latency observed, its decision id let go."""
        self.metrics.observe_request(self.path, "POST", STATUS_CLASSES[status], perf_counter() - start)
        logs.decision_id.set(None)


class LeanDecide(_Lean):
    """Answers ``POST /v1/decide``: as an ASGI app (``__call__``) or an RSGI handler (``rsgi``)."""

    path = PATH
    encode = msgspec.json.Encoder().encode  # the loop's only: answers with explain or render

    @functools.cached_property
    def fragments(self) -> Fragments:
        """This handler's pieces of responses (service/http/fragments.py), made at its first plain answer."""
        return Fragments()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        start = perf_counter()
        status = 500
        try:
            status, headers, body = await self.answer(_headers(scope), functools.partial(read_body, receive))
            raw = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers]
            await send(HTTPResponseStartEvent(type="http.response.start", status=status, headers=raw))
            await send(HTTPResponseBodyEvent(type="http.response.body", body=body, more_body=False))
        finally:
            self._observe(status, start)

    async def rsgi(self, headers: Headers, read: ReadBody, respond: Callable[[int, list[Header], bytes], None]) -> None:
        """One RSGI request: ``read`` its body, ``respond`` with granian's ``response_bytes``."""
        start = perf_counter()
        status = 500
        try:
            status, response_headers, body = await self.answer(headers, read)
            respond(status, response_headers, body)
        finally:
            self._observe(status, start)

    async def answer(self, headers: Headers, read: ReadBody) -> tuple[int, list[Header], bytes]:
        """Status, headers and body for one request, errors included as their problem."""
        try:
            body, cache = await self._decide(headers, read)
        except Exception as exc:  # noqa: BLE001 - every error becomes its problem, as Litestar's handler does
            status, problem_body, extra = problem(exc)
            return status, self._framing(headers, PROBLEM_TYPE, problem_body, extra), problem_body
        return 200, self._framing(headers, JSON_TYPE, body, None if cache is None else {CACHE_HEADER: cache}), body

    async def _decide(self, headers: Headers, read: ReadBody) -> tuple[bytes, str | None]:
        check_headers(headers)
        settings = self.settings
        raw = await read(limit=settings.max_body_bytes, timeout_s=settings.body_timeout_s,
                         declared=headers.get("content-length"))  # fmt: skip
        # a page view's body is decoded here; one beyond LARGE_BODY_BYTES (a raised limit) beside the loop
        data = (
            decode(raw, wire.DecideRequest)
            if len(raw) <= LARGE_BODY_BYTES
            else await decode_off_the_loop(raw, wire.DecideRequest)
        )
        bundle = self.store.current.bundle  # one bundle for the whole request
        decided = self.decisions.decision(bundle, data, client_time=self.client_time(headers))
        if decided.rendered is None:
            fragments = self.fragments
            return fragments.encode(
                bundle, decided.decision, decided.decision_id, decided.token, decided.token_status
            ), None
        return self.encode(decided.response()), decided.cache


def framing(cors: Cors | None, request: Headers, headers: list[Header], extra: Extra) -> list[Header]:
    """A response's ``headers``, then the problem's ``extra`` ones, then the CORS ones, as Litestar orders them."""
    if extra:
        headers += extra.items()
    if cors is not None:
        origin = request.get("origin")
        if origin:
            headers += cors.headers(origin, has_cookie="cookie" in request)
    return headers


class Transport(Protocol):
    """granian's RSGI stream transport: ``send_bytes`` raises once the client has gone."""

    async def send_bytes(self, data: bytes) -> None: ...


class Responder(Protocol):
    """What the render route uses of granian's RSGI HTTP protocol."""

    def response_bytes(self, status: int, headers: list[Header], body: bytes) -> None: ...

    def response_stream(self, status: int, headers: list[Header]) -> Transport: ...


class LeanRender(_Lean):
    """Answers ``POST /v1/render`` through the RSGI door (ADR 0011), as the routed handler does.

    The same body limit and deadline, decoder, batch checks and problems come first; then the
    chunks the routed handler streams (service/http/decisions.py, rendered in turns on the loop) go to
    granian's stream transport as they are made, with no Litestar response, middleware or bridge
    between. The latency histogram and the CORS headers are the ones the app's middleware adds.
    """

    path = RENDER_PATH

    async def rsgi(self, headers: Headers, read: ReadBody, protocol: Responder) -> None:
        """One RSGI request: its problem in one piece, or its results streamed."""
        start = perf_counter()
        status = 500
        try:
            status = await self._answer(headers, read, protocol)
        finally:
            self._observe(status, start)

    async def _answer(self, headers: Headers, read: ReadBody, protocol: Responder) -> int:
        try:
            kind, chunks = await self._batch(headers, read)
        except Exception as exc:  # noqa: BLE001 - every error becomes its problem, as Litestar's handler does
            status, body, extra = problem(exc)
            protocol.response_bytes(status, self._framing(headers, PROBLEM_TYPE, body, extra), body)
            return status
        transport = protocol.response_stream(200, framing(self.cors, headers, [kind], None))
        try:
            await send_all(in_turns(chunks), transport)
        except Exception as exc:  # noqa: BLE001 - after the first byte: logged, and the stream ends short
            return problem(exc)[0]  # no summary line: the client knows the batch is incomplete
        return 200

    async def _batch(self, headers: Headers, read: ReadBody) -> tuple[Header, Iterator[bytes]]:
        check_headers(headers)
        settings = self.settings
        raw = await read(limit=settings.max_render_body_bytes, timeout_s=settings.body_timeout_s,
                         declared=headers.get("content-length"))  # fmt: skip
        data = await decode_off_the_loop(raw, wire.RenderRequest)
        bundle = self.store.current.bundle  # one bundle for the whole batch, whatever swaps meanwhile
        stream = NDJSON in headers.get("accept", "")
        chunks = await self.decisions.batch_chunks(bundle, data, stream=stream, client_time=self.client_time(headers))
        return (NDJSON_TYPE if stream else JSON_TYPE), chunks


async def send_all(chunks: AsyncGenerator[bytes, None], transport: Transport) -> None:
    """Each chunk to the client as it comes, until the last or until the client has gone."""
    async with contextlib.aclosing(chunks):  # stops the rendering when the client goes
        try:
            async for chunk in chunks:
                await transport.send_bytes(chunk)
        except CLOSED_ERRORS:
            log.info("request not completed: the client went during a render batch")


class Cors:
    """The CORS headers of a simple (not preflight) request, as Litestar's CORS middleware adds them.

    Preflights are ``OPTIONS`` requests, which the lean path never sees: Litestar answers them.
    ``tests/test_http_lean.py`` checks both paths give the same headers for allowed, refused and
    missing origins.
    """

    def __init__(self, config: CORSConfig) -> None:
        self.config = config
        self.always = [(name.lower(), value) for name, value in config.simple_headers.items()]
        self.tail = [
            ("access-control-allow-headers", ", ".join(sorted(set(config.allow_headers)))),
            ("access-control-allow-methods", ", ".join(sorted(set(config.allow_methods)))),
        ]

    def headers(self, origin: str, *, has_cookie: bool) -> list[Header]:
        config = self.config
        headers = list(self.always)
        if (config.is_allow_all_origins and has_cookie) or (
            not config.is_allow_all_origins and config.is_origin_allowed(origin=origin)
        ):
            headers = [h for h in headers if h[0] != "access-control-allow-origin"]
            headers += [("access-control-allow-origin", origin), ("vary", "Origin")]
        return headers + self.tail


def _headers(scope: Scope) -> dict[str, str]:
    """The request's headers by lower-case name; of repeated ones the first, as Litestar's ``get`` gives."""
    return {name.decode("latin-1"): value.decode("latin-1") for name, value in reversed(list(scope["headers"]))}


def in_front(routed: ASGIApp, lean: LeanDecide) -> ASGIApp:
    """An ASGI app that sends ``POST /v1/decide`` to ``lean`` and everything else to ``routed``."""

    async def front(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == ScopeType.HTTP and scope["method"] == "POST" and scope["path"] == PATH:
            await lean(scope, receive, send)
        else:
            await routed(scope, receive, send)

    return front
