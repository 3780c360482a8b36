"""The lean ``POST /v1/decide`` path answers exactly as the routed Litestar handler does.

Each request of the corpus goes to two apps built alike, one with the lean path and one without,
and the status, the headers and the body must match (decision ids aside, which differ by worker).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from service.http.app import create_app
from service.http.rsgi import Door
from service.settings import Settings
from tests import rsgi_fake

ROOT = Path(__file__).parents[1]
ORIGIN = "https://shop.example"
TOKEN = "admin-token-for-tests-0123"
JSON = {"content-type": "application/json"}
DECISION_ID = re.compile(rb'"decision_id":"[0-9a-f]{32}"')
# Headers whose value is the connection's or the moment's, not the answer's.
UNCOMPARED = {"date", "server"}
Clients = tuple[TestClient[Any], TestClient[Any]]

PAGE_VIEW = b'{"visitor": {"id": "v-1", "attributes": {"country": "DE", "orders_total": 3}, "consent": {"personalization": true, "analytics": true}}, "context": {"locale": "de-DE", "page": "/"}}'  # noqa: E501
CORPUS: list[tuple[str, bytes, dict[str, str]]] = [
    ("page view", PAGE_VIEW, JSON),
    ("one placement", b'{"visitor": {"id": "v-2"}, "placements": ["home_hero"]}', JSON),
    ("no id", b'{"visitor": {}}', JSON),
    ("explain", b'{"visitor": {"id": "v-3", "consent": {"personalization": true}}, "explain": true}', JSON),
    ("render", b'{"visitor": {"id": "v-4"}, "render": true, "explain": true}', JSON),
    ("with origin", PAGE_VIEW, {**JSON, "origin": ORIGIN}),
    ("with other origin", PAGE_VIEW, {**JSON, "origin": "https://evil.example"}),
    ("charset", PAGE_VIEW, {"content-type": "application/json; charset=utf-8"}),
    ("empty", b"", JSON),
    ("not json", b"{visitor", JSON),
    ("wrong type", b'{"visitor": {"id": 5}}', JSON),
    ("unknown field", b'{"visitor": {}, "colour": "red"}', JSON),
    ("duplicate key", b'{"visitor": {"id": "a", "id": "b"}}', JSON),
    ("escaped duplicate", b'{"visitor": {"id": "a", "\\u0069d": "b"}}', JSON),
    ("huge integer", b'{"visitor": {"attributes": {"n": ' + b"9" * 400 + b"}}}", JSON),
    ("bad utf-8", b'{"visitor": {"id": "\xff"}}', JSON),
    ("too many placements", b'{"visitor": {}, "placements": [' + b",".join([b'"p"'] * 300) + b"]}", JSON),
    ("form", b"visitor=1", {"content-type": "application/x-www-form-urlencoded"}),
    ("gzip", PAGE_VIEW, {**JSON, "content-encoding": "gzip"}),
    ("too large", b'{"visitor": {"id": "' + b"a" * 70_000 + b'"}}', JSON),
    ("client time refused", b'{"visitor": {"id": "v"}, "context": {"now": "2026-06-01T12:00:00Z"}}', JSON),
    (
        "client time with the token",
        b'{"visitor": {"id": "v"}, "context": {"now": "2026-06-01T12:00:00Z"}}',
        {**JSON, "authorization": f"Bearer {TOKEN}"},
    ),
]


def _settings() -> Settings:
    return Settings(bundle=ROOT, reload_interval=0, cors_origins=ORIGIN, admin_token=TOKEN)


@pytest.fixture(scope="module")
def clients() -> Iterator[Clients]:
    with (
        TestClient(app=create_app(_settings())) as lean,
        TestClient(app=create_app(_settings(), lean_decide=False)) as routed,
    ):
        yield lean, routed


def _answer(client: TestClient[Any], method: str, body: bytes, headers: dict[str, str]) -> tuple[Any, ...]:
    response = client.request(method, "/v1/decide", content=body, headers=headers)
    kept = sorted((name, value) for name, value in response.headers.multi_items() if name not in UNCOMPARED)
    content = DECISION_ID.sub(b'"decision_id":"-"', response.content)
    return response.status_code, [(n, v) for n, v in kept if n != "content-length"], content


@pytest.mark.parametrize(("name", "body", "headers"), CORPUS, ids=[case[0] for case in CORPUS])
def test_the_lean_path_answers_as_the_routed_handler(
    clients: Clients, name: str, body: bytes, headers: dict[str, str]
) -> None:
    lean, routed = clients
    assert _answer(lean, "POST", body, headers) == _answer(routed, "POST", body, headers), name


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_other_methods_are_still_refused_with_allow(clients: Clients, method: str) -> None:
    lean, routed = clients
    answer = _answer(lean, method, b"", {})
    assert answer == _answer(routed, method, b"", {})
    assert answer[0] == 405
    assert ("allow", "POST, OPTIONS") in answer[1]


def test_the_lean_path_counts_its_requests_and_decisions(clients: Clients) -> None:
    lean, _ = clients
    lean.post("/v1/decide", content=PAGE_VIEW, headers=JSON)
    lean.post("/v1/decide", content=b"{", headers=JSON)
    exposition = lean.get("/metrics").text
    assert re.search(
        r'tailor_http_request_duration_seconds_count\{endpoint="/v1/decide",method="POST",status="2xx"\} [1-9]',
        exposition,
    )
    assert re.search(
        r'tailor_http_request_duration_seconds_count\{endpoint="/v1/decide",method="POST",status="4xx"\} [1-9]',
        exposition,
    )
    assert re.search(r'tailor_decisions_total\{placement="home_hero",[^}]*\} [1-9]', exposition)


def test_the_lean_path_is_the_one_serving(clients: Clients) -> None:
    """Requests on the lean path never reach the router: its timing middleware does not see them."""
    lean, _ = clients
    app = lean.app
    assert getattr(app.asgi_handler, "__name__", "") == "front"


@pytest.fixture(scope="module")
def door() -> Iterator[rsgi_fake.Worker]:
    app = create_app(_settings())
    with rsgi_fake.Worker(Door(app)) as worker:
        yield worker


def _door_answer(door: rsgi_fake.Worker, method: str, body: bytes, headers: dict[str, str]) -> tuple[Any, ...]:
    protocol = door.answer(*rsgi_fake.request(method, "/v1/decide", body, headers))
    kept = sorted((name.lower(), value) for name, value in protocol.headers if name.lower() not in UNCOMPARED)
    content = DECISION_ID.sub(b'"decision_id":"-"', protocol.body)
    return protocol.status, [(n, v) for n, v in kept if n != "content-length"], content


@pytest.mark.parametrize(("name", "body", "headers"), CORPUS, ids=[case[0] for case in CORPUS])
def test_the_rsgi_door_answers_as_the_routed_handler(
    clients: Clients, door: rsgi_fake.Worker, name: str, body: bytes, headers: dict[str, str]
) -> None:
    _, routed = clients
    _door_answer(door, "POST", body, headers), _answer(routed, "POST", body, headers)  # render caches warm on both
    assert _door_answer(door, "POST", body, headers) == _answer(routed, "POST", body, headers), name


@pytest.mark.parametrize("method", ["GET", "PUT", "OPTIONS"])
def test_the_rsgi_door_leaves_other_methods_to_litestar(clients: Clients, door: rsgi_fake.Worker, method: str) -> None:
    _, routed = clients
    preflight = {"origin": ORIGIN, "access-control-request-method": "POST"} if method == "OPTIONS" else {}
    assert _door_answer(door, method, b"", preflight) == _answer(routed, method, b"", preflight)


@pytest.mark.parametrize("path", ["/v1/decide", "/v1/render"])
def test_a_body_cut_short_at_the_door_is_an_incomplete_body(door: rsgi_fake.Worker, path: str) -> None:
    scope, protocol = rsgi_fake.request("POST", path, b'{"visitor": {"id": "v', {"content-type": "application/json"})
    protocol.cut_short = True  # granian raises RSGIProtocolClosed: the client went before its declared length
    answered = door.answer(scope, protocol)
    assert answered.status == 400
    assert b"incomplete-body" in answered.body


@pytest.mark.parametrize("path", ["/v1/decide", "/v1/render", "/v1/events", "/ofrep/v1/evaluate/flags"])
def test_a_valid_body_whose_chunked_framing_then_broke_is_an_incomplete_body(door: rsgi_fake.Worker, path: str) -> None:
    """What arrived parses (a whole request), but the framing broke after it: it is not acted on.
    The door's routes and those it hands to Litestar (events, OFREP) alike."""
    body = {
        "/v1/decide": b'{"visitor": {"id": "v-1"}}',
        "/v1/render": b'{"visitor": {"id": "v-1"}, "placements": ["home_hero"]}',
        "/v1/events": b'{"events": [{"visitor_id": "v-1", "metric": "purchase", "consent": {"analytics": true}}]}',
        "/ofrep/v1/evaluate/flags": b'{"context": {"targetingKey": "v-1"}}',
    }[path]
    scope, protocol = rsgi_fake.request("POST", path, body, {"content-type": "application/json"}, chunked=True)
    protocol.framing_broken = True
    answered = door.answer(scope, protocol)
    assert answered.status == 400, answered.body
    assert b"incomplete-body" in answered.body
