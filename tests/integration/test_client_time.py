"""Who may name the time of a decision (context.now): not any client, only a server that allows it or the admin."""

from __future__ import annotations

import httpx
import pytest

from tests.integration.server import running_server

pytestmark = pytest.mark.integration

TOKEN = "client-time-admin-token"
IN_WINDOW = "2026-11-22T12:00:00Z"
AFTER_END = "2027-03-01T00:00:00Z"  # hero_layout_test ends 2027-01-31
VISITOR = {"id": "visitor-0", "consent": {"personalization": True}}  # in the hero experiment's slice


def _hero(base: str, now: str, headers: dict[str, str] | None = None) -> httpx.Response:
    body = {"visitor": VISITOR, "placements": ["home_hero"], "context": {"now": now}}
    return httpx.post(f"{base}/v1/decide", json=body, headers=headers or {})


def _reason(response: httpx.Response) -> str:
    assert response.status_code == 200, response.text
    return str(response.json()["placements"]["home_hero"]["reason"])


def test_by_default_a_client_time_is_refused_and_the_admin_may_send_one() -> None:
    with running_server(TAILOR_ADMIN_TOKEN=TOKEN) as base:
        refused = _hero(base, AFTER_END)
        wrong_token = _hero(base, AFTER_END, {"authorization": "Bearer not-the-token"})
        render = httpx.post(
            f"{base}/v1/render",
            json={"block": "recs_for_you", "recipients": [{}, {"context": {"now": AFTER_END}}]},
        )
        admin = {"authorization": f"Bearer {TOKEN}"}
        in_window, after_end = _reason(_hero(base, IN_WINDOW, admin)), _reason(_hero(base, AFTER_END, admin))
        without_time = httpx.post(f"{base}/v1/decide", json={"visitor": VISITOR, "placements": ["home_hero"]})
    for response in (refused, wrong_token):
        assert response.status_code == 400
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["errors"][0]["loc"] == "$.context.now"
        assert "TAILOR_ALLOW_CLIENT_TIME" in response.json()["errors"][0]["message"]
    assert render.status_code == 400
    assert render.json()["errors"][0]["loc"] == "$.recipients[1].context.now"
    assert (in_window, after_end) == ("experiment", "default")  # the time the admin named was used
    assert without_time.status_code == 200  # without a time, the server's clock


def test_a_server_that_allows_client_time_takes_it_from_anyone() -> None:
    with running_server(TAILOR_ALLOW_CLIENT_TIME="1") as base:
        in_window, after_end = _reason(_hero(base, IN_WINDOW)), _reason(_hero(base, AFTER_END))
        document = httpx.get(f"{base}/schema/openapi.json").json()
    assert (in_window, after_end) == ("experiment", "default")
    assert "now" in document["components"]["schemas"]["Context"]["properties"]


def test_the_document_of_a_default_server_has_no_client_time() -> None:
    with running_server() as base:
        context = httpx.get(f"{base}/schema/openapi.json").json()["components"]["schemas"]["Context"]
    assert "now" not in context["properties"]
    assert "TAILOR_ALLOW_CLIENT_TIME" in context["description"]
