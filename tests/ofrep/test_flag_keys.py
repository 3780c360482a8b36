"""Odd flag keys on a real server, under both of granian's interfaces: each is the key it encodes.

granian decodes the path and Litestar strips its trailing slashes and merges repeated ones, so
``flags/%2F`` was once the bulk route, ``flags/home_hero%2F`` the flag ``home_hero`` and
``flags/home_hero%2Fx`` no route at all. Every path below ``flags/`` is one flag, its key decoded.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.integration.server import running_server

pytestmark = pytest.mark.integration

BULK = "/ofrep/v1/evaluate/flags"
CONTEXT = {"context": {"targetingKey": "v-1"}}

# The path after flags/, as sent → the key the answer names (none of them is a placement).
ODD_KEYS = [
    ("%2F", "/"),
    ("%2F%2F", "//"),
    ("home_hero%2F", "home_hero/"),
    ("home_hero/", "home_hero/"),  # sent as it is: it evaluated home_hero
    ("home_hero%2Fx", "home_hero/x"),
    ("%2Fhome_hero", "/home_hero"),
    ("", ""),  # flags/ with its trailing slash: the key "" of a provider, not the bulk route
    ("h%C3%A9ro", "héro"),
    ("%E2%9A%91", "⚑"),
    ("%2E%2E", ".."),
    ("..%2Fhome_hero", "../home_hero"),
    ("home_hero%3Fx", "home_hero?x"),
    ("a%252F", "a%2F"),  # decoded once
    ("a%20b", "a b"),
]


@pytest.fixture(scope="module", params=["rsgi", "asgi"])
def base(request: pytest.FixtureRequest) -> Iterator[str]:
    with running_server(TAILOR_INTERFACE=request.param) as url:
        yield url


@pytest.fixture(scope="module")
def http(base: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base, timeout=20) as client:
        yield client


def _post(http: httpx.Client, raw_path: str) -> httpx.Response:
    """A POST of this very path: httpx would otherwise normalize dot segments and re-encode."""
    url = http.base_url.copy_with(raw_path=raw_path.encode())
    return http.post(url, json=CONTEXT)


@pytest.mark.parametrize(("sent", "key"), ODD_KEYS)
def test_an_odd_key_is_one_flag_not_found_under_its_own_name(http: httpx.Client, sent: str, key: str) -> None:
    answer = _post(http, f"{BULK}/{sent}")
    assert (answer.status_code, answer.headers["content-type"]) == (404, "application/json")
    body = answer.json()
    assert (body["key"], body["errorCode"]) == (key, "FLAG_NOT_FOUND")
    assert f"'{key}'" in body["errorDetails"]


@pytest.mark.parametrize(("path", "shape"), [(f"{BULK}/home_hero", "key"), (BULK, "flags")])
def test_the_flag_and_bulk_routes_still_answer_as_they_did(http: httpx.Client, path: str, shape: str) -> None:
    answer = _post(http, path)
    assert answer.status_code == 200
    assert shape in answer.json()
