"""In JSON log mode every line is JSON: ours, the libraries' (httpx, litestar, asyncio) and the web server's."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.integration.server import STOP_TIMEOUT_S, _stop, _wait_ready, free_port

ROOT = Path(__file__).parents[1]
# An app in one process: a request through the test client, a request of httpx of its own, and
# lines from library loggers, all after the app has started (when Litestar set up its logging).
PROBE = """
import logging, sys
from pathlib import Path
import httpx
from litestar.testing import TestClient
from service.http.app import create_app
from service.settings import Settings

app = create_app(Settings(bundle=Path("."), reload_interval=0, log_format=sys.argv[1]))
with TestClient(app=app) as client:
    client.post("/v1/decide", content=b"{")
    httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(200))).get("http://origin.test/bundle")
    logging.getLogger("litestar").warning("from litestar")
    logging.getLogger("asyncio").error("from asyncio")
    logging.getLogger("tailor.probe").info("from tailor")
"""
LOGGERS = {"httpx", "litestar", "asyncio", "tailor.probe", "tailor.reload"}


def _lines(fmt: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, fmt], capture_output=True, text=True, check=False, cwd=ROOT, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stderr.splitlines()


def test_every_logger_writes_json_lines() -> None:
    entries = [json.loads(line) for line in _lines("json")]
    assert {entry["logger"] for entry in entries} >= LOGGERS
    httpx_lines = [entry["message"] for entry in entries if entry["logger"] == "httpx"]
    assert any("http://origin.test/bundle" in message for message in httpx_lines)


def test_every_logger_writes_text_lines_in_text_mode() -> None:
    lines = _lines("text")
    assert "WARNING litestar: from litestar" in lines
    assert "INFO tailor.probe: from tailor" in lines
    assert any(line.startswith("INFO httpx: HTTP Request: GET http://origin.test/bundle") for line in lines)


def test_the_web_server_logs_json_too() -> None:
    port = free_port()
    command = [sys.executable, "-m", "service.cli", "serve", "--bundle", str(ROOT), "--port", str(port)]
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env={**os.environ, "TAILOR_LOG_FORMAT": "json", "TAILOR_RELOAD_INTERVAL": "0"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        _wait_ready(f"http://127.0.0.1:{port}", process)
        os.killpg(process.pid, signal.SIGTERM)
        out, err = process.communicate(timeout=STOP_TIMEOUT_S)
    finally:
        _stop(process)
    server_lines = [line for line in (out + err).decode().splitlines() if not line.startswith("tailor: ")]
    entries = [json.loads(line) for line in server_lines]  # the command's own "tailor: serving ..." is not a log
    assert "_granian" in {entry["logger"] for entry in entries}
    assert "tailor.reload" in {entry["logger"] for entry in entries}
