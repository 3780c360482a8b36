"""The floor under every Python figure: granian answering a constant, with no framework at all.

Served by loadtests/compare_http.py next to Litestar's hello (loadtests/ceiling_app.py):

* ``asgi_hello``: a raw ASGI callable (``--interface asgi``), what any ASGI framework adds to;
* ``rsgi_hello``: granian's own interface (``--interface rsgi``), one call to send the response.

Both answer every path with the same 17 bytes as ``GET /hello`` in ceiling_app.py.
"""

from __future__ import annotations

from typing import Any

BODY = b'{"hello":"world"}'
ASGI_START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())],
}
ASGI_BODY = {"type": "http.response.body", "body": BODY}
RSGI_HEADERS = [("content-type", "application/json")]


async def asgi_hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":  # granian asks; answering keeps its log quiet
        while (message := await receive())["type"] != "lifespan.shutdown":
            await send({"type": message["type"] + ".complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    await send(ASGI_START)
    await send(ASGI_BODY)


async def rsgi_hello(scope: Any, protocol: Any) -> None:
    protocol.response_bytes(200, RSGI_HEADERS, BODY)
