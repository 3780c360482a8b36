"""The real server on 127.0.0.1, called over HTTP with httpx."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.server import ROOT, Server, free_port, running_server, serve_command

pytestmark = pytest.mark.integration

NOW = "2026-11-22T12:00:00Z"
ADMIN = "server-test-admin-token"  # with it, a request may name its time (context.now)
VIP: dict[str, Any] = {
    "id": "v-vip",
    "attributes": {"orders_12m": 6, "spend_12m": 812.5},
    "consent": {"personalization": True},
}


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with running_server(TAILOR_ADMIN_TOKEN=ADMIN) as base:
        yield base


@pytest.fixture(scope="module")
def client(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server, timeout=10.0) as http:
        yield http


def _decide(http: httpx.Client, visitor: dict[str, Any], **extra: Any) -> httpx.Response:
    body = {"visitor": visitor, "context": {"now": NOW}, **extra}
    return http.post("/v1/decide", json=body, headers={"authorization": f"Bearer {ADMIN}"})


def test_decides_placements_for_a_visitor(client: httpx.Client) -> None:
    response = _decide(client, VIP, placements=["home_hero", "promo_banner", "no_such_slot"], explain=True)
    assert response.status_code == 200
    body = response.json()
    assert len(body["revision"]) == 16
    assert len(body["decision_id"]) == 32
    assert body["segments"] == ["vip"]
    hero = body["placements"]["home_hero"]
    assert (hero["variant"], hero["reason"], hero["rule"]) == ("hero_vip", "targeting_match", "vip_offer")
    assert hero["content"]["discount_percent"] == 20
    assert body["placements"]["no_such_slot"] == {"variant": None, "reason": "unknown_placement"}
    assert {"placement": "home_hero", "rule": "vip_offer", "outcome": "matched"} in body["trace"]


def test_a_visitor_in_the_lapsed_cluster_gets_the_win_back_hero(client: httpx.Client) -> None:
    visitor = {
        "id": "v-model-lapsed",
        "attributes": {"orders_total": 1, "spend_total": 60.0, "last_purchase_at": "2026-07-15T12:00:00Z"},
        "consent": {"personalization": True},
    }
    body = _decide(client, visitor, placements=["home_hero"], explain=True).json()
    assert body["placements"]["home_hero"]["variant"] == "hero_winback"
    assert body["placements"]["home_hero"]["rule"] == "win_back_predicted"
    assert body["segments"] == ["predicted_lapsed"]
    assert body["scores"] == {"rfm": "lapsed"}


def test_explain_names_the_first_failed_condition_of_each_rule(client: httpx.Client) -> None:
    repeat_vip: dict[str, Any] = {
        **VIP,
        "id": "vip-1",
        "attributes": {**VIP["attributes"], "sessions_7d": 4, "orders_total": 30, "country": "US"},
    }
    repeat_vip["attributes"]["last_purchase_at"] = "2026-11-10T10:00:00Z"  # a low churn score: retention fails too
    body = _decide(client, repeat_vip, placements=["promo_banner"], explain=True).json()
    why_not = {step["rule"]: step.get("why_not") for step in body["trace"]}
    assert why_not["loyal_browser"] == {
        "text": "rules/placements.yaml:32: placements.promo_banner.rules[4].when.all[1]: "
        "not {segment: 'vip'}, which holds",
        "file": "rules/placements.yaml",
        "line": 32,
        "path": "placements.promo_banner.rules[4].when.all[1]",
        "operator": "not",
        "expected": {"segment": "vip"},
        "actual": True,
    }
    assert why_not["cart_reminder"]["missing"] is True
    assert why_not["early_access"]["via"] == ["valuable_in_eu", "eu_visitor"]
    assert why_not["early_access"]["actual"] == "US"
    plain = _decide(client, repeat_vip, placements=["promo_banner"]).json()
    assert "trace" not in plain
    assert plain["placements"] == body["placements"]


def test_experiment_assignment_is_reported(client: httpx.Client) -> None:
    visitor = {"id": "visitor-0", "consent": {"personalization": True}}
    hero = _decide(client, visitor, placements=["home_hero"]).json()["placements"]["home_hero"]
    assert hero["experiment"] == {"key": "hero_layout_test", "arm": "bold", "bucket": 9989}


def test_decision_ids_differ_and_attribute_types_are_kept(client: httpx.Client) -> None:
    as_text = {**VIP, "attributes": {"orders_12m": "6", "spend_12m": "812.5"}}
    first, second = _decide(client, VIP).json(), _decide(client, as_text).json()
    assert first["decision_id"] != second["decision_id"]
    assert first["segments"] == ["vip"]
    assert second["segments"] == []
    assert second["placements"]["home_hero"]["variant"] != "hero_vip"


def test_bundle_endpoint_describes_what_is_served(client: httpx.Client) -> None:
    body = client.get("/v1/bundle").json()
    assert body["hash_version"] == 1
    names = [p["name"] for p in body["placements"]]
    assert names == ["home_hero", "promo_banner", "recommended_products", "cart_email"]
    experiment = next(e for e in body["experiments"] if e["key"] == "hero_layout_test")
    assert experiment["arms"] == [
        {"key": "control", "variant": "hero_default", "weight": 50},
        {"key": "bold", "variant": "hero_bold", "weight": 50},
    ]
    assert experiment["layer"] == "hero"
    assert experiment["traffic_percent"] == 50.0
    assert body["holdout_percent"] == 5.0
    assert {s["name"] for s in body["segments"]} >= {"vip", "lapsed", "cart_abandoner", "eu_visitor"}


@pytest.mark.parametrize("interface", ["rsgi", "asgi"])
def test_every_worker_runs_on_uvloop(tmp_path: Path, interface: str) -> None:
    """ADR 0014: tailor serve's workers run their event loop on uvloop, not on asyncio's own, through either door."""
    log = tmp_path / "server.log"
    with running_server(workers=2, log_file=log, TAILOR_INTERFACE=interface) as base:
        assert httpx.get(f"{base}/healthz", timeout=10.0).status_code == 200
    said = re.findall(r"worker \d+ serving on the (\S+) event loop", log.read_text())
    assert said == ["uvloop.Loop", "uvloop.Loop"]


def _serve_on(port: int, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        serve_command(ROOT, port, 1),
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _ended(process: subprocess.Popen[str], timeout_s: float) -> str | None:
    """The process's stderr once it has ended within ``timeout_s``; None (and it is killed) if it still ran."""
    try:
        return process.communicate(timeout=timeout_s)[1]
    except subprocess.TimeoutExpired:
        return None
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        if process.stderr is not None:
            process.stderr.close()


def test_a_second_server_on_the_port_of_a_running_one_is_refused(server: Server, tmp_path: Path) -> None:
    """granian's workers bind with SO_REUSEPORT: a second server on a port in use started without an
    error, and the kernel then split new connections between the two servers. Its lock is in another
    temporary folder here (another container's /tmp), so the bind check is what refuses it."""
    port = int(server.rsplit(":", 1)[1])
    assert (stderr := _ended(_serve_on(port), 60)) is not None
    assert f"cannot listen on 127.0.0.1:{port}: another tailor serve is starting or running there (stop it" in stderr
    assert (stderr := _ended(_serve_on(port, TMPDIR=str(tmp_path)), 60)) is not None
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use (is another server running there? stop" in stderr


def test_of_two_servers_started_at_once_on_one_port_one_serves(tmp_path: Path) -> None:
    """Both passed the bind check before either listened (3 times in 3): the first to start claims the port."""
    port = free_port()
    both = [_serve_on(port), _serve_on(port)]
    try:
        with httpx.Client(timeout=1.0) as http:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and _status(http, f"http://127.0.0.1:{port}/readyz") != 200:
                time.sleep(0.1)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and all(process.poll() is None for process in both):
            time.sleep(0.1)  # the other may reach its check after the first is ready
        ended = [process for process in both if process.poll() is not None]
        assert len(ended) == 1
        stderr = _ended(ended[0], 1)
        assert stderr is not None
        assert f"cannot listen on 127.0.0.1:{port}: " in stderr
        assert ended[0].returncode == 2
    finally:
        for process in both:
            _ended(process, 0)


def _status(http: httpx.Client, url: str) -> int | None:
    try:
        return http.get(url).status_code
    except httpx.TransportError:
        return None


def test_health_and_readiness(client: httpx.Client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready["status"] == "ready"
    assert ready["revision"] == client.get("/v1/bundle").json()["revision"]


def test_openapi_describes_the_decide_request(client: httpx.Client) -> None:
    schema = client.get("/schema/openapi.json").json()
    assert "/v1/decide" in schema["paths"]
    assert {"DecideRequest", "DecideResponse", "Visitor"} <= set(schema["components"]["schemas"])


def _problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert set(body) <= {"type", "title", "status", "detail", "errors"}
    assert body["status"] == status
    return body


@pytest.mark.parametrize(
    ("body", "loc", "message"),
    [
        (b'{"visitor": {"id": "a"', "$", "truncated"),
        (b'{"visitor": {"id": 5}}', "$.visitor.id", "Expected `str | null`, got `int`"),
        (b"", "$", "the request body is empty"),
        (b"[1, 2]", "$", "Expected `object`, got `array`"),
        (b'{"visitor": {"atributes": {}}}', "$.visitor", "unknown field `atributes` (did you mean 'attributes'?)"),
        (b'{"visitor": {}, "placements": []}', "$.placements", "Expected `array` of length >= 1"),
        (b'{"visitor": {"consent": {"personalization": "yes"}}}', "$.visitor.consent.personalization", "`bool`"),
    ],
    ids=["malformed", "wrong-type", "empty", "not-an-object", "unknown-field", "no-placements", "consent-type"],
)
def test_bad_input_gets_a_problem_saying_where(client: httpx.Client, body: bytes, loc: str, message: str) -> None:
    problem = _problem(client.post("/v1/decide", content=body, headers={"content-type": "application/json"}), 400)
    assert problem["type"] == "invalid-request"
    assert problem["errors"][0]["loc"] == loc
    assert message in problem["errors"][0]["message"]


def test_too_large_a_body_is_refused(client: httpx.Client) -> None:
    padding = "x" * 70_000
    problem = _problem(_decide(client, {"id": "a", "attributes": {"note": padding}}), 413)
    assert problem["type"] == "body-too-large"


def test_too_many_attributes_are_refused(client: httpx.Client) -> None:
    visitor = {"id": "a", "attributes": {f"a{i}": i for i in range(300)}}
    problem = _problem(_decide(client, visitor), 400)
    assert problem["errors"] == [{"loc": "$.visitor.attributes", "message": "more than 256 attribute values"}]


def test_too_deep_attributes_are_refused(client: httpx.Client) -> None:
    deep: dict[str, Any] = {"leaf": 1}
    for _ in range(8):
        deep = {"n": deep}
    problem = _problem(_decide(client, {"id": "a", "attributes": deep}), 400)
    assert problem["errors"][0]["loc"].startswith("$.visitor.attributes.n.n.n.n.n")


def test_unknown_routes_and_methods_get_problems(client: httpx.Client) -> None:
    assert _problem(client.get("/v2/decide"), 404)["type"] == "not-found"
    assert _problem(client.delete("/v1/decide"), 405)["type"] == "method-not-allowed"
