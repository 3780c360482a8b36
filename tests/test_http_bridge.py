"""The RSGI-to-ASGI bridge: scope, body, disconnects, streamed responses and lifespan, on granian's RSGI objects."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest
from litestar import Litestar, Request, get, post
from litestar.response import Stream

from service.http.bridge import ASGIApp, Bridge, LifespanError, Message
from tests import rsgi_fake


class Recorder:
    """An ASGI app that records its scope and what ``receive`` gave, then answers as told."""

    def __init__(self, answer: list[Message] | None = None, reads: int = 1) -> None:
        self.scope: dict[str, Any] = {}
        self.received: list[Message] = []
        self.answer = answer if answer is not None else [
            {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]},
            {"type": "http.response.body", "body": b"ok"},
        ]  # fmt: skip
        self.reads = reads

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.scope = scope
        for _ in range(self.reads):
            self.received.append(await receive())
        for message in self.answer:
            await send(message)


def _asgi(app: Litestar) -> ASGIApp:
    """Litestar as the bridge's plain-dict ASGI app: its own signature takes TypedDict scopes and events,
    the same dicts at run time, that mypy cannot match with ``dict[str, Any]``."""
    return cast(ASGIApp, app)


def _run(app: Any, scope: rsgi_fake.Scope, protocol: rsgi_fake.Protocol) -> rsgi_fake.Protocol:
    asyncio.run(Bridge(app)(scope, protocol))
    return protocol


@pytest.mark.parametrize(
    ("path", "query", "raw_path"),
    [("/v1/bundle", "", b"/v1/bundle"), ("/a b/é", "x=1&y=%20", b"/a%20b/%C3%A9"), ("/", "q", b"/")],
)
def test_the_scope_is_the_asgi_scope_of_the_request(path: str, query: str, raw_path: bytes) -> None:
    app = Recorder()
    scope, protocol = rsgi_fake.request("GET", f"{path}?{query}", headers={"Accept": "a", "X-Two": "1"})
    scope.headers.pairs.append(("x-two", "2"))
    _run(app, scope, protocol)
    seen = app.scope
    assert (seen["type"], seen["method"], seen["path"], seen["raw_path"]) == ("http", "GET", path, raw_path)
    assert (seen["query_string"], seen["root_path"], seen["scheme"], seen["http_version"]) == (
        query.encode(),
        "",
        "http",
        "1.1",
    )
    assert seen["headers"] == [(b"accept", b"a"), (b"x-two", b"1"), (b"content-length", b"0"), (b"x-two", b"2")]
    assert (seen["client"], seen["server"]) == (("127.0.0.1", 50000), ("127.0.0.1", 8080))
    assert seen["asgi"]["version"] == "3.0"


@pytest.mark.parametrize("chunked", [False, True])
@pytest.mark.parametrize("body", [b"", b"{}", b'{"visitor": {"id": "' + b"x" * 100 + b'"}}'])
def test_receive_gives_the_whole_body_then_no_more(body: bytes, chunked: bool) -> None:
    scope, protocol = rsgi_fake.request("POST", "/v1/render", body, chunked=chunked)
    app = Recorder(reads=len(protocol.chunks) + 1 if chunked else 1)  # chunked: an empty one ends the body
    _run(app, scope, protocol)
    requests = [m for m in app.received if m["type"] == "http.request"]
    assert b"".join(m["body"] for m in requests) == body
    assert [m["more_body"] for m in requests][-1] is False
    assert all(m["more_body"] for m in requests[:-1])


def test_a_body_cut_short_is_a_disconnect() -> None:
    app = Recorder(reads=2)
    scope, protocol = rsgi_fake.request("POST", "/v1/decide", b'{"visitor"')
    protocol.cut_short = True
    _run(app, scope, protocol)
    assert [m["type"] for m in app.received] == ["http.disconnect", "http.disconnect"]


def test_after_the_body_receive_waits_until_the_client_goes() -> None:
    async def scenario() -> list[str]:
        app = Recorder(reads=2)
        scope, protocol = rsgi_fake.request("POST", "/x", b"{}")
        task = asyncio.create_task(Bridge(app)(scope, protocol))
        await asyncio.sleep(0.05)
        waiting = [m["type"] for m in app.received]
        protocol.gone.set()
        await task
        return [*waiting, "|", *(m["type"] for m in app.received)]

    assert asyncio.run(scenario()) == ["http.request", "|", "http.request", "http.disconnect"]


def test_one_body_message_is_one_response() -> None:
    protocol = _run(Recorder(), *rsgi_fake.request("GET", "/"))
    assert (protocol.status, protocol.headers, protocol.body, protocol.streamed) == (
        200, [("content-type", "text/plain")], b"ok", False
    )  # fmt: skip


def test_several_body_messages_stream_in_order_and_end() -> None:
    start = {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/x-ndjson")]}
    parts = [{"type": "http.response.body", "body": b"%d\n" % i, "more_body": True} for i in range(5)]
    app = Recorder([start, *parts, {"type": "http.response.body", "body": b"", "more_body": False}], reads=0)
    protocol = _run(app, *rsgi_fake.request("POST", "/v1/render"))
    assert protocol.streamed
    assert protocol.body == b"0\n1\n2\n3\n4\n"


def test_sending_to_a_client_that_has_gone_does_nothing_and_receive_says_so() -> None:
    class Leaves(Recorder):
        async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
            await receive()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"a", "more_body": True})
            protocol.gone.set()
            await send({"type": "http.response.body", "body": b"b", "more_body": True})  # no error
            self.received.append(await receive())

    app = Leaves()
    scope, protocol = rsgi_fake.request("POST", "/x", b"{}")
    _run(app, scope, protocol)
    assert protocol.body == b"a"
    assert app.received == [{"type": "http.disconnect"}]


@get("/stream")
async def numbers() -> Stream:
    async def lines() -> AsyncIterator[bytes]:
        for i in range(1000):
            yield b"%d\n" % i
            await asyncio.sleep(0)

    return Stream(lines(), media_type="application/x-ndjson")


@post("/echo", status_code=200)
async def echo(request: Request[Any, Any, Any]) -> bytes:
    return await request.body()


def test_litestar_streams_through_the_bridge_and_stops_when_the_client_goes() -> None:
    app = Litestar([numbers, echo])
    whole = _run(app, *rsgi_fake.request("GET", "/stream"))
    assert whole.body == b"".join(b"%d\n" % i for i in range(1000))

    async def leaving() -> rsgi_fake.Protocol:
        scope, protocol = rsgi_fake.request("GET", "/stream")
        task = asyncio.create_task(Bridge(_asgi(app))(scope, protocol))
        while len(protocol.sent) < 10:
            await asyncio.sleep(0)
        protocol.gone.set()
        await asyncio.wait_for(task, 10)
        return protocol

    left = asyncio.run(leaving())
    assert 10 <= len(left.sent) < 1000  # Litestar heard the disconnect and stopped the stream


def test_litestar_reads_bodies_through_the_bridge() -> None:
    app = Litestar([numbers, echo])
    body = b"x" * 100_000
    for chunked in (False, True):
        protocol = _run(app, *rsgi_fake.request("POST", "/echo", body, {"content-type": "text/plain"}, chunked=chunked))
        assert (protocol.status, protocol.body) == (200, body)


def test_lifespan_runs_the_apps_startup_and_shutdown_on_the_workers_loop() -> None:
    events: list[str] = []
    app = Litestar([numbers], on_startup=[lambda: events.append("up")], on_shutdown=[lambda: events.append("down")])
    with rsgi_fake.Worker(_Served(app)) as worker:
        assert events == ["up"]
        protocol = worker.answer(*rsgi_fake.request("GET", "/stream"))
        assert protocol.status == 200
        assert events == ["up"]
    assert events == ["up", "down"]


def test_a_failed_startup_stops_the_worker_with_the_reason() -> None:
    def broken() -> None:
        raise ValueError("no bundle")

    loop = asyncio.new_event_loop()
    try:
        with pytest.raises(LifespanError, match="no bundle"):
            Bridge(_asgi(Litestar([numbers], on_startup=[broken]))).rsgi_init(loop)
    finally:
        loop.close()


class _Served:
    """A bare ASGI app behind the bridge, as granian sees an RSGI app."""

    def __init__(self, app: Any) -> None:
        self.bridge = Bridge(app)

    async def __rsgi__(self, scope: Any, protocol: Any) -> None:
        await self.bridge(scope, protocol)

    def __rsgi_init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.bridge.rsgi_init(loop)

    def __rsgi_del__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.bridge.rsgi_del(loop)
