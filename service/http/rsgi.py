"""The RSGI door: ``tailor serve``'s default interface (ADR 0011).

granian's RSGI interface hands a request to Python with less work than its ASGI layer (no
message dicts, one call to answer), which is most of what a page view costs outside its decision.
So ``POST /v1/decide`` and ``POST /v1/render`` are answered here, by the lean handlers
(service/http/lean.py), and every other request goes to the Litestar app through the bridge
(service/http/bridge.py), with the app's lifespan run at the worker's start and stop.
``TAILOR_INTERFACE=asgi`` serves the same app through granian's ASGI interface instead.
"""

from __future__ import annotations

import asyncio
from typing import Any

from service.http.app import LEAN_RENDER_STATE, LEAN_STATE, create_app
from service.http.body import BodyTooLargeError, ClientGoneError, check_declared, within
from service.http.bridge import CLOSED_ERRORS, Bridge, RSGIProtocol, RSGIScope
from service.http.lean import PATH, RENDER_PATH, LeanDecide, LeanRender

LEAN_PATHS = frozenset({PATH, RENDER_PATH})


class Door:
    """The RSGI app of one worker: lean handlers for ``POST /v1/decide`` and ``/v1/render``, Litestar for the rest."""

    def __init__(self, app: Any) -> None:  # the app of create_app(), which keeps its lean handlers in its state
        self.bridge = Bridge(app)
        self.lean: LeanDecide = app.state[LEAN_STATE]
        self.render: LeanRender = app.state[LEAN_RENDER_STATE]

    async def __rsgi__(self, scope: RSGIScope, protocol: RSGIProtocol) -> None:
        if scope.method == "POST" and scope.proto == "http" and (path := scope.path) in LEAN_PATHS:
            headers = scope.headers
            if path == PATH:
                await self.lean.rsgi(headers, _Body(protocol, headers).read, protocol.response_bytes)
            else:
                await self.render.rsgi(headers, _Body(protocol, headers).read, protocol)
        elif scope.proto == "http":
            await self.bridge(scope, protocol)
        # no websockets: tailor serve runs granian with them off

    def __rsgi_init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.bridge.rsgi_init(loop)

    def __rsgi_del__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.bridge.rsgi_del(loop)


class _Body:
    """A request body read from granian's RSGI protocol, with body.py's limit, deadline and errors."""

    __slots__ = ("headers", "protocol")

    def __init__(self, protocol: RSGIProtocol, headers: Any) -> None:
        self.protocol = protocol
        self.headers = headers

    async def read(self, *, limit: int, timeout_s: float, declared: str | None) -> bytes:
        check_declared(declared, limit)
        try:
            if declared is not None and "transfer-encoding" not in self.headers:
                return await within(timeout_s, self.protocol())  # hyper stops at the declared length
            return await within(timeout_s, self._chunks(limit))
        except CLOSED_ERRORS:
            raise ClientGoneError("the connection closed before the body was complete") from None

    async def _chunks(self, limit: int) -> bytes:
        chunks: list[bytes] = []
        size = ends = 0
        async for chunk in self.protocol:
            size += len(chunk)
            if size > limit:
                raise BodyTooLargeError(f"the body is larger than {limit} bytes")
            chunks.append(chunk)
            ends += not chunk
        if ends > 1:  # granian ends a body with one empty chunk, a broken framing with two (bridge.py)
            raise ClientGoneError("the chunked framing broke before the body was complete")
        return b"".join(chunks)


def create_door() -> Door:
    """The factory granian calls in every worker (``tailor serve``, service/cli.py)."""
    return Door(create_app())
