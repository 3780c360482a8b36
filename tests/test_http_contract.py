"""Strict decoding and the OpenAPI document, in process: what the document says is what is accepted."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from typing import Any

import pytest
from litestar.testing import TestClient

from service.http.app import create_app
from service.http.openapi import document
from service.settings import Settings

JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient[Any]]:
    with TestClient(app=create_app()) as http:
        yield http


@pytest.mark.parametrize(
    ("body", "where"),
    [
        (b'{"visitor": {}, "render": 0}', "$.render"),
        (b'{"visitor": {}, "explain": 1}', "$.explain"),
        (b'{"visitor": {}, "explain": "false"}', "$.explain"),
        (b'{"visitor": {"consent": {"personalization": "true"}}}', "$.visitor.consent.personalization"),
        (b'{"visitor": {"consent": {"personalization": 1}}}', "$.visitor.consent.personalization"),
        (b'{"visitor": {"consent": {"analytics": "1"}}}', "$.visitor.consent.analytics"),
        (b'{"visitor": {}, "context": {"now": 5}}', "$.context.now"),
        (b'{"visitor": {}, "context": {"now": 1.5e9}}', "$.context.now"),
        (b'{"visitor": {"id": 7}}', "$.visitor.id"),
        (b'{"visitor": {}, "placements": "home_hero"}', "$.placements"),
        (b'{"visitor": {}, "context": {"locale": 1}}', "$.context.locale"),
    ],
)
def test_no_type_is_coerced(client: TestClient[Any], body: bytes, where: str) -> None:
    response = client.post("/v1/decide", content=body, headers=JSON)
    assert response.status_code == 400, response.text
    assert response.json()["errors"][0]["loc"] == where


@pytest.mark.parametrize(
    ("path", "body", "where"),
    [
        ("/v1/decide", b'{"visitor": {}, "visitor": {"id": "b"}}', "$.visitor"),
        ("/v1/decide", b'{"visitor": {"id": "a", "id": "b"}}', "$.visitor.id"),
        ("/v1/decide", b'{"visitor": {"attributes": {"x": [{"k": 1, "k": 2}]}}}', "$.visitor.attributes.x[0].k"),
        ("/v1/decide", b'{"visitor": {}, "explain": true, "explain": false}', "$.explain"),
        ("/v1/render", b'{"block": "recs_for_you", "recipients": [{}, {"id": "a", "id": "a"}]}', "$.recipients[1].id"),
    ],
)
def test_duplicate_keys_are_refused_where_they_are(client: TestClient[Any], path: str, body: bytes, where: str) -> None:
    response = client.post(path, content=body, headers=JSON)
    assert response.status_code == 400, response.text
    error = response.json()["errors"][0]
    assert error["loc"] == where
    assert error["message"].startswith("duplicate key")


@pytest.mark.parametrize(
    "headers",
    [
        {"content-type": "text/plain"},
        {},
        {"content-type": "application/x-www-form-urlencoded"},
        {"content-type": "application/jsonx"},
        {"content-type": "application/json", "content-encoding": "gzip"},
        {"content-type": "application/json", "content-encoding": "br"},
    ],
    ids=["text", "none", "form", "lookalike", "gzip", "br"],
)
def test_bodies_that_are_not_plain_json_are_415(client: TestClient[Any], headers: dict[str, str]) -> None:
    body = b'{"visitor": {"id": "a"}}'
    content = gzip.compress(body) if headers.get("content-encoding") == "gzip" else body
    for path in ("/v1/decide", "/v1/render"):
        response = client.post(path, content=content, headers=headers)
        assert response.status_code == 415, (path, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["type"] == "unsupported-media-type"


def test_json_with_a_charset_parameter_is_json(client: TestClient[Any]) -> None:
    headers = {"content-type": "application/json; charset=utf-8"}
    assert client.post("/v1/decide", content=b'{"visitor": {}}', headers=headers).status_code == 200


def _schema(settings: Settings) -> dict[str, Any]:
    return document(settings, ["recs_for_you", "hero_vip"])


def test_the_document_carries_the_limits_the_server_enforces() -> None:
    schemas = _schema(Settings(max_placements=12, max_batch=300))["components"]["schemas"]
    decide_placements = schemas["DecideRequest"]["properties"]["placements"]["anyOf"][0]
    assert (decide_placements["maxItems"], decide_placements["items"]["maxLength"]) == (12, 64)
    render = schemas["RenderRequest"]
    assert render["properties"]["recipients"]["maxItems"] == 300
    assert render["properties"]["block"]["anyOf"][0]["enum"] == ["hero_vip", "recs_for_you"]
    assert [branch["required"] for branch in render["oneOf"]] == [["placements"], ["block"]]


def test_the_limit_in_the_document_is_the_limit_applied() -> None:
    settings = Settings(max_placements=3, reload_interval=0)
    limit = _schema(settings)["components"]["schemas"]["DecideRequest"]["properties"]["placements"]["anyOf"][0]
    render_limit = _schema(settings)["components"]["schemas"]["RenderRequest"]["properties"]["placements"]["anyOf"][0]
    with TestClient(app=create_app(settings)) as http:
        at = http.post("/v1/decide", json={"visitor": {}, "placements": ["a"] * limit["maxItems"]})
        beyond = http.post("/v1/decide", json={"visitor": {}, "placements": ["a"] * (limit["maxItems"] + 1)})
        batch = {"recipients": [{}], "placements": ["cart_email"] * (render_limit["maxItems"] + 1)}
        render_beyond = http.post("/v1/render", json=batch)
    assert (at.status_code, beyond.status_code, render_beyond.status_code) == (200, 400, 400)
    assert render_beyond.json()["errors"][0]["loc"] == "$.placements"


def test_every_error_status_is_documented_as_problem_json() -> None:
    paths = _schema(Settings())["paths"]
    expected = {
        ("/v1/decide", "post"): {"200", "400", "408", "413", "415", "503"},
        ("/v1/render", "post"): {"200", "400", "408", "413", "415", "503"},
        ("/v1/events", "post"): {"202", "400", "408", "413", "415"},
        ("/v1/bundle", "get"): {"200", "503"},
        ("/admin/reload", "post"): {"200", "401", "404"},
        ("/readyz", "get"): {"200", "503"},
        ("/readyz", "head"): {"200", "503"},
        ("/healthz", "get"): {"200"},
        ("/healthz", "head"): {"200"},
    }
    for (path, method), statuses in expected.items():
        responses = paths[path][method]["responses"]
        assert set(responses) == statuses, path
        for status, response in responses.items():
            if status.startswith("4") or (path != "/readyz" and status == "503"):
                assert list(response["content"]) == ["application/problem+json"], (path, status)


def test_the_document_served_is_the_one_built(client: TestClient[Any]) -> None:
    served = client.get("/schema/openapi.json").json()
    assert served["openapi"] == "3.1.0"
    v1 = {"/v1/decide", "/v1/render", "/v1/events", "/v1/bundle", "/healthz", "/readyz", "/admin/reload"}
    ofrep = {"/ofrep/v1/evaluate/flags", "/ofrep/v1/evaluate/flags/{key}", "/ofrep/v1/events"}
    assert set(served["paths"]) == v1 | ofrep
    assert "recs_for_you" in served["components"]["schemas"]["RenderRequest"]["properties"]["block"]["anyOf"][0]["enum"]
    assert client.get("/schema/swagger").headers["content-type"].startswith("text/html")


def test_every_time_is_a_date_time_in_the_document() -> None:
    """A bare string schema let "" fit `context.now`, which the server refuses (schemathesis found it)."""
    schemas = document(Settings(allow_client_time=True), None)["components"]["schemas"]
    times = {
        (name, prop): [b.get("format") for b in spec.get("anyOf", [spec]) if b.get("type") == "string"]
        for name, schema in schemas.items()
        for prop, spec in schema.get("properties", {}).items()
        if prop in ("now", "time", "start", "end", "loaded_at")
    }
    assert len(times) >= 5
    assert all(formats == ["date-time"] for formats in times.values()), times
