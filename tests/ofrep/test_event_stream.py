"""The change-event stream on a real server: a reload is a refetchEvaluation, and the cap frees up.

A client that reconnects with the revision it last heard of (``Last-Event-ID``) is told at once
when the revision has changed meanwhile (docs/adr/0018-event-stream-catch-up.md); the stream
takes the API key as the evaluation routes do, or as the URL's token.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from service.http import ofrep
from tests.integration.server import Server, running_server
from tests.ofrep.bundle import bundle_copy

pytestmark = pytest.mark.integration

WAIT_S = 20.0  # generous: the machine is shared


def _free_slot(base: str) -> httpx.Response:
    """A stream request once the server has seen the previous stream's client leave."""
    deadline = time.monotonic() + WAIT_S
    while True:
        with httpx.stream("GET", f"{base}/ofrep/v1/events", timeout=5) as answer:
            if answer.status_code != 503 or time.monotonic() > deadline:
                return answer
        time.sleep(0.1)


def test_a_reload_is_a_refetch_event_and_a_closed_stream_frees_its_slot(tmp_path: Path) -> None:
    bundle = bundle_copy(tmp_path)
    env = {"TAILOR_RELOAD_INTERVAL": "0.2", "TAILOR_OFREP_MAX_STREAMS": "1"}
    with running_server(bundle, env=env) as base, httpx.Client(base_url=base, timeout=WAIT_S) as http:
        with http.stream("GET", "/ofrep/v1/events") as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            lines = stream.iter_lines()
            assert next(lines) == "retry: 1000"
            refused = httpx.get(f"{base}/ofrep/v1/events", timeout=5)
            assert refused.status_code == 503  # the cap of one is taken
            rules = bundle / "rules" / "placements.yaml"
            rules.write_text(rules.read_text().replace("serve: hero_vip }", "serve: hero_bold }"))
            edited = time.monotonic()
            data = next(line for line in lines if line.startswith("data: {"))  # not the connect message's
            print(f"refetchEvaluation {time.monotonic() - edited:.2f} s after the edit")
        revision = http.get("/readyz").json()["revision"]
        assert json.loads(data.removeprefix("data: ")) == {"type": "refetchEvaluation", "etag": revision}
        assert _free_slot(base).status_code == 200


def test_a_server_with_open_streams_still_stops(tmp_path: Path) -> None:
    events = httpx.Timeout(WAIT_S)  # the first line may wait for a busy machine; httpx gives 5 s by default
    with (
        running_server(bundle_copy(tmp_path)) as base,
        httpx.stream("GET", f"{base}/ofrep/v1/events", timeout=events) as stream,
    ):
        lines = stream.iter_lines()
        assert next(lines) == "retry: 1000"
        assert "event: connected" in list(itertools.takewhile(bool, lines))
        os.kill(base.pid, signal.SIGTERM)  # the main process only, as a supervisor stops it
        rest = list(lines)  # the server ends the stream; before, the worker waited for it forever
        deadline = time.monotonic() + WAIT_S
        while _alive(base.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(base.pid)
    assert all(line.startswith(":") or not line for line in rest)


def _alive(pid: int) -> bool:
    """Is the server (a child of this process) still running? Reaps it when it has ended."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:  # ended and reaped already
        return False
    return done == 0


KEY = "k-events-0123"
STALE = "0123456789abcdef"  # a revision this bundle never had: one from before a restart
QUIET_S = 2.0  # how long a stream that has nothing to say is listened to


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    bundle = bundle_copy(tmp_path_factory.mktemp("ofrep-events"))
    with running_server(bundle, TAILOR_OFREP_API_KEY=KEY) as base:
        yield base


@pytest.mark.parametrize(
    ("headers", "query", "status"),
    [
        ({}, "", 401),
        ({"authorization": f"Bearer {KEY}"}, "", 200),  # a server-side SSE client sends headers
        ({"x-api-key": KEY}, "", 200),
        ({"authorization": "Bearer wrong"}, "", 401),
        ({"x-api-key": "wrong"}, "", 401),
        ({}, f"?token={ofrep.stream_token(KEY)}", 200),  # EventSource cannot: the bulk response's URL
        ({}, "?token=wrong", 401),
        ({"x-api-key": KEY}, "?token=stale", 200),  # either one will do: a stale token undid a right key
        ({"authorization": f"Bearer {KEY}"}, "?token=", 200),
        ({"x-api-key": "wrong"}, f"?token={ofrep.stream_token(KEY)}", 200),
    ],
)  # fmt: skip
def test_the_stream_takes_the_key_in_a_header_or_its_token(
    keyed: Server, headers: dict[str, str], query: str, status: int
) -> None:
    with httpx.stream("GET", f"{keyed}/ofrep/v1/events{query}", headers=headers, timeout=WAIT_S) as answer:
        assert answer.status_code == status
        if status == 401:
            answer.read()
            assert answer.json() == {"errorDetails": ofrep.STREAM_KEY_REQUIRED}


def _listen(base: str, last_event_id: str | None) -> socket.socket:
    """An open stream on a plain socket, whose reads can wait as long as each step wants."""
    host, port = base.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=WAIT_S)
    resume = "" if last_event_id is None else f"Last-Event-ID: {last_event_id}\r\n"
    sock.sendall(f"GET /ofrep/v1/events HTTP/1.1\r\nHost: {host}\r\nX-API-Key: {KEY}\r\n{resume}\r\n".encode())
    return sock


def _read_until(sock: socket.socket, marker: bytes, heard: bytes = b"") -> bytes:
    """What the stream has said until ``marker``; each message is one chunk, so it is never split."""
    while marker not in heard:
        chunk = sock.recv(65536)
        assert chunk, f"the stream ended before {marker!r}: {heard!r}"
        heard += chunk
    return heard


def _messages(revision: str) -> tuple[bytes, bytes]:
    """The connect message and a refetchEvaluation, as the stream writes them: both with the revision as id."""
    connected = f"id: {revision}\nevent: connected\ndata: {revision}\n\n".encode()
    refetch = f'id: {revision}\nevent: message\ndata: {{"type":"refetchEvaluation","etag":"{revision}"}}\n\n'
    return connected, refetch.encode()


def test_a_reconnect_with_an_old_revision_is_told_to_refetch_at_once(keyed: Server) -> None:
    revision = httpx.get(f"{keyed}/readyz").json()["revision"]
    connected, refetch = _messages(revision)
    with _listen(keyed, STALE) as sock:
        heard = _read_until(sock, refetch)
    assert heard.index(connected) < heard.index(refetch)


@pytest.mark.parametrize("last_event_id", ["current", None])
def test_a_client_that_is_up_to_date_hears_no_refetch(keyed: Server, last_event_id: str | None) -> None:
    revision = httpx.get(f"{keyed}/readyz").json()["revision"]
    connected, _ = _messages(revision)
    with _listen(keyed, revision if last_event_id else None) as sock:
        heard = _read_until(sock, connected)
        sock.settimeout(QUIET_S)
        with pytest.raises(TimeoutError):
            _read_until(sock, b"refetchEvaluation", heard)
