"""Whatever a client sends, the API answers 200 or a 4xx problem: never a 500."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar.testing import TestClient

from service.http.app import create_app

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=15,
)
visitors = st.fixed_dictionaries(
    {},
    optional={
        "id": st.one_of(st.none(), st.text(max_size=12), st.integers()),
        "attributes": st.one_of(st.dictionaries(st.text(max_size=10), json_values, max_size=6), json_values),
        "consent": st.one_of(st.fixed_dictionaries({}, optional={"personalization": st.booleans()}), json_values),
    },
)
requests = st.fixed_dictionaries(
    {"visitor": st.one_of(visitors, json_values)},
    optional={
        "placements": st.one_of(st.lists(st.sampled_from(["home_hero", "promo_banner", "nope", ""])), json_values),
        "context": st.one_of(
            st.fixed_dictionaries(
                {},
                optional={
                    "locale": st.text(max_size=8),
                    "now": st.one_of(st.just("2026-11-22T12:00:00Z"), st.text(max_size=25)),
                },
            ),
            json_values,
        ),
        "explain": json_values,
        "render": st.one_of(st.booleans(), json_values),
    },
)
recipients = st.fixed_dictionaries(
    {},
    optional={
        "id": st.one_of(st.none(), st.text(max_size=12)),
        "attributes": st.dictionaries(
            st.sampled_from(["first_name", "cart", "category_views", "purchased_products", "x"]), json_values
        ),
        "consent": st.fixed_dictionaries({}, optional={"personalization": st.booleans()}),
        "context": st.fixed_dictionaries(
            {}, optional={"locale": st.text(max_size=8), "currency": st.sampled_from(["EUR", "usd", "XXX"])}
        ),
    },
)
render_requests = st.fixed_dictionaries(
    {"recipients": st.one_of(st.lists(recipients, max_size=4), json_values)},
    optional={
        "placements": st.lists(st.sampled_from(["cart_email", "home_hero", "promo_banner", "recommended_products"])),
        "block": st.sampled_from(["recs_for_you", "email_cart_discount", "hero_vip", "banner_newsletter", "nope"]),
        "context": st.fixed_dictionaries({}, optional={"locale": st.text(max_size=8)}),
        "explain": st.booleans(),
    },
)


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient[Any]]:
    with TestClient(app=create_app()) as http:
        yield http


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(requests)
def test_structured_requests_get_a_decision_or_a_problem(client: TestClient[Any], body: dict[str, Any]) -> None:
    encoded = msgspec.json.encode(body)
    response = client.post("/v1/decide", content=encoded, headers={"content-type": "application/json"})
    assert response.status_code in (200, 400), response.text
    if response.status_code == 400:
        problem = response.json()
        assert problem["type"] == "invalid-request"
        assert problem["errors"][0]["loc"].startswith("$")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=200))
def test_arbitrary_bytes_get_a_problem(client: TestClient[Any], body: bytes) -> None:
    response = client.post("/v1/decide", content=body, headers={"content-type": "application/json"})
    assert response.status_code in (200, 400), response.text


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(render_requests, st.booleans())
def test_render_batches_get_results_or_a_problem(client: TestClient[Any], body: dict[str, Any], stream: bool) -> None:
    headers = {"content-type": "application/json"} | ({"accept": "application/x-ndjson"} if stream else {})
    response = client.post("/v1/render", content=msgspec.json.encode(body), headers=headers)
    assert response.status_code in (200, 400), response.text
    if response.status_code == 200:
        lines = response.text.splitlines() if stream else [response.text]
        assert "summary" in msgspec.json.decode(lines[-1])
