"""granian's RSGI scope and HTTP protocol, in-process, for tests of the RSGI door and its bridge.

It behaves as granian 2.8 does where the door depends on it: headers by lower-case name (``get``
gives the first of repeated ones, ``items`` all of them), the whole body from ``__call__`` (or
``RSGIProtocolClosed`` when it was cut short), chunks from ``async for`` ending with an empty one,
``client_disconnect`` resolving once the client has gone, a response sent by ``response_bytes`` or
streamed through ``response_stream``'s transport, whose ``send_bytes`` raises once the client has gone.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any

from granian._granian import RSGIProtocolClosed


class Headers:
    def __init__(self, pairs: Iterable[tuple[str, str]]) -> None:
        self.pairs = [(name.lower(), value) for name, value in pairs]

    def get(self, key: str, default: Any = None) -> Any:
        return next((value for name, value in self.pairs if name == key), default)

    def items(self) -> list[tuple[str, str]]:
        return list(self.pairs)

    def __contains__(self, key: object) -> bool:
        return any(name == key for name, _ in self.pairs)


@dataclass
class Scope:
    method: str
    path: str
    headers: Headers
    query_string: str = ""
    proto: str = "http"
    http_version: str = "1.1"
    scheme: str = "http"
    server: str = "127.0.0.1:8080"
    client: str = "127.0.0.1:50000"


@dataclass
class Transport:
    protocol: Protocol

    async def send_bytes(self, data: bytes) -> None:
        if self.protocol.gone.is_set():
            raise RSGIProtocolClosed("RSGI transport is closed")
        self.protocol.sent.append(data)


@dataclass
class Protocol:
    chunks: list[bytes] = field(default_factory=list)
    cut_short: bool = False  # the body ends before its declared length
    framing_broken: bool = False  # a chunked body whose framing broke: granian 2.8 yields a second empty chunk
    status: int | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)
    sent: list[bytes] = field(default_factory=list)
    streamed: bool = False
    gone: asyncio.Event = field(default_factory=asyncio.Event)

    async def __call__(self) -> bytes:
        await asyncio.sleep(0)
        if self.cut_short:
            raise RSGIProtocolClosed("RSGI transport is closed")
        return b"".join(self.chunks)

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            await asyncio.sleep(0)
            yield chunk
        yield b""
        if self.framing_broken:
            yield b""

    async def client_disconnect(self) -> None:
        await self.gone.wait()

    def response_bytes(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        assert self.status is None, "answered twice"
        self.status, self.headers, self.sent = status, headers, [body]

    def response_stream(self, status: int, headers: list[tuple[str, str]]) -> Transport:
        assert self.status is None, "answered twice"
        self.status, self.headers, self.streamed = status, headers, True
        return Transport(self)

    @property
    def body(self) -> bytes:
        return b"".join(self.sent)


def request(
    method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None, *, chunked: bool = False
) -> tuple[Scope, Protocol]:
    """A request as granian hands it over: with its length declared, or chunked."""
    pairs = list((headers or {}).items())
    pairs.append(("transfer-encoding", "chunked") if chunked else ("content-length", str(len(body))))
    path, _, query = path.partition("?")
    chunks = [body[i : i + 7] for i in range(0, len(body), 7)] if chunked else [body]
    return Scope(method, path, Headers(pairs), query), Protocol(chunks)


class Worker:
    """One event loop, run as granian runs a worker's: ``__rsgi_init__``, requests, ``__rsgi_del__``."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()

    def __enter__(self) -> Worker:
        self.app.__rsgi_init__(self.loop)
        return self

    def __exit__(self, *_: object) -> None:
        self.app.__rsgi_del__(self.loop)
        self.loop.close()

    def run(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        return self.loop.run_until_complete(coroutine)

    def answer(self, scope: Scope, protocol: Protocol) -> Protocol:
        self.run(self.app.__rsgi__(scope, protocol))
        return protocol
