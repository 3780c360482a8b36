"""A bundle copied from the repository, and a real HTTP origin on 127.0.0.1 that serves its archive."""

from __future__ import annotations

import hashlib
import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]


def copy_bundle(target: Path) -> Path:
    """rules/, content/ and models/ of the example bundle."""
    for kind in ("rules", "content", "models"):
        shutil.copytree(ROOT / kind, target / kind)
    return target


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    return copy_bundle(tmp_path / "bundle")


class OriginServer(ThreadingHTTPServer):
    """Serves one archive at any path, with an ETag; can answer 503 for a while, or always, or no ETag."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.archive = b""
        self.etag: str | None = None
        self.send_etag = True
        self.fail_next = 0  # this many requests get fail_status first
        self.fail_always = False
        self.fail_status = 503
        self.answering = threading.Event()  # cleared: every request waits until it is set again
        self.answering.set()
        self.requests: list[dict[str, str]] = []
        self.lock = threading.Lock()
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        self.running = True

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}/bundle.tar.gz"

    def publish(self, archive: bytes) -> None:
        with self.lock:
            self.archive = archive
            self.etag = f'"{hashlib.sha256(archive).hexdigest()[:20]}"'

    def stop(self) -> None:
        if self.running:
            self.running = False
            self.shutdown()
            self.server_close()
            self._thread.join()


class _Handler(BaseHTTPRequestHandler):
    server: OriginServer

    def do_GET(self) -> None:
        origin = self.server
        with origin.lock:
            origin.requests.append(dict(self.headers.items()))
            failing = origin.fail_always or origin.fail_next > 0
            origin.fail_next = max(0, origin.fail_next - 1)
            archive, etag = origin.archive, origin.etag if origin.send_etag else None
        origin.answering.wait(timeout=30)
        if failing:
            self._reply(origin.fail_status, b"unavailable")
        elif etag is not None and self.headers.get("If-None-Match") == etag:
            self._reply(304, b"", etag)
        else:
            self._reply(200, archive, etag)

    def _reply(self, status: int, body: bytes, etag: str | None = None) -> None:
        self.send_response(status)
        if etag is not None:
            self.send_header("ETag", etag)
        if status != 304:
            self.send_header("Content-Type", "application/gzip")
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the name is the base class's
        pass  # keep test output clean


@pytest.fixture
def origin() -> Iterator[OriginServer]:
    server = OriginServer()
    try:
        yield server
    finally:
        server.stop()
