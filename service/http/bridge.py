"""An ASGI app served through granian's RSGI interface: every route but the hot ones (ADR 0011).

granian runs one interface per process. The RSGI door answers ``POST /v1/decide`` itself and
hands every other request to the Litestar app through this bridge, which plays the part granian's
ASGI layer plays under ``--interface asgi``:

* the scope: an ASGI 3 ``http`` scope built from the RSGI one (granian's RSGI path is already
  percent-decoded, as ASGI's ``path`` is; ``raw_path`` is it encoded again);
* ``receive``: the body, then ``http.disconnect`` once the client has gone. A body of declared
  length is read in one piece (hyper stops at that length and reports a body cut short, which
  becomes ``http.disconnect``, as under granian's ASGI); a chunked one chunk by chunk, so that
  the routes' size limits stop it early;
* ``send``: a response of one body message becomes ``response_bytes``; one of several, a stream
  (``response_stream``) that ends when its last message is sent. Sending to a client that has
  gone does nothing, as under granian's ASGI, and the next ``receive`` says it has gone;
* lifespan: ``startup`` and ``shutdown`` run the app's ``lifespan`` protocol, which granian
  calls through ``__rsgi_init__`` and ``__rsgi_del__``; a failed start-up stops the worker.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol
from urllib.parse import quote

from granian._granian import RSGIProtocolClosed, RSGIProtocolError

from service.core.errors import TailorError

log = logging.getLogger("tailor.http")

ASGI = {"version": "3.0", "spec_version": "2.3"}
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[dict[str, Any], Receive, Send], Awaitable[None]]
DISCONNECT: Message = {"type": "http.disconnect"}
CLOSED_ERRORS = (RSGIProtocolClosed, RSGIProtocolError)  # a body cut short, a transport whose client has gone


class RSGIScope(Protocol):
    """What the bridge reads of granian's RSGI scope (granian.rsgi.Scope)."""

    proto: str
    http_version: str
    scheme: str
    method: str
    path: str
    query_string: str
    server: str
    client: str

    @property
    def headers(self) -> Any: ...  # granian's RSGIHeaders: items(), get(), in


class Transport(Protocol):
    async def send_bytes(self, data: bytes) -> None: ...


class RSGIProtocol(Protocol):
    """What the bridge uses of granian's RSGI HTTP protocol (granian.rsgi.HTTPProtocol)."""

    def __call__(self) -> Awaitable[bytes]: ...

    def __aiter__(self) -> Any: ...

    def client_disconnect(self) -> Awaitable[None]: ...

    def response_bytes(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None: ...

    def response_stream(self, status: int, headers: list[tuple[str, str]]) -> Transport: ...


def http_scope(scope: RSGIScope, state: dict[str, Any]) -> dict[str, Any]:
    """The ASGI scope of an RSGI HTTP request."""
    headers = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in scope.headers.items()]
    return {
        "type": "http",
        "asgi": ASGI,
        "http_version": scope.http_version,
        "method": scope.method,
        "scheme": scope.scheme,
        "path": scope.path,
        "raw_path": quote(scope.path).encode("ascii"),
        "query_string": scope.query_string.encode("latin-1"),
        "root_path": "",
        "headers": headers,
        "client": _address(scope.client),
        "server": _address(scope.server),
        "state": dict(state),  # a copy per request, as ASGI asks of lifespan state
    }


def _address(text: str) -> tuple[str, int] | None:
    host, _, port = text.rpartition(":")
    return (host.strip("[]"), int(port)) if port.isdigit() else None


class BrokenFramingError(TailorError):
    """granian's sign of a chunked body whose framing broke: read as the client leaving mid-body."""


class Exchange:
    """One request's ``receive`` and ``send`` over its RSGI protocol."""

    def __init__(self, protocol: RSGIProtocol, scope: RSGIScope) -> None:
        self.protocol = protocol
        headers = scope.headers
        # hyper enforces a declared length (and refuses a request with a length and chunks).
        self.whole = "content-length" in headers and "transfer-encoding" not in headers
        self.chunks: Any = None
        self.body_done = False
        self.gone = False
        self.status = 0
        self.headers: list[tuple[str, str]] = []
        self.stream: Transport | None = None
        self.finished = False
        self.answered: asyncio.Event | None = None  # made when someone waits for the end of the response

    async def receive(self) -> Message:
        if self.gone:
            return DISCONNECT
        if self.body_done:
            await self._until_gone_or_answered()
            return DISCONNECT
        try:
            body, more = await (self._whole() if self.whole else self._chunk())
        except (*CLOSED_ERRORS, BrokenFramingError):  # the body was cut short: the client broke the framing or left
            self.gone = self.body_done = True
            return DISCONNECT
        self.body_done = not more
        return {"type": "http.request", "body": body, "more_body": more}

    async def _until_gone_or_answered(self) -> None:
        """Once the body is read, the next message is the disconnect: when the client goes, or
        when the response is complete (as granian's ASGI says it; Litestar's streamed responses
        wait for it)."""
        if self.finished:
            return
        if self.answered is None:
            self.answered = asyncio.Event()
        answered = asyncio.ensure_future(self.answered.wait())
        gone = asyncio.ensure_future(self.protocol.client_disconnect())
        try:
            await asyncio.wait((answered, gone), return_when=asyncio.FIRST_COMPLETED)
        finally:
            answered.cancel()
            gone.cancel()
        self.gone = self.gone or (gone.done() and not gone.cancelled())

    async def _whole(self) -> tuple[bytes, bool]:
        return await self.protocol(), False

    async def _chunk(self) -> tuple[bytes, bool]:
        if self.chunks is None:
            self.chunks = self.protocol.__aiter__()
        try:
            chunk: bytes = await self.chunks.__anext__()
        except StopAsyncIteration:
            return b"", False
        if chunk:
            return chunk, True
        # granian ends a body with an empty chunk, and the stream then stops. After a framing that
        # broke (a bad size, data longer than said, a cut), or trailers, one more empty chunk
        # comes: the only sign of the error, and what arrived must not be taken for the body.
        try:
            await self.chunks.__anext__()
        except StopAsyncIteration:
            return b"", False
        raise BrokenFramingError

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            self.status = message["status"]
            self.headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in message.get("headers", ())]
        elif kind == "http.response.body" and not self.finished:
            await self._body(message.get("body", b""), bool(message.get("more_body", False)))

    async def _body(self, body: bytes, more: bool) -> None:
        if self.stream is None and not more:
            self._finish()
            self.protocol.response_bytes(self.status, self.headers, body)
            return
        if self.stream is None:
            self.stream = self.protocol.response_stream(self.status, self.headers)
        if body and not self.gone:
            try:
                await self.stream.send_bytes(body)
            except CLOSED_ERRORS:  # the client has gone; the app hears it on its next receive
                self.gone = True
        if not more:  # granian ends the response when the transport is let go
            self._finish()
            self.stream = None

    def _finish(self) -> None:
        self.finished = True
        if self.answered is not None:
            self.answered.set()


class Bridge:
    """The ASGI ``app`` as an RSGI handler, with its lifespan run on granian's event loop."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.state: dict[str, Any] = {}
        self._lifespan: Lifespan | None = None

    async def __call__(self, scope: RSGIScope, protocol: RSGIProtocol) -> None:
        exchange = Exchange(protocol, scope)
        await self.app(http_scope(scope, self.state), exchange.receive, exchange.send)
        if not exchange.finished and exchange.stream is None and exchange.status:
            protocol.response_bytes(exchange.status, exchange.headers, b"")  # started, never given a body

    async def startup(self) -> None:
        """Run the app's start-up; raise if it fails (granian then stops the worker)."""
        self._lifespan = Lifespan(self.app, self.state)
        await self._lifespan.startup()

    async def shutdown(self) -> None:
        if self._lifespan is not None:
            await self._lifespan.shutdown()
            self._lifespan = None

    def rsgi_init(self, loop: asyncio.AbstractEventLoop) -> None:
        """granian's ``__rsgi_init__``: called before the worker serves, its loop not yet running."""
        loop.run_until_complete(self.startup())

    def rsgi_del(self, loop: asyncio.AbstractEventLoop) -> None:
        """granian's ``__rsgi_del__``: called once the worker has stopped serving."""
        loop.run_until_complete(self.shutdown())


class LifespanError(TailorError):
    """The app's lifespan start-up or shutdown failed (its message says why)."""


class Lifespan:
    """The ASGI lifespan protocol, driven from outside: ``startup``, later ``shutdown``."""

    def __init__(self, app: ASGIApp, state: dict[str, Any]) -> None:
        self.app = app
        self.state = state
        self.inbox: asyncio.Queue[Message] = asyncio.Queue()
        self.outbox: asyncio.Queue[Message] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None

    async def startup(self) -> None:
        scope = {"type": "lifespan", "asgi": ASGI, "state": self.state}
        self.task = asyncio.get_running_loop().create_task(self._run(scope))
        await self._step("lifespan.startup")

    async def shutdown(self) -> None:
        if self.task is None or self.task.done():
            return
        await self._step("lifespan.shutdown")
        await self.task

    async def _run(self, scope: dict[str, Any]) -> None:
        try:
            await self.app(scope, self.inbox.get, self.outbox.put)
        except Exception as exc:  # noqa: BLE001 - reported to whoever waits for the step
            await self.outbox.put({"type": "lifespan.error", "message": repr(exc)})

    async def _step(self, kind: str) -> None:
        await self.inbox.put({"type": kind})
        answer = await self.outbox.get()
        if answer["type"] != f"{kind}.complete":
            raise LifespanError(f"{kind} failed: {answer.get('message', answer['type'])}")
