"""The change-event stream on a real server: a reload is a refetchEvaluation, and the cap frees up."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.integration.server import running_server
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
            data = next(line for line in lines if line.startswith("data: "))
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
