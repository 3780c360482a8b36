"""A client that stops reading a render batch: what the worker keeps rendering for it.

Under granian's ASGI interface a streamed body goes through a small bounded queue, so a batch
whose client stops reading stops rendering once the socket and that queue are full, and goes on
when the client reads again. granian's RSGI stream transport (the default door) queues without
bound: the batch renders to its end and waits in memory (docs/DEPLOYMENT.md, "Email batches").
The RSGI case is a strict xfail, so that a granian that bounds its queue shows up here.
"""

from __future__ import annotations

import json
import re
import socket
import time
from datetime import UTC, datetime

import h11
import httpx
import pytest

from tests.bench import emails
from tests.integration.server import running_server

pytestmark = pytest.mark.integration

RECIPIENTS = 10_000
SETTLE_S = 0.5  # between scrapes: a count the same in SETTLED scrapes in a row has stopped
SETTLED = 3  # a second without a decision: not a busy machine's pause
WAIT_S = 120.0  # at most this long for it to stop, on a slow machine
DECIDED = re.compile(r'^tailor_decisions_total\{placement="' + emails.PLACEMENT + r'",[^}]*\} (\S+)$', re.MULTILINE)


def _decided(base: str) -> int:
    """Recipients decided so far (a scrape folds the scraped worker's counts first: exact with one worker)."""
    return int(sum(float(value) for value in DECIDED.findall(httpx.get(f"{base}/metrics").text)))


def _settled(base: str) -> int:
    deadline = time.monotonic() + WAIT_S
    seen: list[int] = []
    while time.monotonic() < deadline:
        seen.append(_decided(base))
        if seen[-1] > 0 and len(seen) >= SETTLED and len(set(seen[-SETTLED:])) == 1:  # started, then stopped
            return seen[-1]
        time.sleep(SETTLE_S)
    raise AssertionError(f"the batch was still rendering after {WAIT_S:g} s")


def _stalled_batch(base: str) -> socket.socket:
    """A render batch sent on a socket with a small receive buffer that nobody reads yet."""
    body = json.dumps(emails.batch_body(emails.recipients(RECIPIENTS, 7, datetime.now(UTC)))).encode()
    port = int(base.rsplit(":", 1)[1])
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connecting: the window stays small
    sock.connect(("127.0.0.1", port))
    head = (
        "POST /v1/render HTTP/1.1\r\nhost: tailor\r\ncontent-type: application/json\r\n"
        f"accept: application/x-ndjson\r\ncontent-length: {len(body)}\r\n\r\n"
    )
    sock.sendall(head.encode() + body)
    return sock


def _lines(sock: socket.socket) -> int:
    """Read the whole streamed answer and count its NDJSON lines."""
    connection = h11.Connection(h11.CLIENT)
    connection.send(  # h11 parses a response only after its request: this one went out raw, in _stalled_batch
        h11.Request(method="POST", target="/v1/render", headers=[("host", "tailor"), ("content-length", "0")])
    )
    body = bytearray()
    sock.settimeout(60)
    while True:
        event = connection.next_event()
        if event is h11.NEED_DATA:
            connection.receive_data(sock.recv(1 << 20))
        elif isinstance(event, h11.Response):
            assert event.status_code == 200
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            return body.count(b"\n")


@pytest.mark.parametrize(
    "interface",
    [
        "asgi",
        pytest.param("rsgi", marks=pytest.mark.xfail(strict=True, reason="granian's RSGI stream queue is unbounded")),
    ],
)
def test_a_batch_whose_client_stops_reading_stops_rendering(interface: str) -> None:
    with running_server(TAILOR_INTERFACE=interface) as base:
        sock = _stalled_batch(base)
        try:
            paused = _settled(base)
            assert paused < RECIPIENTS // 2, (
                f"{paused} of {RECIPIENTS} recipients rendered for a client that reads nothing"
            )
            assert _lines(sock) == RECIPIENTS + 1  # read again, it gets every recipient and the summary
        finally:
            sock.close()
