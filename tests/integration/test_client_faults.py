"""Clients that leave mid-body or break the chunked framing: a 4xx at most, never an ERROR or a 5xx."""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.server import Server, running_server

pytestmark = pytest.mark.integration

HEAD = b"POST %s HTTP/1.1\r\nHost: tailor\r\nContent-Type: application/json\r\n"
# Bodies cut short or framed wrongly, each sent and then either closed at once or left for the answer.
FAULTS = {
    "length-then-close": b'Content-Length: 400\r\n\r\n{"visitor": {"id": ',
    "chunk-then-close": b'Transfer-Encoding: chunked\r\n\r\n6\r\n{"visi\r\n',
    "size-not-hex": b'Transfer-Encoding: chunked\r\n\r\nzz\r\n{"visi\r\n0\r\n\r\n',
    "chunk-longer-than-said": b'Transfer-Encoding: chunked\r\n\r\n3\r\n{"visitor": {}}\r\n0\r\n\r\n',
    "no-chunk-terminator": b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}XX0\r\n\r\n",
    "size-overflows": b"Transfer-Encoding: chunked\r\n\r\nffffffffffffffffffff\r\n{}\r\n",
    "missing-final-chunk": b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n",
}
PATHS = (b"/v1/decide", b"/v1/render")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path]]:
    log = tmp_path_factory.mktemp("faults") / "server.log"
    with running_server(log_file=log, TAILOR_BODY_TIMEOUT_S="3") as base:
        yield base, log


def _port(base: str) -> int:
    return int(base.rsplit(":", 1)[1])


def _send(port: int, data: bytes, *, wait: bool) -> bytes:
    """Send raw bytes; either hang up at once or read until the server closes (or 10 s pass)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        if not wait:
            sock.shutdown(socket.SHUT_RDWR)
            return b""
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
                if b"\r\n\r\n" in received and _complete(received):
                    break
        except (TimeoutError, ConnectionResetError):
            pass
        return received


def _complete(response: bytes) -> bool:
    head, _, body = response.partition(b"\r\n\r\n")
    length = re.search(rb"content-length: (\d+)", head, re.IGNORECASE)
    return length is not None and len(body) >= int(length.group(1))


def _status_counts(base: str) -> dict[str, float]:
    counts: dict[str, float] = {}
    for line in httpx.get(f"{base}/metrics").text.splitlines():
        found = re.match(r"tailor_http_request_duration_seconds_count\{(.*)\} (\S+)", line)
        if found and 'endpoint="/v1/' in found.group(1):
            status = re.search(r'status="(\dxx)"', found.group(1))
            assert status is not None
            counts[status.group(1)] = counts.get(status.group(1), 0) + float(found.group(2))
    return counts


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_a_broken_body_is_at_most_a_4xx(served: tuple[Server, Path], fault: str) -> None:
    base, _ = served
    for path in PATHS:
        _send(_port(base), HEAD % path + FAULTS[fault], wait=False)
        answer = _send(_port(base), HEAD % path + FAULTS[fault], wait=True)
        status = answer.split(b" ", 2)[1] if answer.startswith(b"HTTP/1.1 ") else b""
        assert answer == b"" or status.startswith(b"4"), answer[:300]


def test_broken_bodies_leave_no_error_in_the_log_or_the_metrics(served: tuple[Server, Path]) -> None:
    base, log = served
    for fault in FAULTS.values():
        for path in PATHS:
            _send(_port(base), HEAD % path + fault, wait=False)
    time.sleep(1.0)  # the worker notices the hang-ups
    assert httpx.post(f"{base}/v1/decide", json={"visitor": {"id": "after"}}).status_code == 200
    counts = _status_counts(base)
    assert counts.get("5xx", 0) == 0, counts
    assert counts.get("4xx", 0) > 0, counts  # the faults were seen and counted as the client's
    text = log.read_text()
    assert '"level":"ERROR"' not in text
    assert "Traceback" not in text


VALID = b'{"visitor": {"id": "v-1"}}'
# A whole, valid request, then framing that breaks: what arrived parses, and must not be acted on.
BROKEN_AFTER_A_VALID_BODY = {
    "no-crlf-after-the-data": b"%x\r\n%s0\r\n\r\n" % (len(VALID), VALID),
    "a-bad-size-after-a-whole-chunk": b"%x\r\n%s\r\nzz\r\n" % (len(VALID), VALID),
}


@pytest.mark.parametrize("interface", ["rsgi", "asgi"])
def test_a_valid_body_whose_framing_then_breaks_is_refused_under_both_interfaces(interface: str) -> None:
    with running_server(TAILOR_INTERFACE=interface) as base:
        for fault, framing in BROKEN_AFTER_A_VALID_BODY.items():
            sent = HEAD % b"/v1/decide" + b"Transfer-Encoding: chunked\r\n\r\n" + framing
            answer = _send(_port(base), sent, wait=True)
            assert answer.startswith(b"HTTP/1.1 400 "), (fault, answer[:300])
            assert b"incomplete-body" in answer, fault
