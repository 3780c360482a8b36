"""Clients that trickle a byte at a time: others are answered meanwhile, and the slow ones are cut off."""

from __future__ import annotations

import select
import selectors
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.integration.server import running_server

pytestmark = pytest.mark.integration

SLOW_EACH = 150  # slow-header and slow-body connections, 300 in all, on one worker
TIMEOUT_S = 3
TRICKLE_EVERY_S = 0.5
GRACE_S = 12  # past the timeouts, on a loaded machine, before a still-open connection counts as held
HEAD = b"POST /v1/decide HTTP/1.1\r\nHost: tailor\r\nContent-Type: application/json\r\nContent-Length: 4096\r\n\r\n"


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    timeouts = {"TAILOR_HEADER_TIMEOUT_S": str(TIMEOUT_S), "TAILOR_BODY_TIMEOUT_S": str(TIMEOUT_S)}
    with running_server(workers=1, env=timeouts) as url:
        yield url


class Trickle:
    """Connections that send their request a byte every half second until the server closes them."""

    def __init__(self, port: int, opening: bytes, count: int) -> None:
        self.start = time.monotonic()  # before any connection: every server-side deadline starts later
        self.sockets = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(count)]
        for sock in self.sockets:
            sock.sendall(opening)
            sock.setblocking(False)
        self.closed: dict[int, float] = {}  # socket index → seconds after the start when the server closed it
        self.answers: list[bytes] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stopping.wait(TRICKLE_EVERY_S) and len(self.closed) < len(self.sockets):
            for index, sock in enumerate(self.sockets):
                if index not in self.closed:
                    self._poke(index, sock)

    def _poke(self, index: int, sock: socket.socket) -> None:
        try:
            if select.select([sock], [], [], 0)[0]:
                received = sock.recv(65536)
                if received:
                    self.answers.append(received)
                    return
                raise ConnectionResetError  # an orderly close by the server
            sock.send(b" ")
        except OSError:
            self.closed[index] = time.monotonic() - self.start

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=5)
        for sock in self.sockets:
            sock.close()


def test_a_worker_answers_others_while_300_clients_trickle_and_then_cuts_them_off(base: str) -> None:
    port = int(base.rsplit(":", 1)[1])
    slow_headers = Trickle(port, b"POST /v1/decide HTTP/1.1\r\nHost: tailor\r\n", SLOW_EACH)
    slow_bodies = Trickle(port, HEAD + b'{"visitor": ', SLOW_EACH)
    try:
        with httpx.Client(base_url=base, timeout=10.0) as http:
            answered = [http.post("/v1/decide", json={"visitor": {"id": f"v{i}"}}).status_code for i in range(20)]
        still_open = SLOW_EACH * 2 - len(slow_headers.closed) - len(slow_bodies.closed)
        deadline = time.monotonic() + TIMEOUT_S + GRACE_S
        while time.monotonic() < deadline and len(slow_headers.closed) + len(slow_bodies.closed) < 2 * SLOW_EACH:
            time.sleep(0.25)
    finally:
        slow_headers.stop()
        slow_bodies.stop()
    assert answered == [200] * 20
    assert still_open > SLOW_EACH  # most slow clients were connected while the others were answered
    assert len(slow_headers.closed) == SLOW_EACH, "slow headers still open after the header timeout"
    assert len(slow_bodies.closed) == SLOW_EACH, "slow bodies still open after the body timeout"
    assert min(slow_bodies.closed.values()) >= TIMEOUT_S - 0.5  # cut off by the timeout, not at once
    assert all(b" 408 " in answer for answer in slow_bodies.answers)
    heads, bodies = sorted(slow_headers.closed.values()), sorted(slow_bodies.closed.values())
    print(
        f"slow headers closed after {heads[0]:.1f}-{heads[-1]:.1f} s, bodies after {bodies[0]:.1f}-{bodies[-1]:.1f} s"
    )


SILENT = 1_100  # past the 1,024 connections a worker serves at once: held for good, they locked it out


def test_connections_that_send_nothing_are_closed_after_the_header_timeout(base: str) -> None:
    """A connection that never sends a byte gets the header timeout too (granian's HTTP/1 mode: in its
    auto mode, which waits to see the protocol, no timer ran, and 1,100 such connections held a worker)."""
    port = int(base.rsplit(":", 1)[1])
    start = time.monotonic()
    silent = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(SILENT)]
    watch = selectors.DefaultSelector()  # epoll: select() takes no descriptor past 1,023
    for sock in silent:
        watch.register(sock, selectors.EVENT_READ)
    try:
        open_ = len(silent)
        deadline = start + TIMEOUT_S + GRACE_S
        while open_ and time.monotonic() < deadline:
            for key, _ in watch.select(0.25):
                watch.unregister(key.fileobj)
                open_ -= 1  # a close by the server: readable, with nothing (or a reset) to read
        closed_after = time.monotonic() - start
        healthy = httpx.get(f"{base}/healthz", timeout=10).status_code
    finally:
        watch.close()
        for sock in silent:
            sock.close()
    assert not open_, f"{open_} silent connections still open {closed_after:.0f} s after they connected"
    assert closed_after >= TIMEOUT_S - 0.5  # closed by the timeout, not refused at once
    assert healthy == 200


def test_workers_speak_http_1_only(base: str) -> None:
    """The README's claim: an HTTP/2 connection preface gets no HTTP/2 SETTINGS frame back (HTTP/2 and TLS
    belong to the proxy in front), and HTTP/1.1 is answered."""
    port = int(base.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        try:
            answer = sock.recv(65536)
        except (ConnectionResetError, TimeoutError):
            answer = b""
    settings_frame = len(answer) >= 9 and answer[3] == 0x04  # type 4 in the frame header: SETTINGS
    assert not settings_frame, answer[:40]
    assert answer == b"" or answer.startswith(b"HTTP/1.1 4"), answer[:80]
    assert httpx.get(f"{base}/healthz", timeout=10).status_code == 200
