"""Shared pieces: the example bundle, decisions made on it, and a real HTTP collector on 127.0.0.1."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from service.bundle.loader import load_bundle
from service.core.compile import Bundle
from service.core.decide import Decision, DecisionRequest, decide
from service.telemetry import DecisionEvent, Event, Pseudonymizer

ROOT = Path(__file__).parents[2]
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)  # inside the example's hero_layout_test window
KEY = b"a test key of 32 bytes, not real"
QA_BOLD = "qa-bold-1"  # forced into hero_layout_test's bold arm by rules/placements.yaml


@cache
def example_bundle() -> Bundle:
    return load_bundle(ROOT)


PAGE = ["home_hero", "promo_banner"]  # the page placements of the example bundle


def decisions(events: Iterable[Event]) -> list[DecisionEvent]:
    """Events a test knows are all decisions (sinks and filters hold outcomes too), typed as such."""
    every = list(events)
    found = [event for event in every if isinstance(event, DecisionEvent)]
    assert len(found) == len(every), "an outcome event among the decisions"
    return found


def decision_for(
    visitor_id: str | None,
    attributes: Mapping[str, Any] | None = None,
    *,
    personalization: bool = True,
    placements: list[str] | None = PAGE,
) -> Decision:
    request = DecisionRequest(
        visitor_id=visitor_id,
        attributes=attributes or {},
        now=NOW,
        personalization=personalization,
        placements=placements,
    )
    return decide(example_bundle(), request)


@cache
def visitor_with(reason: str, arm: str | None = None) -> str:
    """A visitor id whose home_hero decision has this reason (and arm): found, not hard-coded,
    so that a change of salts or weights in the example bundle does not break these tests."""
    for number in range(1000):
        visitor_id = f"visitor-{number}"
        placed = decision_for(visitor_id, placements=["home_hero"]).placements["home_hero"]
        if placed.reason == reason and (arm is None or (placed.experiment and placed.experiment.arm == arm)):
            return visitor_id
    raise LookupError(f"no visitor with reason {reason} and arm {arm}")


@pytest.fixture
def pseudonymizer() -> Pseudonymizer:
    return Pseudonymizer(KEY)


class Collector:
    """A real HTTP server that records each POST and answers with the statuses it is given, then 204."""

    def __init__(self) -> None:
        self.received: list[tuple[str, bytes]] = []  # (content type, body)
        self.statuses: list[int] = []
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/events"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                with collector.lock:
                    status = collector.statuses.pop(0) if collector.statuses else 204
                    if status < 300:
                        collector.received.append((self.headers["content-type"], body))
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 -- the base class's name
                pass  # keep test output clean

        return Handler


@pytest.fixture
def collector() -> Iterator[Collector]:
    running = Collector()
    thread = threading.Thread(target=running.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield running
    running.server.shutdown()
    running.server.server_close()
    thread.join(5)
